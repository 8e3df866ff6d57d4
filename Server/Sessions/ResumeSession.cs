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
    Departures departures,
    QueueNotifier queue,
    IOptions<SessionLimits> options,
    TimeProvider time,
    Offers.OfferRouter offers,
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
        if (connection.Find(sessionId) is not null || (party == Party.Seeker && connection.LinkCount > 0))
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
        // Only the seqs that can be buffered (up to the highest ever written) are read: none for a fresh session.
        var ownBuffered = await store.GetEnvelopesAsync(sessionId, sends, ownAcked, Readable(record, sends, ownAcked, window));
        var link = new SessionLink(sessionId, record.OrgId, record.Deadline)
        {
            Answered = record.Msg2 is not null,
            NextSend = (ulong)(ownBuffered.Count > 0 ? (long)ownBuffered[^1].Sequence + 1 : ownAcked + 1),
            KnownPeerAck = ownAcked,
            LastTouch = now,
        };
        routes.Track(link);
        if (await store.SetConnectionAsync(sessionId, party, connection.ConnectionId, null) is not { } epoch)
        {
            routes.Untrack(link);
            return Refuse.With(ErrorCodes.ResumeRefused, "The session has ended.");
        }

        await routes.MovedAsync(sessionId, party, connection.ConnectionId, epoch);
        if (!connection.TryAdd(link))
        {
            // The connection closed while this ran, after its disconnect handler: the party is away again.
            routes.Untrack(link);
            await departures.LeftAsync(sessionId, party, connection.ConnectionId);
            return Refuse.With(ErrorCodes.ResumeRefused, "The connection closed while resuming; resume again.");
        }

        SessionLog.Resumed(logger, party.ToString());
        if (party == Party.Seeker && record.Msg2 is not null)
        {
            await departures.TellResponderAsync(sessionId, connected: true);
        }

        if (party == Party.Seeker && record.TransferTo is { } target && record.TransferUntil is { } until && until > now)
        {
            // A transfer proposed while the seeker was away is asked again, with the time that is left.
            await routes.Seeker(connection.ConnectionId)!.TransferProposed(new TransferProposal
            {
                SessionId = request.SessionId,
                OrgId = target,
                AnswerWithinSeconds = (int)(until - now).TotalSeconds,
            });
        }

        // Deliver what was missed, in order, before the answer completes.
        var after = Math.Max(request.ReceivedThrough, record.Acked(receives));
        var missed = await store.GetEnvelopesAsync(sessionId, receives, after, Readable(record, receives, after, window));
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
        var status = new QueueStatus();
        if (queued && party == Party.Seeker)
        {
            // Back in the organisation's seeker group (on this node), then told its exact place: where it stands
            // after being away, whatever notices it missed.
            await queue.JoinAsync(connection.ConnectionId, record.OrgId);
            status = await queue.StatusAsync(record.OrgId, sessionId);
        }

        if (queued)
        {
            offers.Nudge(record.OrgId); // a waiting seeker who is back can be offered again
        }

        return new ResumeSessionResult
        {
            Queued = queued,
            Msg2 = party == Party.Seeker ? record.Msg2 : null,
            Msg1 = party == Party.Responder ? record.Msg1 : null,
            NextSequence = link.NextSend,
            Queue = status,
        };
    }

    /// <summary>How many seqs after <paramref name="after"/> the record says can be buffered (a write landing after the read is found by the follow-up).</summary>
    private static int Readable(SessionRecord record, Direction direction, long after, int window) =>
        (int)Math.Clamp(record.Highest(direction) - after, 0, window);

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
public sealed class ConnectionLostHandler(PeerRoutes routes, Departures departures) : ICommandHandler<ConnectionLostCommand, Outcome<Done>>
{
    public async ValueTask<Outcome<Done>> Handle(ConnectionLostCommand command, CancellationToken cancellationToken)
    {
        var connection = command.Connection;

        // Closing first: a call of this connection still in flight can no longer add a link, and hands over itself.
        foreach (var link in connection.Close())
        {
            routes.Untrack(link);
            if (!link.Ended)
            {
                await departures.LeftAsync(link.SessionId, connection.Party, connection.ConnectionId);
            }
        }

        return new Done();
    }
}

/// <summary>
/// A party's connection is gone. If it is still the party's current one (the party may have resumed
/// elsewhere meanwhile; the store compares atomically), the party is "disconnected", not gone: its grace
/// timer starts. The disconnect handler uses this, and so does a handler that finishes after its
/// connection closed, so that no dead connection id stays recorded without a timer.
/// </summary>
public sealed class Departures(
    ISessionStore store,
    PeerRoutes routes,
    IOptions<SessionLimits> options,
    TimeProvider time,
    ILogger<Departures> logger)
{
    public async Task LeftAsync(Guid sessionId, Party party, string connectionId)
    {
        if (await store.MarkGoneAsync(sessionId, party, connectionId, time.GetUtcNow()) is not { } epoch)
        {
            return;
        }

        await routes.MovedAsync(sessionId, party, null, epoch);
        if (await store.GetAsync(sessionId) is { } record)
        {
            await store.ScheduleAsync(record.OrgId, sessionId, SessionTimers.Next(record, options.Value), record.Deadline);
        }

        SessionLog.Dropped(logger, party.ToString());
        if (party == Party.Seeker)
        {
            await TellResponderAsync(sessionId, connected: false);
        }
    }

    /// <summary>Tells the counsellor holding the session, wherever it is connected, that the seeker went away or came back.</summary>
    public async Task TellResponderAsync(Guid sessionId, bool connected)
    {
        if (routes.Responder(await routes.ConnectionOfAsync(sessionId, Party.Responder)) is { } responder)
        {
            await responder.SeekerConnection(sessionId.ToByteArray(bigEndian: true), connected);
        }
    }
}
