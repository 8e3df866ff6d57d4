using System.Security.Cryptography;
using Mediator;
using Microsoft.Extensions.Options;
using TrustLine.Protocol.Contracts;
using TrustLine.Protocol.Crypto;
using TrustLine.Server.Organisations;
using TrustLine.Server.Relay;
using TrustLine.Server.Storage;

namespace TrustLine.Server.Sessions;

public sealed record OpenSessionCommand(ConnectionState Connection, OpenSessionRequest Request) : ICommand<Outcome<OpenSessionResult>>;

/// <summary>
/// A seeker opens a session with <c>msg1</c> and its routing choices: the server checks the fixed fields,
/// creates the session atomically (its id must be new) and queues it.
/// </summary>
public sealed class OpenSessionHandler(
    OrganisationDirectory organisations,
    ISessionStore store,
    PeerRoutes routes,
    QueueNotifier queue,
    SessionEnding ending,
    IOptions<SessionLimits> options,
    TimeProvider time,
    ILogger<OpenSessionHandler> logger) : ICommandHandler<OpenSessionCommand, Outcome<OpenSessionResult>>
{
    public async ValueTask<Outcome<OpenSessionResult>> Handle(OpenSessionCommand command, CancellationToken cancellationToken)
    {
        var (connection, request) = command;
        if (request?.Msg1 is null || !ResponderHandshake.TryParseMsg1(request.Msg1, out var orgId, out var sessionId))
        {
            return Refuse.With(ErrorCodes.BadMsg1, "msg1 must be 67 bytes: version 1, ClientHello, suite 1.");
        }

        if (organisations.Find(orgId) is not { } org)
        {
            return Refuse.With(ErrorCodes.UnknownOrganisation, "This server does not serve that organisation.");
        }

        if (!org.Languages.Contains(request.Language ?? "", StringComparer.OrdinalIgnoreCase)
            || (!string.IsNullOrEmpty(request.Topic) && !org.Topics.Contains(request.Topic, StringComparer.OrdinalIgnoreCase)))
        {
            return Refuse.With(ErrorCodes.UnknownRouting, "The organisation does not list that language or topic.");
        }

        if (connection.LinkCount > 0)
        {
            return Refuse.With(ErrorCodes.AlreadyInSession, "This connection already has a session; open another connection for another session.");
        }

        if (connection.IsClosed)
        {
            // Nobody would hear the answer, and a closed connection cannot join a group (the join would wait for a node
            // that holds it): nothing is created.
            return Refuse.With(ErrorCodes.NoSuchSession, "The connection closed while opening the session.");
        }

        var token = RandomNumberGenerator.GetBytes(32);
        var now = time.GetUtcNow();
        var session = new SessionRecord
        {
            Id = sessionId,
            OrgId = orgId,
            Language = request.Language!.ToLowerInvariant(),
            Topic = request.Topic?.ToLowerInvariant() ?? "",
            Urgent = request.Urgent,
            Msg1 = request.Msg1,
            ResumeTokenHash = SHA256.HashData(token),
            CreatedAt = now,
            Deadline = now + options.Value.MaxLifetime,
            SeekerConnection = connection.ConnectionId,
            LastActivity = now,
        };

        // In the group before the session joins the queue: the place the store answers with is the queue as it
        // stood then, and no notice after it is missed. (A notice before the open's answer is ignored by the SDKs.)
        await queue.JoinAsync(connection.ConnectionId, orgId);
        var opening = await store.OpenAsync(session, SessionTimers.Next(session, options.Value), org.QueueCapacity, org.UrgentCapacity);
        switch (opening.Outcome)
        {
            case CreateOutcome.Exists:
                await queue.LeaveAsync(connection.ConnectionId, orgId);
                return Refuse.With(ErrorCodes.SessionExists, "A session with this id exists; start a new handshake.");
            case CreateOutcome.QueueFull:
                await queue.LeaveAsync(connection.ConnectionId, orgId);
                return Refuse.With(ErrorCodes.QueueFull, "The organisation's queue is full; please try again in a few minutes.");
            case CreateOutcome.CreatedNotUrgent:
                // The urgent places are all taken: the seeker still gets a place, in order of arrival, and is told so.
                session = session with { Urgent = false };
                SessionLog.UrgentCapReached(logger);
                break;
        }

        var link = new SessionLink(sessionId, orgId, session.Deadline) { LastTouch = now };
        routes.Track(link);
        routes.Known(sessionId, Party.Seeker, connection.ConnectionId, 0);
        SessionLog.Opened(logger, session.Urgent ? "urgent" : "not urgent");
        if (!connection.TryAdd(link))
        {
            // The connection closed while this ran: the resume token never reached anyone, so nobody could
            // ever come back for the session. Undo it.
            routes.Untrack(link);
            await ending.EndAsync(sessionId, EndReasons.SeekerAbandoned);
            return Refuse.With(ErrorCodes.NoSuchSession, "The connection closed while opening the session.");
        }

        var status = queue.StatusOf(orgId, opening.Place);
        await queue.ChangedAsync(orgId, placesMoved: session.Urgent); // a join at the end moves nobody
        return new OpenSessionResult { ResumeToken = token, Queue = status, Urgent = session.Urgent };
    }
}
