using Microsoft.Extensions.Options;
using StackExchange.Redis;
using TrustLine.Protocol.Crypto;
using TrustLine.Server.Sessions;
using TrustLine.Server.Storage;

namespace TrustLine.Server.Relay;

/// <summary>
/// What a node does when its store fails over or comes back. Live forwarding between nodes goes through Redis
/// pub/sub, which keeps nothing: an envelope published while the receiver's node had not yet re-subscribed (on a
/// new primary after a failover) is gone, although it is safely in the buffer. So after any store incident, once
/// a primary answers, this node re-reads the buffer for every session it holds a connection of and hands the
/// receiver what it has not acknowledged (the receiving channel drops what it already has), a few times over
/// the seconds in which subscriptions are restored. The same sweep finds sessions whose record is gone (a store
/// without persistence restarted empty) and ends them for both parties with <c>store_lost</c>.
/// </summary>
public sealed class StoreWatch(
    IServiceProvider services,
    StoreMode mode,
    ISessionStore store,
    PeerRoutes routes,
    IOptions<SessionLimits> options,
    TimeProvider time,
    ILogger<StoreWatch> logger) : BackgroundService
{
    // After an incident, sweeps at these delays (from the moment a primary answers again): pub/sub
    // subscriptions are restored within a few seconds, and the later sweeps catch what went astray meanwhile.
    private static readonly TimeSpan[] Sweeps =
        [TimeSpan.Zero, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(4), TimeSpan.FromSeconds(8)];

    // How long a node waits for an end's route message before it takes a missing record for a lost one.
    private static readonly TimeSpan EndNoticeWait = TimeSpan.FromSeconds(1);

    private static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(2);

    /// <summary>The refusal of a call on a session the store lost; the party has been told with <c>SessionEnded</c> too.</summary>
    public static readonly Refusal LostRefusal =
        Refuse.With(Protocol.Contracts.ErrorCodes.StoreLost, "The service lost this session's state (its store restarted); start a new one.");

    private readonly Lock gate = new();
    private readonly HashSet<string> failed = [];
    private TaskCompletionSource incident = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>A store call failed on this node (a send, an ack, a forward): look again once the store answers.</summary>
    public void Reported()
    {
        TaskCompletionSource woken;
        lock (gate)
        {
            woken = incident;
            incident = new(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        woken.TrySetResult();
    }

    /// <summary>
    /// A live link's record was found missing. A session ended on another node is missing too, and that node's
    /// word (the route message) ends the link within moments; only when none comes is the record lost: the
    /// session ends for both parties with <c>store_lost</c>. True when it was lost.
    /// </summary>
    public async Task<bool> SessionGoneAsync(SessionLink link)
    {
        // The wall clock, not the TimeProvider: this waits for a message on the network, which no test clock moves.
        var waited = TimeSpan.Zero;
        var step = TimeSpan.FromMilliseconds(50);
        while (!link.Ended && waited < EndNoticeWait)
        {
            await Task.Delay(step);
            waited += step;
        }

        if (link.Ended)
        {
            return false;
        }

        await routes.LostAsync(link.SessionId);
        SessionLog.Ended(logger, Protocol.Contracts.EndReasons.StoreLost, "live");
        return true;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (mode.Kind != StoreKind.Redis)
        {
            return;
        }

        var redis = services.GetRequiredService<IConnectionMultiplexer>();
        redis.ConnectionFailed += (_, e) =>
        {
            lock (gate)
            {
                // A dead endpoint fails again at every reconnect attempt: one incident until it is restored.
                if (!failed.Add(e.EndPoint?.ToString() ?? ""))
                {
                    return;
                }
            }

            Reported();
        };
        redis.ConnectionRestored += (_, e) =>
        {
            lock (gate)
            {
                failed.Remove(e.EndPoint?.ToString() ?? "");
            }

            Reported();
        };
        redis.ConfigurationChanged += (_, _) => Reported();

        while (!stoppingToken.IsCancellationRequested)
        {
            Task next;
            lock (gate)
            {
                next = incident.Task;
            }

            await next.WaitAsync(stoppingToken);
            var since = time.GetUtcNow();
            var down = false;
            while (!await PrimaryAnswersAsync(redis))
            {
                if (!down)
                {
                    down = true;
                    WatchLog.StoreLost(logger);
                }

                await Task.Delay(TimeSpan.FromMilliseconds(250), time, stoppingToken);
            }

            if (down)
            {
                WatchLog.StoreBack(logger, (time.GetUtcNow() - since).TotalSeconds);
            }

            var start = time.GetUtcNow();
            foreach (var at in Sweeps)
            {
                var wait = start + at - time.GetUtcNow();
                if (wait > TimeSpan.Zero)
                {
                    await Task.Delay(wait, time, stoppingToken);
                }

                try
                {
                    await SweepAsync();
                }
                catch (Exception e) when (e is RedisException or TimeoutException)
                {
                    Reported(); // trouble again: wait for the primary and start over
                    break;
                }
            }
        }
    }

    /// <summary>Hands every local receiver what the buffer holds for it, and ends sessions whose record is gone.</summary>
    internal async Task SweepAsync()
    {
        var window = options.Value.MaxUnacknowledged;
        List<SessionLink> missing = [];
        foreach (var link in routes.LocalLinks().ToList())
        {
            var owner = link.Owner!;
            if (await store.GetAsync(link.SessionId) is not { } record)
            {
                missing.Add(link);
                continue;
            }

            var receives = owner.Party == Party.Seeker ? Direction.ServerToClient : Direction.ClientToServer;
            foreach (var (_, envelope) in await store.GetEnvelopesAsync(link.SessionId, receives, record.Acked(receives), window))
            {
                if (link.Ended)
                {
                    break;
                }

                await (owner.Party == Party.Seeker
                    ? routes.Seeker(owner.ConnectionId)!.Envelope(envelope)
                    : routes.Responder(owner.ConnectionId)!.Envelope(envelope));
            }
        }

        if (missing.Count == 0)
        {
            return;
        }

        var lost = await Task.WhenAll(missing.Select(SessionGoneAsync));
        if (lost.Count(l => l) is var count and > 0)
        {
            WatchLog.SessionsLost(logger, count);
        }
    }

    private static async Task<bool> PrimaryAnswersAsync(IConnectionMultiplexer redis)
    {
        try
        {
            await redis.GetDatabase().PingAsync(CommandFlags.DemandMaster).WaitAsync(ProbeTimeout);
            return true;
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            return false;
        }
    }
}

internal static partial class WatchLog
{
    [LoggerMessage(EventId = 110, Level = LogLevel.Warning,
        Message = "Store lost: no Redis primary answers. Sends and acknowledgements are refused as unavailable until one does.")]
    public static partial void StoreLost(ILogger logger);

    [LoggerMessage(EventId = 111, Level = LogLevel.Warning, Message = "Store back: a Redis primary answers again after {Seconds:0.0} s.")]
    public static partial void StoreBack(ILogger logger, double seconds);

    [LoggerMessage(EventId = 112, Level = LogLevel.Warning,
        Message = "{Count} live sessions had no record in the store any more (a restart without persistence?): ended as store_lost.")]
    public static partial void SessionsLost(ILogger logger, int count);
}
