using Mediator;
using Microsoft.Extensions.Options;
using TrustLine.Protocol.Contracts;
using TrustLine.Server.Organisations;
using TrustLine.Server.Relay;
using TrustLine.Server.Sessions;
using TrustLine.Server.Storage;

namespace TrustLine.Server.Transfers;

/// <summary>
/// Where a chat may be transferred to, and what a pending proposal needs of the target, checked when the
/// counsellor proposes and again when the seeker accepts (the configuration or the hours may change between).
/// </summary>
public sealed class TransferRules(OrganisationDirectory organisations, ISessionStore store)
{
    /// <summary>The target organisation, or the refusal: it must be the own one or a listed partner, open, not full, and serve the chat's language.</summary>
    public async Task<(Organisation? Target, Refusal? Refusal)> CheckAsync(byte[] ownOrgId, byte[] targetOrgId, SessionRecord session, DateTimeOffset now)
    {
        var own = organisations.Find(ownOrgId);
        var hex = Convert.ToHexStringLower(targetOrgId);
        if (own is null || (hex != own.OrgIdHex && !own.Partners.Contains(hex)))
        {
            return (null, Refuse.With(ErrorCodes.NotAPartner, "A chat can go only to a colleague of your own organisation or to a partner organisation your configuration lists."));
        }

        if (organisations.Find(targetOrgId) is not { } target)
        {
            return (null, Refuse.With(ErrorCodes.UnknownOrganisation, "This server does not serve that organisation."));
        }

        if (!target.Hours.QueueWhenClosed && !target.Hours.IsOpen(now))
        {
            return (null, Refuse.With(ErrorCodes.Closed, "The target organisation is closed now; the chat goes on here."));
        }

        if (!target.Languages.Contains(session.Language, StringComparer.OrdinalIgnoreCase))
        {
            return (null, Refuse.With(ErrorCodes.UnknownRouting, "The target organisation does not serve this chat's language."));
        }

        if ((await store.GetQueuePositionAsync(target.OrgId, Guid.Empty)).Waiting >= target.QueueCapacity)
        {
            return (null, Refuse.With(ErrorCodes.QueueFull, "The target organisation's queue is full; the chat goes on here."));
        }

        return (target, null);
    }
}

/// <summary>Tells the counsellor who proposed a transfer what became of it, wherever they are connected.</summary>
public sealed class TransferNotices(PeerRoutes routes, ILogger<TransferNotices> logger)
{
    public async Task TellResponderAsync(Guid sessionId, string outcome)
    {
        TransferLog.Settled(logger, outcome);
        if (routes.Responder(await routes.ConnectionOfAsync(sessionId, Party.Responder)) is { } responder)
        {
            await responder.TransferOutcome(new TransferResult { SessionId = sessionId.ToByteArray(bigEndian: true), Outcome = outcome });
        }
    }
}

public sealed record ProposeTransferCommand(ConnectionState Connection, byte[]? SessionId, byte[]? OrgId) : ICommand<Outcome<Done>>;

/// <summary>
/// A counsellor proposes to hand an answered chat to a colleague or a partner organisation. The server
/// records the proposal (one at a time, lapsing after <see cref="SessionLimits.TransferAnswerTime"/>) and
/// asks the seeker; nothing of the conversation is involved.
/// </summary>
public sealed class ProposeTransferHandler(
    ISessionStore store,
    PeerRoutes routes,
    TransferRules rules,
    IOptions<SessionLimits> options,
    TimeProvider time,
    ILogger<ProposeTransferHandler> logger) : ICommandHandler<ProposeTransferCommand, Outcome<Done>>
{
    public async ValueTask<Outcome<Done>> Handle(ProposeTransferCommand command, CancellationToken cancellationToken)
    {
        var (connection, sessionIdBytes, orgId) = command;
        if (sessionIdBytes is not { Length: Protocol.Crypto.Wire.SessionIdSize }
            || connection.Find(new Guid(sessionIdBytes, bigEndian: true)) is not { } link || link.Ended)
        {
            return Refuse.With(ErrorCodes.NoSuchSession, "This connection holds no such session.");
        }

        if (orgId is not { Length: 16 })
        {
            return Refuse.With(ErrorCodes.BadRequest, "A transfer names a 16-byte organisation id.");
        }

        if (await store.GetAsync(link.SessionId) is not { } record)
        {
            return Refuse.With(ErrorCodes.NoSuchSession, "This connection holds no such session.");
        }

        if (record.State != SessionState.Active || record.Msg2 is null)
        {
            return Refuse.With(ErrorCodes.WrongState, "Only an answered chat can be transferred.");
        }

        if (record.SeekerConnection is null)
        {
            return Refuse.With(ErrorCodes.NotAvailable, "The seeker is away for a moment; propose the transfer when they are back.");
        }

        var now = time.GetUtcNow();
        var (_, refusal) = await rules.CheckAsync(connection.Grant!.OrgId, orgId, record, now);
        if (refusal is { } refused)
        {
            return refused;
        }

        // Whole milliseconds, as the Redis store keeps it: the lapse time is also the proposal's identity.
        var until = DateTimeOffset.FromUnixTimeMilliseconds((now + options.Value.TransferAnswerTime).ToUnixTimeMilliseconds());
        if (!await store.ProposeTransferAsync(record.Id, connection.Grant.ResponderId, orgId, until, now))
        {
            return Refuse.With(ErrorCodes.WrongState, "A transfer is already proposed for this chat; wait for the seeker's answer.");
        }

        await store.ScheduleAsync(record.OrgId, record.Id, SessionTimers.Next(record with { TransferTo = orgId, TransferUntil = until }, options.Value), record.Deadline);
        TransferLog.Proposed(logger, orgId.AsSpan().SequenceEqual(record.OrgId) ? "colleague" : "partner");
        if (routes.Seeker(await routes.ConnectionOfAsync(record.Id, Party.Seeker)) is { } seeker)
        {
            await seeker.TransferProposed(new TransferProposal
            {
                SessionId = sessionIdBytes,
                OrgId = orgId,
                AnswerWithinSeconds = (int)options.Value.TransferAnswerTime.TotalSeconds,
            });
        }

        return new Done();
    }
}

public sealed record DeclineTransferCommand(ConnectionState Connection) : ICommand<Outcome<Done>>;

/// <summary>The seeker (or their app, lacking the target's pins) declines: the chat goes on, and the counsellor is told.</summary>
public sealed class DeclineTransferHandler(ISessionStore store, TransferNotices notices) : ICommandHandler<DeclineTransferCommand, Outcome<Done>>
{
    public async ValueTask<Outcome<Done>> Handle(DeclineTransferCommand command, CancellationToken cancellationToken)
    {
        if (command.Connection.Single() is not { Ended: false } link)
        {
            return Refuse.With(ErrorCodes.NoSuchSession, "This connection holds no session.");
        }

        if (await store.GetAsync(link.SessionId) is not { TransferUntil: { } until }
            || !await store.ClearTransferAsync(link.SessionId, until))
        {
            return Refuse.With(ErrorCodes.NoTransfer, "No transfer is proposed for this chat, or the proposal has lapsed.");
        }

        await notices.TellResponderAsync(link.SessionId, TransferOutcomes.Declined);
        return new Done();
    }
}

/// <summary>The reaper's part: a proposal nobody answered lapses, and the counsellor is told; the chat goes on.</summary>
public sealed class TransferLapse(ISessionStore store, TransferNotices notices)
{
    public async Task<bool> LapseAsync(SessionRecord session, DateTimeOffset now)
    {
        if (session.TransferUntil is not { } until || until > now || !await store.ClearTransferAsync(session.Id, until))
        {
            return false;
        }

        await notices.TellResponderAsync(session.Id, TransferOutcomes.TimedOut);
        return true;
    }
}

internal static partial class TransferLog
{
    // Fixed words only: never a session or organisation id.
    [LoggerMessage(EventId = 500, Level = LogLevel.Information, Message = "Transfer proposed (to a {Kind}).")]
    public static partial void Proposed(ILogger logger, string kind);

    [LoggerMessage(EventId = 501, Level = LogLevel.Information, Message = "Transfer settled: {Outcome}.")]
    public static partial void Settled(ILogger logger, string outcome);

    [LoggerMessage(EventId = 502, Level = LogLevel.Information, Message = "An accepted transfer could not be made ({Code}); the chat goes on.")]
    public static partial void Refused(ILogger logger, string code);
}
