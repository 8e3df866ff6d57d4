using System.Security.Cryptography;
using Mediator;
using Microsoft.Extensions.Options;
using TrustLine.Protocol.Contracts;
using TrustLine.Protocol.Crypto;
using TrustLine.Server.Relay;
using TrustLine.Server.Sessions;
using TrustLine.Server.Storage;

namespace TrustLine.Server.Transfers;

public sealed record AcceptTransferCommand(ConnectionState Connection, byte[]? Msg1) : ICommand<Outcome<OpenSessionResult>>;

/// <summary>
/// The seeker accepts a transfer with a fresh <c>msg1</c> for the target organisation. The new session is an
/// ordinary one (its own id, key, resume token and record; nothing of the old one is copied) that joins the
/// target's queue by the seeker's original join time, so it stands ahead of everyone who arrived later
/// (urgent first still holds). Then the old session ends as <c>transferred</c> and this connection holds the new one.
/// </summary>
public sealed class AcceptTransferHandler(
    ISessionStore store,
    PeerRoutes routes,
    TransferRules rules,
    TransferNotices notices,
    QueueNotifier queue,
    SessionEnding ending,
    IOptions<SessionLimits> options,
    TimeProvider time,
    ILogger<AcceptTransferHandler> logger) : ICommandHandler<AcceptTransferCommand, Outcome<OpenSessionResult>>
{
    public async ValueTask<Outcome<OpenSessionResult>> Handle(AcceptTransferCommand command, CancellationToken cancellationToken)
    {
        var (connection, msg1) = command;
        if (connection.Single() is not { Ended: false } link)
        {
            return Refuse.With(ErrorCodes.NoSuchSession, "This connection holds no session.");
        }

        var now = time.GetUtcNow();
        if (await store.GetAsync(link.SessionId) is not { TransferTo: { } target, TransferUntil: { } until } old || until <= now)
        {
            return Refuse.With(ErrorCodes.NoTransfer, "No transfer is proposed for this chat, or the proposal has lapsed.");
        }

        // Refused before the proposal is settled: the seeker's app may still answer with a good msg1 in time.
        if (msg1 is null || !ResponderHandshake.TryParseMsg1(msg1, out var orgId, out var sessionId)
            || !orgId.AsSpan().SequenceEqual(target) || sessionId == old.Id)
        {
            return Refuse.With(ErrorCodes.BadMsg1, "msg1 must be a fresh ClientHello (a new session id) for the organisation the transfer names.");
        }

        if (!await store.ClearTransferAsync(old.Id, until))
        {
            return Refuse.With(ErrorCodes.NoTransfer, "No transfer is proposed for this chat, or the proposal has lapsed.");
        }

        // Settled: from here a refusal leaves the chat as it was, and the counsellor hears that it failed.
        var (org, refusal) = await rules.CheckAsync(old.OrgId, target, old, now);
        if (refusal is { } refused)
        {
            return await FailedAsync(old.Id, refused);
        }

        var token = RandomNumberGenerator.GetBytes(32);
        var session = new SessionRecord
        {
            Id = sessionId,
            OrgId = target,
            Language = old.Language,
            Topic = org!.Topics.Contains(old.Topic, StringComparer.OrdinalIgnoreCase) ? old.Topic : "",
            Urgent = old.Urgent,
            Msg1 = msg1,
            ResumeTokenHash = SHA256.HashData(token),
            CreatedAt = now,
            Deadline = now + options.Value.MaxLifetime,
            SeekerConnection = connection.ConnectionId,
            LastActivity = now,
            QueuedSince = old.QueuedSince ?? old.CreatedAt,
        };
        switch (await store.CreateAsync(session, org.QueueCapacity, org.UrgentCapacity))
        {
            case CreateOutcome.Exists:
                return await FailedAsync(old.Id, Refuse.With(ErrorCodes.SessionExists, "A session with this id exists; start a new handshake."));
            case CreateOutcome.QueueFull:
                return await FailedAsync(old.Id, Refuse.With(ErrorCodes.QueueFull, "The target organisation's queue is full; the chat goes on here."));
            case CreateOutcome.CreatedNotUrgent:
                session = session with { Urgent = false };
                break;
        }

        await store.ScheduleAsync(session.OrgId, sessionId, SessionTimers.Next(session, options.Value), session.Deadline);
        var moved = new SessionLink(sessionId, target, session.Deadline) { LastTouch = now };
        routes.Track(moved);
        if (!connection.TryAdd(moved))
        {
            // The connection closed while this ran: its disconnect handler left the old chat in its grace period.
            routes.Untrack(moved);
            await ending.EndAsync(sessionId, EndReasons.SeekerAbandoned);
            await notices.TellResponderAsync(old.Id, TransferOutcomes.Failed);
            return Refuse.With(ErrorCodes.NoSuchSession, "The connection closed while accepting the transfer.");
        }

        connection.Remove(old.Id);
        await notices.TellResponderAsync(old.Id, TransferOutcomes.Accepted);
        await ending.EndAsync(old.Id, EndReasons.Transferred);

        // In the target's seeker group before the place is read: no notice between the two is missed.
        await queue.JoinAsync(connection.ConnectionId, target);
        var status = await queue.StatusAsync(target, sessionId);
        await queue.ChangedAsync(target);
        return new OpenSessionResult { ResumeToken = token, Queue = status, Urgent = session.Urgent };
    }

    private async Task<Outcome<OpenSessionResult>> FailedAsync(Guid oldId, Refusal refusal)
    {
        TransferLog.Refused(logger, refusal.Code);
        await notices.TellResponderAsync(oldId, TransferOutcomes.Failed);
        return refusal;
    }
}
