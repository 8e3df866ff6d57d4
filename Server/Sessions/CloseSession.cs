using Mediator;
using TrustLine.Protocol.Contracts;
using TrustLine.Protocol.Crypto;
using TrustLine.Server.Relay;
using TrustLine.Server.Storage;

namespace TrustLine.Server.Sessions;

public sealed record CloseSessionCommand(ConnectionState Connection, byte[]? SessionId) : ICommand<Outcome<Done>>;

/// <summary>Either party ends the session (a queued seeker thereby leaves the queue); every key goes at once.</summary>
public sealed class CloseSessionHandler(SessionEnding ending, StoreWatch watch) : ICommandHandler<CloseSessionCommand, Outcome<Done>>
{
    public async ValueTask<Outcome<Done>> Handle(CloseSessionCommand command, CancellationToken cancellationToken)
    {
        var (connection, sessionIdBytes) = command;
        var link = connection.Party == Party.Seeker
            ? connection.Single()
            : sessionIdBytes is { Length: Wire.SessionIdSize } ? connection.Find(new Guid(sessionIdBytes, bigEndian: true)) : null;
        if (link is null || link.Ended)
        {
            return Refuse.With(ErrorCodes.NoSuchSession, "This connection holds no such session.");
        }

        // The seeker's reason says whether it left the queue: the deleted record tells, with no read before.
        Func<SessionRecord, string> reason = connection.Party == Party.Responder
            ? _ => EndReasons.ResponderClosed
            : record => record.State == SessionState.Queued ? EndReasons.SeekerLeftQueue : EndReasons.SeekerClosed;

        connection.Remove(link.SessionId);
        if (!await ending.EndAsync(link.SessionId, reason) && !link.Ended)
        {
            // No record to delete, and no end announced from elsewhere: the store lost it; the peer is told so.
            await watch.SessionGoneAsync(link);
        }

        return new Done();
    }
}
