using Mediator;
using Microsoft.Extensions.Options;
using TrustLine.Protocol.Contracts;
using TrustLine.Protocol.Crypto;
using TrustLine.Server.Relay;
using TrustLine.Server.Sessions;
using TrustLine.Server.Storage;

namespace TrustLine.Server.Responders;

public sealed record GetQueueQuery(ConnectionState Connection) : IQuery<Outcome<QueueEntry[]>>;

public sealed class GetQueueHandler(ISessionStore store, TimeProvider time) : IQueryHandler<GetQueueQuery, Outcome<QueueEntry[]>>
{
    public async ValueTask<Outcome<QueueEntry[]>> Handle(GetQueueQuery query, CancellationToken cancellationToken)
    {
        var queued = await store.GetQueueAsync(query.Connection.Grant!.OrgId, 100);
        var now = time.GetUtcNow();
        return queued.Select(q => QueueNotifier.ToEntry(q, now)).ToArray();
    }
}

/// <summary>Takes the next queued session (<c>SessionId</c> null) or a named one; exactly one responder wins across nodes.</summary>
public sealed record TakeSessionCommand(ConnectionState Connection, byte[]? SessionId) : ICommand<Outcome<TakenSession?>>;

public sealed class TakeSessionHandler(
    ISessionStore store,
    PeerRoutes routes,
    QueueNotifier queue,
    Departures departures,
    Offers.OfferRouter offers,
    IOptions<SessionLimits> options,
    TimeProvider time,
    ILogger<TakeSessionHandler> logger) : ICommandHandler<TakeSessionCommand, Outcome<TakenSession?>>
{
    public async ValueTask<Outcome<TakenSession?>> Handle(TakeSessionCommand command, CancellationToken cancellationToken)
    {
        var (connection, named) = command;
        var grant = connection.Grant!;
        if (offers.CapacityOf(grant.OrgId) is var capacity and > 0 && Offers.OfferRouter.OpenChats(connection) >= capacity)
        {
            return Refuse.With(ErrorCodes.AtCapacity, $"This connection holds {capacity} chats, the most allowed; end one first.");
        }

        // Where the session's timer goes once taken, moved by the claim with the queue entry's removal.
        var timer = SessionTimers.AfterTake(time.GetUtcNow(), options.Value);
        SessionRecord? taken = null;
        if (named is not null)
        {
            if (named.Length != Wire.SessionIdSize)
            {
                return Refuse.With(ErrorCodes.BadRequest, "A session id is 16 bytes.");
            }

            // A seeker connected to this node is not away: the read is for seekers elsewhere (or away).
            var id = new Guid(named, bigEndian: true);
            if (!routes.SeekerConnectedHere(id) && await store.GetAsync(id) is { State: SessionState.Queued, SeekerConnection: null } away && away.OrgId.AsSpan().SequenceEqual(grant.OrgId))
            {
                return Refuse.With(ErrorCodes.NotAvailable, "The seeker of that session is away for a moment; it waits until they are back.");
            }

            taken = await offers.ClaimAsync(grant.OrgId, id, grant.ResponderId, connection.ConnectionId, timer);
            if (taken is null)
            {
                return Refuse.With(ErrorCodes.NotAvailable, "That session is not waiting any more: another responder took it, or it ended.");
            }
        }
        else
        {
            // Losing a race for the head of the queue just means trying the next one. A seeker who is away
            // (a phone that switched apps, or a flood that opened and dropped) keeps its place but is passed
            // over until it is back: reading a longer stretch of the queue each round finds the first seeker
            // who is there, however many away ones stand before it.
            var seen = new HashSet<Guid>();
            for (var look = 16; taken is null; look *= 4)
            {
                var candidates = await store.GetQueueAsync(grant.OrgId, look);
                foreach (var candidate in candidates)
                {
                    if (seen.Add(candidate.Id) && candidate.SeekerConnection is not null
                        && (taken = await offers.ClaimAsync(grant.OrgId, candidate.Id, grant.ResponderId, connection.ConnectionId, timer)) is not null)
                    {
                        break;
                    }
                }

                if (candidates.Count < look)
                {
                    break;
                }
            }

            if (taken is null)
            {
                return (TakenSession?)null;
            }
        }

        // From now on the session can idle out: the claim moved the timer from the queue's deadlines to the idle one.
        // Only an end nearer than that (the lifetime, a seeker away) needs a schedule of its own, sent with the route message.
        var link = new SessionLink(taken.Id, taken.OrgId, taken.Deadline) { LastTouch = time.GetUtcNow() };
        routes.Track(link);
        var next = SessionTimers.Next(taken, options.Value);
        await Task.WhenAll(
            next < timer ? store.ScheduleAsync(taken.OrgId, taken.Id, next, taken.Deadline) : Task.CompletedTask,
            routes.MovedAsync(taken.Id, Party.Responder, connection.ConnectionId, taken.Epoch));
        SessionLog.Taken(logger);
        var added = connection.TryAdd(link);
        if (!added)
        {
            // The connection closed while this ran: the take stands, and the responder may resume it within grace.
            routes.Untrack(link);
            await departures.LeftAsync(taken.Id, Party.Responder, connection.ConnectionId);
        }

        if (taken.SeekerConnection is { } seekerConnection)
        {
            await queue.LeaveAsync(seekerConnection, taken.OrgId); // the seeker stops hearing the queue before the take is told
        }

        await queue.ChangedAsync(taken.OrgId);
        if (!added)
        {
            return Refuse.With(ErrorCodes.NoSuchSession, "The connection closed while taking the session; resume it.");
        }

        return new TakenSession
        {
            SessionId = taken.Id.ToByteArray(bigEndian: true),
            Msg1 = taken.Msg1,
            Language = taken.Language,
            Topic = taken.Topic,
            Urgent = taken.Urgent,
        };
    }
}

public sealed record AnswerSessionCommand(ConnectionState Connection, byte[]? SessionId, byte[]? Msg2) : ICommand<Outcome<Done>>;

/// <summary>The responder answers a taken session with <c>msg2</c>; the seeker receives it wherever it is connected.</summary>
public sealed class AnswerSessionHandler(ISessionStore store, PeerRoutes routes) : ICommandHandler<AnswerSessionCommand, Outcome<Done>>
{
    public async ValueTask<Outcome<Done>> Handle(AnswerSessionCommand command, CancellationToken cancellationToken)
    {
        var (connection, sessionIdBytes, msg2) = command;
        if (sessionIdBytes is not { Length: Wire.SessionIdSize }
            || connection.Find(new Guid(sessionIdBytes, bigEndian: true)) is not { } link || link.Ended)
        {
            return Refuse.With(ErrorCodes.NoSuchSession, "This connection holds no such session.");
        }

        // The server may check msg2's size and fixed bytes; verifying it is the seeker's job (PROTOCOL.md §5).
        if (msg2 is not { Length: Wire.Msg2Size } || msg2[0] != Wire.Version || msg2[1] != Wire.TypeServerHello)
        {
            return Refuse.With(ErrorCodes.BadMsg2, "msg2 must be 364 bytes: version 1, ServerHello.");
        }

        if (!await store.SetAnswerAsync(link.SessionId, connection.Grant!.ResponderId, msg2))
        {
            return Refuse.With(ErrorCodes.WrongState, "This session has been answered already.");
        }

        routes.Answered(link.SessionId);
        if (routes.Seeker(await routes.ConnectionOfAsync(link.SessionId, Party.Seeker)) is { } seeker)
        {
            await seeker.Answered(msg2);
        }

        return new Done();
    }
}
