using System.Diagnostics;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Options;
using StackExchange.Redis;
using TrustLine.Server.Organisations;
using TrustLine.Server.Storage;

namespace TrustLine.Server.Operations.Metrics;

/// <summary>
/// Now and then reads what the gauges need from the store, which all nodes share: each organisation's queue
/// length, how many sessions of the organisations it serves are alive, and how far the reaper is behind. Counts
/// only; no id leaves here.
/// </summary>
internal sealed class MetricsSampler(
    ISessionStore store,
    OrganisationDirectory organisations,
    TrustLineMetrics metrics,
    IOptions<OperationsOptions> options,
    TimeProvider time,
    ILogger<MetricsSampler> logger) : BackgroundService
{
    /// <summary>Counting live sessions reads their ids; past this many the gauge stops counting.</summary>
    internal const int LiveCap = 50_000;

    private static readonly TimeSpan[] LagSteps = [TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(15), TimeSpan.FromMinutes(1),
        TimeSpan.FromMinutes(5), TimeSpan.FromMinutes(15), TimeSpan.FromHours(1)];

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.SampleInterval, time);
        do
        {
            await SampleAsync();
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    internal async Task SampleAsync()
    {
        try
        {
            var waiting = new List<Measurement<long>>();
            foreach (var org in organisations.All)
            {
                var started = Stopwatch.GetTimestamp();
                var (_, length) = await store.GetQueuePositionAsync(org.OrgId, Guid.Empty);
                metrics.StoreRead("queue_length", Stopwatch.GetElapsedTime(started));
                waiting.Add(new Measurement<long>(length, new KeyValuePair<string, object?>("organisation", org.OrgIdHex)));
            }

            // Every session has a timer in its organisation's timers: counting them counts the live sessions.
            var now = time.GetUtcNow();
            var orgIds = organisations.All.Select(o => o.OrgId).ToList();
            var liveStarted = Stopwatch.GetTimestamp();
            var live = 0;
            foreach (var orgId in orgIds)
            {
                if (live < LiveCap)
                {
                    live += (await store.GetDueAsync(orgId, DateTimeOffset.MaxValue, LiveCap - live)).Count;
                }
            }

            metrics.StoreRead("live_sessions", Stopwatch.GetElapsedTime(liveStarted));

            // The largest step by which some timer is overdue: cheap reads of at most one id per organisation each.
            var lag = 0.0;
            foreach (var step in LagSteps)
            {
                if (!await AnyDueAsync(orgIds, now - step))
                {
                    break;
                }

                lag = step.TotalSeconds;
            }

            metrics.Sampled(new StoreSample(true, [.. waiting], live, lag));
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            metrics.StoreFailed("sampler");
            metrics.Sampled(new StoreSample(false, [], null, 0));
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // Gauges must never take the node down: say so, keep the last figures, and try again next time.
            MetricsLog.SamplerFailed(logger, e.GetType().Name);
        }
    }

    /// <summary>Whether any of the organisations has a timer due by <paramref name="before"/>.</summary>
    private async Task<bool> AnyDueAsync(List<byte[]> orgIds, DateTimeOffset before)
    {
        foreach (var orgId in orgIds)
        {
            if ((await store.GetDueAsync(orgId, before, 1)).Count > 0)
            {
                return true;
            }
        }

        return false;
    }
}

internal static partial class MetricsLog
{
    [LoggerMessage(EventId = 400, Level = LogLevel.Error, Message = "The metrics sampler failed ({ErrorType}); it tries again.")]
    public static partial void SamplerFailed(ILogger logger, string errorType);
}
