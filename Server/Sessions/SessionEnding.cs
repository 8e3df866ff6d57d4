using Microsoft.Extensions.Options;
using TrustLine.Protocol.Contracts;
using TrustLine.Server.Relay;
using TrustLine.Server.Storage;

namespace TrustLine.Server.Sessions;

/// <summary>
/// Ends a session: deletes every key of it at once, tells whoever is connected why, and stops every
/// node's links to it. Safe to call from several nodes at once: only the one whose delete removed the
/// record announces the end.
/// </summary>
public sealed class SessionEnding(
    ISessionStore store,
    PeerRoutes routes,
    QueueNotifier queue,
    Offers.OfferRouter offers,
    IOptions<SessionLimits> options,
    Operations.Metrics.TrustLineMetrics metrics,
    ILogger<SessionEnding> logger)
{
    public async Task<bool> EndAsync(Guid sessionId, string reason)
    {
        var record = await store.DeleteAsync(sessionId, options.Value.MaxUnacknowledged);
        if (record is null)
        {
            return false;
        }

        await routes.EndedAsync(sessionId);
        var end = new SessionEnd { SessionId = sessionId.ToByteArray(bigEndian: true), Reason = reason };
        var notices = new List<Task>();
        if (routes.Seeker(record.SeekerConnection) is { } seeker)
        {
            notices.Add(seeker.SessionEnded(end));
        }

        if (routes.Responder(record.ResponderConnection) is { } responder)
        {
            notices.Add(responder.SessionEnded(end));
        }

        await Task.WhenAll(notices);
        await offers.SessionEndedAsync(record);
        if (record.State == SessionState.Queued)
        {
            await queue.ChangedAsync(record.OrgId, movedFrom: 0);
        }

        SessionLog.Ended(logger, reason, record.State == SessionState.Queued ? "queued" : "active");
        metrics.SessionEnded(record.OrgId, reason);
        return true;
    }
}

/// <summary>
/// Tells queued seekers their place and the organisation's responders the queue, after any change. Notices
/// are coalesced per organisation: the first change after a quiet spell is sent at once, and changes within
/// <see cref="SessionLimits.QueueNoticeInterval"/> of the last notice wait and go out together in one, so
/// any churn of opens and closes costs each counsellor at most a few notices a second.
/// </summary>
public sealed class QueueNotifier(
    ISessionStore store,
    PeerRoutes routes,
    Microsoft.AspNetCore.SignalR.IHubContext<Responders.ResponderHub, IResponderClient> responders,
    IOptions<SessionLimits> options,
    TimeProvider time,
    Admission.WaitEstimator waits,
    Offers.OfferRouter offers,
    ILogger<QueueNotifier> logger)
{
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, Pending> pending = new();

    public static string GroupOf(byte[] orgId) => "org:" + Convert.ToHexStringLower(orgId);

    /// <summary>
    /// Responders get the queue's length and head. Waiting seekers from 0-based rank
    /// <paramref name="movedFrom"/> on get their new places; null when no place moved (a join at the end).
    /// Returns once the notice is sent, or, within the interval of the last one, once it is scheduled.
    /// </summary>
    public Task ChangedAsync(byte[] orgId, int? movedFrom)
    {
        offers.Nudge(orgId);
        var state = pending.GetOrAdd(Convert.ToHexStringLower(orgId), _ => new Pending(orgId));
        TimeSpan wait;
        lock (state)
        {
            state.Dirty = true;
            state.MovedFrom = movedFrom is { } from ? Math.Min(from, state.MovedFrom ?? from) : state.MovedFrom;
            if (state.Flushing)
            {
                return Task.CompletedTask; // the running notice sends this one after it
            }

            state.Flushing = true;
            wait = state.LastSent + options.Value.QueueNoticeInterval - time.GetUtcNow();
        }

        return wait <= TimeSpan.Zero ? FlushAsync(state) : LaterAsync(state, wait);
    }

    private Task LaterAsync(Pending state, TimeSpan wait)
    {
        _ = Task.Run(async () =>
        {
            await Task.Delay(wait, time);
            await FlushAsync(state);
        });
        return Task.CompletedTask;
    }

    private async Task FlushAsync(Pending state)
    {
        int? movedFrom;
        lock (state)
        {
            movedFrom = state.MovedFrom;
            state.MovedFrom = null;
            state.Dirty = false;
            state.LastSent = time.GetUtcNow();
        }

        try
        {
            await SendAsync(state.OrgId, movedFrom);
        }
        catch (Exception e) when (e is StackExchange.Redis.RedisException or TimeoutException)
        {
            SessionLog.StoreFailed(logger, "QueueChanged", e.GetType().Name);
        }
        finally
        {
            TimeSpan? again = null;
            lock (state)
            {
                if (state.Dirty)
                {
                    again = state.LastSent + options.Value.QueueNoticeInterval - time.GetUtcNow();
                }
                else
                {
                    state.Flushing = false;
                }
            }

            if (again is { } wait)
            {
                _ = LaterAsync(state, wait > TimeSpan.Zero ? wait : TimeSpan.Zero);
            }
        }
    }

    private async Task SendAsync(byte[] orgId, int? movedFrom)
    {
        var head = await store.GetQueueAsync(orgId, 20);
        var now = time.GetUtcNow();
        var (_, waiting) = await store.GetQueuePositionAsync(orgId, Guid.Empty);
        var sends = new List<Task>
        {
            responders.Clients.Group(GroupOf(orgId)).QueueChanged(new QueueSnapshot { Waiting = waiting, Head = [.. head.Select(q => ToEntry(q, now))] }),
        };
        if (movedFrom is { } from)
        {
            var connections = await store.GetQueuedConnectionsAsync(orgId, from);
            for (var i = 0; i < connections.Count; i++)
            {
                if (routes.Seeker(connections[i]) is { } seeker)
                {
                    sends.Add(seeker.QueuePosition(waits.Fill(new QueueStatus { Position = from + i + 1, Waiting = waiting }, Convert.ToHexStringLower(orgId))));
                }
            }
        }

        await Task.WhenAll(sends);
    }

    /// <summary>One organisation's changes not yet told (guarded by locking the instance).</summary>
    private sealed class Pending(byte[] orgId)
    {
        public byte[] OrgId { get; } = orgId;
        public bool Dirty { get; set; }
        public bool Flushing { get; set; }
        public int? MovedFrom { get; set; }
        public DateTimeOffset LastSent { get; set; } = DateTimeOffset.MinValue;
    }

    public static QueueEntry ToEntry(QueuedSession q, DateTimeOffset now) => new()
    {
        SessionId = q.Id.ToByteArray(bigEndian: true),
        Language = q.Language,
        Topic = q.Topic,
        Urgent = q.Urgent,
        WaitingSeconds = (int)Math.Max(0, (now - q.CreatedAt).TotalSeconds),
    };
}

internal static partial class SessionLog
{
    // Reasons and states are fixed codes: never a session id, address or content.
    [LoggerMessage(EventId = 200, Level = LogLevel.Information, Message = "Session opened ({Urgency}).")]
    public static partial void Opened(ILogger logger, string urgency);

    [LoggerMessage(EventId = 201, Level = LogLevel.Information, Message = "Session ended: {Reason} (was {State}).")]
    public static partial void Ended(ILogger logger, string reason, string state);

    [LoggerMessage(EventId = 202, Level = LogLevel.Information, Message = "Session taken by a responder.")]
    public static partial void Taken(ILogger logger);

    [LoggerMessage(EventId = 203, Level = LogLevel.Information, Message = "{Party} resumed a session.")]
    public static partial void Resumed(ILogger logger, string party);

    [LoggerMessage(EventId = 204, Level = LogLevel.Information, Message = "{Party} connection dropped; grace period started.")]
    public static partial void Dropped(ILogger logger, string party);

    [LoggerMessage(EventId = 209, Level = LogLevel.Information, Message = "Urgent places all taken: a session asking to be urgent waits in order of arrival.")]
    public static partial void UrgentCapReached(ILogger logger);

    [LoggerMessage(EventId = 206, Level = LogLevel.Error, Message = "The store failed during {Method} ({ErrorType}).")]
    public static partial void StoreFailed(ILogger logger, string method, string errorType);

    [LoggerMessage(EventId = 207, Level = LogLevel.Error, Message = "The session reaper failed ({ErrorType}); it tries again.")]
    public static partial void ReaperFailed(ILogger logger, string errorType);
}
