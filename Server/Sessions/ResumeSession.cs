using System.Security.Cryptography;
using Mediator;
using Microsoft.Extensions.Options;
using TrustLine.Protocol.Contracts;
using TrustLine.Protocol.Crypto;
using TrustLine.Server.Relay;
using TrustLine.Server.Storage;

namespace TrustLine.Server.Sessions;

public sealed record ResumeSessionCommand(ConnectionState Connection, ResumeSessionRequest Request) : ICommand<Outcome<ResumeSessionResult>>;

/// <summary>
/// A party comes back on a new connection, on any node: the seeker with its resume token, the responder
/// with its access token. It gets what it missed, in order, and envelopes flow again.
/// </summary>
public sealed class ResumeSessionHandler(
    ISessionStore store,
    PeerRoutes routes,
    SessionEnding ending,
    IOptions<SessionLimits> options,
    TimeProvider time,
    ILogger<ResumeSessionHandler> logger) : ICommandHandler<ResumeSessionCommand, Outcome<ResumeSessionResult>>
{
    private static readonly TimeSpan FollowUpDelay = TimeSpan.FromMilliseconds(500);

    public async ValueTask<Outcome<ResumeSessionResult>> Handle(ResumeSessionCommand command, CancellationToken cancellationToken)
    {
        var (connection, request) = command;
        if (request?.SessionId is not { Length: Wire.SessionIdSize } || request.ReceivedThrough < -1)
        {
            return Refuse.With(ErrorCodes.BadRequest, "A resume names a 16-byte session id.");
        }

        var sessionId = new Guid(request.SessionId, bigEndian: true);
        var party = connection.Party;
        if (connection.Links.ContainsKey(sessionId) || (party == Party.Seeker && connection.Links.Count > 0))
        {
            return Refuse.With(ErrorCodes.AlreadyInSession, "This connection already acts on a session.");
        }

        var record = await store.GetAsync(sessionId);
        var allowed = record is not null && (party == Party.Seeker
            ? request.ResumeToken is { Length: 32 } && CryptographicOperations.FixedTimeEquals(SHA256.HashData(request.ResumeToken), record.ResumeTokenHash)
            : connection.Grant is { } grant && record.ResponderId == grant.ResponderId && record.OrgId.AsSpan().SequenceEqual(grant.OrgId));
        if (!allowed)
        {
            // One answer for "no such session" and "wrong credential": no oracle for session ids.
            return Refuse.With(ErrorCodes.ResumeRefused, "That session cannot be resumed with this credential.");
        }

        var now = time.GetUtcNow();
        if (SessionTimers.DueReason(record!, now, options.Value) is { } reason)
        {
            await ending.EndAsync(sessionId, reason);
            return Refuse.With(ErrorCodes.ResumeRefused, "The session has ended: the grace period or its lifetime is over.");
        }

        var sends = party == Party.Seeker ? Direction.ClientToServer : Direction.ServerToClient;
        var receives = party == Party.Seeker ? Direction.ServerToClient : Direction.ClientToServer;
        var window = options.Value.MaxUnacknowledged;

        // Where this party's own sending stands: after its peer's ack and after anything still buffered.
        var ownAcked = record!.Acked(sends);
        var ownBuffered = await store.GetEnvelopesAsync(sessionId, sends, ownAcked, window);
        var link = new SessionLink(sessionId, record.OrgId, record.Deadline)
        {
            Answered = record.Msg2 is not null,
            NextSend = (ulong)(ownBuffered.Count > 0 ? (long)ownBuffered[^1].Sequence + 1 : ownAcked + 1),
            KnownPeerAck = ownAcked,
            LastTouch = now,
        };
        connection.Links[sessionId] = link;
        routes.Track(link);
        await store.SetConnectionAsync(sessionId, party, connection.ConnectionId, null);
        await routes.MovedAsync(sessionId, party, connection.ConnectionId);
        SessionLog.Resumed(logger, party.ToString());

        // Deliver what was missed, in order, before the answer completes.
        var after = Math.Max(request.ReceivedThrough, record.Acked(receives));
        var missed = await store.GetEnvelopesAsync(sessionId, receives, after, window);
        await DeliverAsync(connection, missed);

        // A peer node may still have sent one envelope to the old connection before it heard of this one,
        // its buffer write landing after the read above. Look once more, shortly after; the receiving
        // channel drops anything it already has, and fills the gap with the rest.
        var delivered = missed.Count > 0 ? (long)missed[^1].Sequence : after;
        _ = Task.Run(async () =>
        {
            try
            {
                await Task.Delay(FollowUpDelay, time);
                if (!link.Ended)
                {
                    await DeliverAsync(connection, await store.GetEnvelopesAsync(sessionId, receives, delivered, window));
                }
            }
            catch (Exception e) when (e is StackExchange.Redis.RedisException or TimeoutException or InvalidOperationException or ObjectDisposedException)
            {
                // The next resume delivers it instead.
            }
        }, CancellationToken.None);

        var queued = record.State == SessionState.Queued;
        var (position, waiting) = queued ? await store.GetQueuePositionAsync(record.OrgId, sessionId) : (0, 0);
        return new ResumeSessionResult
        {
            Queued = queued,
            Msg2 = party == Party.Seeker ? record.Msg2 : null,
            Msg1 = party == Party.Responder ? record.Msg1 : null,
            NextSequence = link.NextSend,
            Queue = new QueueStatus { Position = position, Waiting = waiting },
        };
    }

    private async Task DeliverAsync(ConnectionState connection, IReadOnlyList<(ulong Sequence, byte[] Envelope)> envelopes)
    {
        foreach (var (_, envelope) in envelopes)
        {
            if (connection.Party == Party.Seeker)
            {
                await routes.Seeker(connection.ConnectionId)!.Envelope(envelope);
            }
            else
            {
                await routes.Responder(connection.ConnectionId)!.Envelope(envelope);
            }
        }
    }
}

public sealed record ConnectionLostCommand(ConnectionState Connection) : ICommand<Outcome<Done>>;

/// <summary>A connection dropped: its sessions are "disconnected", not ended, until the grace period runs out.</summary>
public sealed class ConnectionLostHandler(
    ISessionStore store,
    PeerRoutes routes,
    IOptions<SessionLimits> options,
    TimeProvider time,
    ILogger<ConnectionLostHandler> logger) : ICommandHandler<ConnectionLostCommand, Outcome<Done>>
{
    public async ValueTask<Outcome<Done>> Handle(ConnectionLostCommand command, CancellationToken cancellationToken)
    {
        var connection = command.Connection;
        var now = time.GetUtcNow();
        foreach (var link in connection.Links.Values)
        {
            routes.Untrack(link);
            if (link.Ended)
            {
                continue;
            }

            // Only mark the party away if this connection is still its current one (it may have resumed elsewhere).
            var record = await store.GetAsync(link.SessionId);
            if (record is null || record.Connection(connection.Party) != connection.ConnectionId)
            {
                continue;
            }

            await store.SetConnectionAsync(link.SessionId, connection.Party, null, now);
            await routes.MovedAsync(link.SessionId, connection.Party, null);
            var away = connection.Party == Party.Seeker ? record with { SeekerGoneAt = now } : record with { ResponderGoneAt = now };
            await store.ScheduleAsync(link.SessionId, SessionTimers.Next(away, options.Value), record.Deadline);
            SessionLog.Dropped(logger, connection.Party.ToString());
        }

        connection.Links.Clear();
        return new Done();
    }
}
