using System.Collections.Concurrent;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.Options;

namespace TrustLine.Server.Limits;

/// <summary>
/// SignalR's client timeout starts only with the first message a client sends after the handshake, so a
/// connection that handshakes and then stays silent would be held forever. A seeker connection must make its
/// first call (a seeker app opens or resumes at once) within <see cref="LimitOptions.ClientTimeout"/>, or it
/// is closed; from then on SignalR's own timeout applies.
/// </summary>
public sealed class SilentConnections(IOptions<LimitOptions> options, TimeProvider time)
{
    private readonly ConcurrentDictionary<string, (HubCallerContext Context, DateTimeOffset Deadline)> waiting = new();

    /// <summary>Connections that have not called yet.</summary>
    internal int Silent => waiting.Count;

    public void Connected(HubCallerContext context) =>
        waiting[context.ConnectionId] = (context, time.GetUtcNow() + options.Value.ClientTimeout);

    public void Heard(HubCallerContext context) => waiting.TryRemove(context.ConnectionId, out _);

    public void Sweep()
    {
        var now = time.GetUtcNow();
        foreach (var (id, (context, deadline)) in waiting)
        {
            if (deadline <= now && waiting.TryRemove(id, out _))
            {
                context.Abort();
            }
        }
    }
}

internal sealed class SilentConnectionSweeper(SilentConnections connections, TimeProvider time) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1), time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                connections.Sweep();
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }
}
