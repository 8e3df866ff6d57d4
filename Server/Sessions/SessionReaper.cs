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

    /// <summary>
    /// The timer of a session taken at <paramref name="now"/>, as the taker knows it before the claim answers: the idle
    /// end, in whole milliseconds as the store keeps times. <see cref="Next"/> of the claimed record is earlier only when
    /// the lifetime or the seeker's grace ends first (the taker then schedules that); otherwise it is this, or a moment
    /// later when the claim ran later than <paramref name="now"/> (a timer early by that much only costs the reaper a look).
    /// </summary>
    public static DateTimeOffset AfterTake(DateTimeOffset now, SessionLimits o) =>
        DateTimeOffset.FromUnixTimeMilliseconds(now.ToUnixTimeMilliseconds()) + o.IdleTimeout;

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
/// On every node, looks for sessions whose timer is due, organisation by organisation (timers live in their
/// organisation's queue slot); the store decides which node handles each, so a session ends once even with many
/// nodes. A node that dies loses nothing: the others handle its timers.
/// </summary>
internal sealed class SessionReaper(
    ISessionStore store,
    Organisations.OrganisationDirectory organisations,
    SessionEnding ending,
    Transfers.TransferLapse transfers,
    IOptions<SessionLimits> options,
    TimeProvider time,
    ILogger<SessionReaper> logger) : BackgroundService
{
    /// <summary>
    /// How often a node lists the organisations it serves as holding timers and reads back every one listed (the
    /// list also keeps organisations removed from a node's configuration swept until their last deadline).
    /// </summary>
    internal static readonly TimeSpan OrganisationsEvery = TimeSpan.FromMinutes(1);

    private IReadOnlyList<byte[]> swept = [];
    private DateTimeOffset listedAt = DateTimeOffset.MinValue;

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
        var orgIds = await OrganisationsAsync(now);
        var due = await Task.WhenAll(orgIds.Select(orgId => store.GetDueAsync(orgId, now, 100)));
        for (var i = 0; i < orgIds.Count; i++)
        {
            foreach (var id in due[i])
            {
                if (!await store.TryTakeTimerAsync(orgIds[i], id, now, lease))
                {
                    continue;
                }

                try
                {
                    await HandleAsync(orgIds[i], id, now, lease);
                }
                catch (Exception e) when (e is RedisException or TimeoutException)
                {
                    // The lease brings the timer back to a later sweep, on this node or another.
                    SessionLog.ReaperFailed(logger, e.GetType().Name);
                }
            }
        }
    }

    /// <summary>
    /// The organisations to sweep: those this node serves, and every one the store lists (served by some node, or
    /// served until lately). The list is read every <see cref="OrganisationsEvery"/>, and at once when this node
    /// serves an organisation it does not hold yet.
    /// </summary>
    private async Task<IReadOnlyList<byte[]>> OrganisationsAsync(DateTimeOffset now)
    {
        var serving = organisations.All.Select(o => o.OrgId).ToList();
        if (now - listedAt >= OrganisationsEvery || serving.Any(orgId => !swept.Any(s => s.AsSpan().SequenceEqual(orgId))))
        {
            // Listed past the deadline of any session this node can still open (one sweep of slack): an organisation
            // removed from the configuration stays listed until its last session's end.
            var listed = await store.GetTimerOrganisationsAsync(serving, now + options.Value.MaxLifetime + OrganisationsEvery);
            swept = [.. listed.Concat(serving).DistinctBy(Convert.ToHexString)];
            listedAt = now;
        }

        return swept;
    }

    private async Task HandleAsync(byte[] orgId, Guid id, DateTimeOffset now, DateTimeOffset lease)
    {
        if (await store.GetAsync(id) is not { } session)
        {
            await store.CompleteTimerAsync(orgId, id, lease, null);
            return;
        }

        if (SessionTimers.DueReason(session, now, options.Value) is { } reason)
        {
            // Ending deletes the timer with every other key of the session.
            if (!await ending.EndAsync(id, reason))
            {
                await store.CompleteTimerAsync(orgId, id, lease, null);
            }
        }
        else
        {
            if (await transfers.LapseAsync(session, now))
            {
                session = session with { TransferTo = null, TransferUntil = null };
            }

            await store.CompleteTimerAsync(orgId, id, lease, SessionTimers.Next(session, options.Value));
        }
    }
}
