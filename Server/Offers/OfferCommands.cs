using Mediator;
using TrustLine.Protocol.Contracts;
using TrustLine.Protocol.Crypto;
using TrustLine.Server.Relay;
using TrustLine.Server.Responders;
using TrustLine.Server.Sessions;
using TrustLine.Server.Storage;

namespace TrustLine.Server.Offers;

public sealed record SetAvailabilityCommand(ConnectionState Connection, bool Available) : ICommand<Outcome<ResponderStatus>>;

/// <summary>A counsellor sets itself available for offers or away; it may take by hand either way.</summary>
public sealed class SetAvailabilityHandler(OfferRouter router) : ICommandHandler<SetAvailabilityCommand, Outcome<ResponderStatus>>
{
    public async ValueTask<Outcome<ResponderStatus>> Handle(SetAvailabilityCommand command, CancellationToken cancellationToken) =>
        await router.SetAvailabilityAsync(command.Connection, command.Available);
}

public sealed record AnswerOfferCommand(ConnectionState Connection, byte[]? SessionId, bool Accept) : ICommand<Outcome<TakenSession>>;

/// <summary>
/// Accepts (the session is then taken as by hand, through the same atomic claim) or declines an offer made to this
/// connection. Declined, the session goes to the next counsellor at once.
/// </summary>
public sealed class AnswerOfferHandler(IOfferStore offers, OfferRouter router, IMediator mediator, TimeProvider time) : ICommandHandler<AnswerOfferCommand, Outcome<TakenSession>>
{
    public async ValueTask<Outcome<TakenSession>> Handle(AnswerOfferCommand command, CancellationToken cancellationToken)
    {
        var (connection, sessionIdBytes, accept) = command;
        if (sessionIdBytes is not { Length: Wire.SessionIdSize })
        {
            return Refuse.With(ErrorCodes.BadRequest, "A session id is 16 bytes.");
        }

        var orgId = connection.Grant!.OrgId;
        var id = new Guid(sessionIdBytes, bigEndian: true);
        if (router.RulesOf(orgId) is null)
        {
            return Refuse.With(ErrorCodes.NoOffer, "This organisation makes no offers; take sessions from the queue.");
        }

        if (accept && router.CapacityOf(orgId) is var capacity and > 0 && OfferRouter.OpenChats(connection) >= capacity)
        {
            return Refuse.With(ErrorCodes.AtCapacity, $"This connection holds {capacity} chats, the most allowed; end one first or decline.");
        }

        var now = time.GetUtcNow();
        switch (await offers.AnswerAsync(orgId, id, connection.ConnectionId, accept, now, now + OfferRouter.HoldTime))
        {
            case OfferAnswer.NotOffered:
                return Refuse.With(ErrorCodes.NoOffer, "That session is not offered to this connection.");
            case OfferAnswer.Expired:
                return Refuse.With(ErrorCodes.OfferExpired, "The offer ran out before the answer came; it goes to a colleague.");
        }

        if (!accept)
        {
            router.Nudge(orgId);
            return new TakenSession();
        }

        var taken = await mediator.Send(new TakeSessionCommand(connection, sessionIdBytes), cancellationToken);
        if (taken is { Succeeded: true, Value: { } session })
        {
            return session;
        }

        // The seeker left or stepped away meanwhile: the hold goes, and the queue is offered on.
        await offers.ReleaseAsync(orgId, id);
        router.Nudge(orgId);
        return taken.Succeeded
            ? Refuse.With(ErrorCodes.NotAvailable, "That session is not waiting any more.")
            : Refuse.With(taken.Code!, taken.Message!);
    }
}
