using Microsoft.Extensions.Options;
using StackExchange.Redis;
using TrustLine.Protocol.Contracts;
using TrustLine.Server.Storage;

namespace TrustLine.Server.Sessions;

/// <summary>When a session's time is up, and why.</summary>
public static class SessionTimers
{
    /// <summary>
    /// The lifetime end fires this much before the deadline, so the reaper still finds the record (its keys
    /// expire exactly at the deadline) and can tell both parties why.
    /// </summary>
    public static readonly TimeSpan LifetimeMargin = TimeSpan.FromSeconds(2);

    /// <summary>The reason the session must end now, or null if it may go on.</summary>
    public static string? DueReason(SessionRecord s, DateTimeOffset now, SessionLimits o)
    {
        if (now >= s.Deadline - LifetimeMargin)
        {
            return EndReasons.MaxLifetime;
        }

        if (s.SeekerGoneAt is { } seekerGone && now >= seekerGone + SeekerGrace(s, o))
        {
            return s.State == SessionState.Queued ? EndReasons.QueueHoldExpired : EndReasons.SeekerAbandoned;
        }

        if (s.State == SessionState.Queued && now >= s.CreatedAt + o.MaxQueueWait)
        {
            return EndReasons.QueueTimeout;
        }

        if (s.ResponderGoneAt is { } responderGone && now >= responderGone + o.Grace)
        {
            return EndReasons.ResponderAbandoned;
        }

        // A queued seeker is waiting, not idle: only the lifetime, the queue grace and the longest wait apply.
        return s.State == SessionState.Active && now >= s.LastActivity + o.IdleTimeout ? EndReasons.Idle : null;
    }

    /// <summary>The next moment <see cref="DueReason"/> could change.</summary>
    public static DateTimeOffset Next(SessionRecord s, SessionLimits o)
    {
        var next = s.Deadline - LifetimeMargin;
        if (s.SeekerGoneAt is { } seekerGone && seekerGone + SeekerGrace(s, o) < next)
        {
            next = seekerGone + SeekerGrace(s, o);
        }

        if (s.State == SessionState.Queued && s.CreatedAt + o.MaxQueueWait < next)
        {
            next = s.CreatedAt + o.MaxQueueWait;
        }

        if (s.ResponderGoneAt is { } responderGone && responderGone + o.Grace < next)
        {
            next = responderGone + o.Grace;
        }

        if (s.State == SessionState.Active && s.LastActivity + o.IdleTimeout < next)
        {
            next = s.LastActivity + o.IdleTimeout;
        }

        if (s.TransferUntil is { } lapses && lapses < next)
        {
            next = lapses;
        }

        return next;
    }

    /// <summary>A waiting seeker's grace is the queue's (a place is cheap to keep, a phone may be away a while); an answered one's is the chat's.</summary>
    private static TimeSpan SeekerGrace(SessionRecord s, SessionLimits o) => s.State == SessionState.Queued ? o.QueueGrace : o.Grace;
}

/// <summary>
/// On every node, looks for sessions whose timer is due; the store decides which node handles each, so
/// a session ends once even with many nodes. A node that dies loses nothing: the others handle its timers.
/// </summary>
internal sealed class SessionReaper(
    ISessionStore store,
    SessionEnding ending,
    Transfers.TransferLapse transfers,
    IOptions<SessionLimits> options,
    TimeProvider time,
    ILogger<SessionReaper> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.ReaperInterval, time);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                await SweepAsync();
            }
            catch (Exception e) when (e is RedisException or TimeoutException)
            {
                SessionLog.ReaperFailed(logger, e.GetType().Name);
            }
        }
    }

    /// <summary>How long a taken timer stays hidden from other sweeps before it comes due again.</summary>
    internal static readonly TimeSpan TimerLease = TimeSpan.FromSeconds(30);

    internal async Task SweepAsync()
    {
        var now = time.GetUtcNow();
        var lease = now + TimerLease;
        foreach (var id in await store.GetDueAsync(now, 100))
        {
            if (!await store.TryTakeTimerAsync(id, now, lease))
            {
                continue;
            }

            try
            {
                await HandleAsync(id, now, lease);
            }
            catch (Exception e) when (e is RedisException or TimeoutException)
            {
                // The lease brings the timer back to a later sweep, on this node or another.
                SessionLog.ReaperFailed(logger, e.GetType().Name);
            }
        }
    }

    private async Task HandleAsync(Guid id, DateTimeOffset now, DateTimeOffset lease)
    {
        if (await store.GetAsync(id) is not { } session)
        {
            await store.CompleteTimerAsync(id, lease, null);
            return;
        }

        if (SessionTimers.DueReason(session, now, options.Value) is { } reason)
        {
            // Ending deletes the timer with every other key of the session.
            if (!await ending.EndAsync(id, reason))
            {
                await store.CompleteTimerAsync(id, lease, null);
            }
        }
        else
        {
            if (await transfers.LapseAsync(session, now))
            {
                session = session with { TransferTo = null, TransferUntil = null };
            }

            await store.CompleteTimerAsync(id, lease, SessionTimers.Next(session, options.Value));
        }
    }
}
