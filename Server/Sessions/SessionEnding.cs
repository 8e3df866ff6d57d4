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
    TimeProvider time,
    ILogger<SessionEnding> logger)
{
    public Task<bool> EndAsync(Guid sessionId, string reason) => EndAsync(sessionId, _ => reason);

    /// <summary>Ends the session with the reason its deleted record gives (what it was is known only once it is deleted).</summary>
    public async Task<bool> EndAsync(Guid sessionId, Func<SessionRecord, string> reasonOf)
    {
        var record = await store.DeleteAsync(sessionId, options.Value.MaxUnacknowledged);
        if (record is null)
        {
            return false;
        }

        var reason = reasonOf(record);

        // This node's links stop at once; the other nodes hear it while the parties are told.
        var end = new SessionEnd { SessionId = sessionId.ToByteArray(bigEndian: true), Reason = reason };
        var notices = new List<Task>(3) { routes.EndedAsync(sessionId) };
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
            if (record.SeekerConnection is { } connection)
            {
                await queue.LeaveAsync(connection, record.OrgId);
            }

            await queue.ChangedAsync(record.OrgId);
        }

        SessionLog.Ended(logger, reason, record.State == SessionState.Queued ? "queued" : "active");
        metrics.SessionEnded(record.OrgId, reason);
        metrics.SessionOutcome(record.OrgId, Operations.Metrics.SessionOutcomes.Of(record.State == SessionState.Queued, reason), time.GetUtcNow() - record.CreatedAt);
        return true;
    }
}

/// <summary>
/// Tells waiting seekers and the organisation's responders that the queue moved, after any change. Seekers
/// get one small <see cref="QueueMoved"/> per change through the organisation's seeker group, whatever the
/// queue's length: each computes its own place from its ticket. Responders get the queue's length and head.
/// Notices are coalesced per organisation: the first change after a quiet spell is sent at once, and changes
/// within <see cref="SessionLimits.QueueNoticeInterval"/> of the last notice wait and go out together in one,
/// so any churn of opens and closes costs each counsellor and each seeker at most a few notices a second.
/// </summary>
public sealed class QueueNotifier(
    ISessionStore store,
    Microsoft.AspNetCore.SignalR.IHubContext<Responders.ResponderHub, IResponderClient> responders,
    Microsoft.AspNetCore.SignalR.IHubContext<SeekerHub, ISeekerClient> seekers,
    IOptions<SessionLimits> options,
    TimeProvider time,
    Admission.WaitEstimator waits,
    Offers.OfferRouter offers,
    ILogger<QueueNotifier> logger)
{
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, Pending> pending = new();

    private static readonly TimeSpan LeaveWait = TimeSpan.FromSeconds(1);

    public static string GroupOf(byte[] orgId) => "org:" + Convert.ToHexStringLower(orgId);

    /// <summary>The group of the organisation's waiting seekers (apart from its responders' <see cref="GroupOf"/>).</summary>
    public static string SeekerGroupOf(byte[] orgId) => "queue:" + Convert.ToHexStringLower(orgId);

    /// <summary>A waiting seeker's connection joins its organisation's seeker group (on open, and on resume while waiting).</summary>
    public Task JoinAsync(string connectionId, byte[] orgId) => seekers.Groups.AddToGroupAsync(connectionId, SeekerGroupOf(orgId));

    /// <summary>
    /// A seeker's connection leaves the group when its session is taken or ends, on whichever node it is
    /// connected (that node's channel carries it, and the change waits for its answer), before the change is told; a
    /// dropped connection leaves every group by itself. Waits at most <see cref="LeaveWait"/>: a node that
    /// does not answer holds no live connection.
    /// </summary>
    public async Task LeaveAsync(string connectionId, byte[] orgId)
    {
        try
        {
            await seekers.Groups.RemoveFromGroupAsync(connectionId, SeekerGroupOf(orgId)).WaitAsync(LeaveWait); // a network wait, in real time
        }
        catch (Exception e) when (e is IOException or TimeoutException or OperationCanceledException or StackExchange.Redis.RedisException)
        {
            // The connection is gone or its node does not answer: it left every group with it. The SDKs ignore
            // a queue notice once their session is no longer waiting.
            SessionLog.LeaveGroupFailed(logger, e.GetType().Name);
        }
    }

    /// <summary>
    /// The organisation's queue changed. Responders always hear it; waiting seekers only when
    /// <paramref name="placesMoved"/> (a take, a leave, an urgent or a transferred arrival): a join at the end of
    /// the queue moves nobody, and telling every waiting seeker of every join would cost a frame per seeker per
    /// open. The waiting counts go along with the next notice that moves places. Returns once the notice is sent,
    /// or, within the interval of the last one, once it is scheduled.
    /// </summary>
    public Task ChangedAsync(byte[] orgId, bool placesMoved = true)
    {
        offers.Nudge(orgId);
        var state = pending.GetOrAdd(Convert.ToHexStringLower(orgId), _ => new Pending(orgId));
        TimeSpan wait;
        lock (state)
        {
            state.Dirty = true;
            state.PlacesMoved |= placesMoved;
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
        bool placesMoved;
        lock (state)
        {
            placesMoved = state.PlacesMoved;
            state.PlacesMoved = false;
            state.Dirty = false;
            state.LastSent = time.GetUtcNow();
        }

        try
        {
            await SendAsync(state.OrgId, placesMoved);
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

    private async Task SendAsync(byte[] orgId, bool placesMoved)
    {
        var head = await store.GetQueueAsync(orgId, 20);
        var counts = await store.GetQueueCountsAsync(orgId);
        var now = time.GetUtcNow();
        var snapshot = new QueueSnapshot { Waiting = counts.UrgentWaiting + counts.OtherWaiting, Head = [.. head.Select(q => ToEntry(q, now))] };
        var moved = new QueueMoved
        {
            UrgentWaiting = counts.UrgentWaiting,
            UrgentServedThrough = counts.UrgentServedThrough,
            OtherWaiting = counts.OtherWaiting,
            OtherServedThrough = counts.OtherServedThrough,
            SecondsPerTake = waits.SecondsPerTake(Convert.ToHexStringLower(orgId)) ?? -1,
        };
        await Task.WhenAll(responders.Clients.Group(GroupOf(orgId)).QueueChanged(snapshot),
            placesMoved ? seekers.Clients.Group(SeekerGroupOf(orgId)).QueueMoved(moved) : Task.CompletedTask);
    }

    /// <summary>A seeker's exact place and ticket, as open and resume answer it, with the wait range and the hold.</summary>
    public async Task<QueueStatus> StatusAsync(byte[] orgId, Guid sessionId) => StatusOf(orgId, await store.GetPlaceAsync(orgId, sessionId));

    /// <summary>The status of a place already known (the open's, answered by the store with the create).</summary>
    public QueueStatus StatusOf(byte[] orgId, QueuePlace place)
    {
        var status = waits.Fill(new QueueStatus { Position = place.Position, Waiting = place.Waiting }, Convert.ToHexStringLower(orgId));
        status.Ticket = place.Ticket;
        status.UrgentTicket = place.Urgent;
        status.HoldSeconds = (int)options.Value.QueueGrace.TotalSeconds;
        return status;
    }

    /// <summary>One organisation's changes not yet told (guarded by locking the instance).</summary>
    private sealed class Pending(byte[] orgId)
    {
        public byte[] OrgId { get; } = orgId;
        public bool Dirty { get; set; }
        public bool PlacesMoved { get; set; }
        public bool Flushing { get; set; }
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

    [LoggerMessage(EventId = 215, Level = LogLevel.Information, Message = "A seeker connection could not be taken out of its queue group ({ErrorType}); it ignores queue notices from now on.")]
    public static partial void LeaveGroupFailed(ILogger logger, string errorType);

    [LoggerMessage(EventId = 206, Level = LogLevel.Error, Message = "The store failed during {Method} ({ErrorType}).")]
    public static partial void StoreFailed(ILogger logger, string method, string errorType);

    [LoggerMessage(EventId = 207, Level = LogLevel.Error, Message = "The session reaper failed ({ErrorType}); it tries again.")]
    public static partial void ReaperFailed(ILogger logger, string errorType);
}
