using System.Diagnostics;
using Mediator;
using Microsoft.Extensions.Options;
using TrustLine.Protocol.Contracts;
using TrustLine.Protocol.Crypto;
using TrustLine.Server.Sessions;
using TrustLine.Server.Storage;

namespace TrustLine.Server.Relay;

/// <summary>
/// The hot path. Checks the clear header only (PROTOCOL.md §5) against the connection's own state, keeps
/// the ciphertext until the peer acknowledges it (one Redis command, awaited: a send is answered only once
/// the envelope is buffered), and forwards it to the peer's connection. A resend of a seq the sender was
/// told was accepted is acknowledged and not relayed again; a resend after a failed send is accepted.
/// </summary>
/// <remarks>
/// The hubs call <see cref="SendAsync"/> directly rather than through the mediator: every layer that awaits the
/// buffer write boxes its async state when the write really waits for Redis, and the mediator's metrics behaviour,
/// its handler wrapper and the hub method were three such layers per envelope. <see cref="SendAsync"/> is one
/// async method from the checks to the answer, and records the same metrics as the behaviour does (BENCHMARKS.md,
/// "Relay hot path on Redis (issue 15, third pass)").
/// </remarks>
public sealed class SendEnvelopeHandler(
    ISessionStore store,
    PeerRoutes routes,
    SessionEnding ending,
    StoreWatch watch,
    IOptions<SessionLimits> options,
    Operations.Metrics.TrustLineMetrics metrics,
    TimeProvider time)
{
    private const string Command = Operations.Metrics.MetricsBehaviour.SendEnvelope;

    /// <summary>
    /// A hub's send: the answer once the envelope is buffered, or a <see cref="RefusedException"/> for the hub
    /// filter to turn into the call's error. Metered like every hub command (duration, outcome, refusal code,
    /// store failure, envelope relayed).
    /// </summary>
    public async Task<SendResult> SendAsync(ConnectionState connection, byte[] envelope)
    {
        var started = Stopwatch.GetTimestamp();
        try
        {
            if (envelope is null || !EnvelopeHeader.TryParse(envelope, out var header))
            {
                return Answer(started, envelope, Refuse.With(ErrorCodes.BadEnvelope, "An envelope is 299, 1067, 4139 or 16427 bytes of version 1, type Data, direction 1 or 2."));
            }

            var sends = connection.Party == Party.Seeker ? Direction.ClientToServer : Direction.ServerToClient;
            if (header.Direction != sends)
            {
                return Answer(started, envelope, Refuse.With(ErrorCodes.BadEnvelope, "The envelope's direction is not this party's."));
            }

            var link = connection.Find(header.SessionId);
            if (link is null || link.Ended)
            {
                return Answer(started, envelope,
                    link is { Lost: true } ? StoreWatch.LostRefusal : Refuse.With(ErrorCodes.NoSuchSession, "This connection holds no session with that id."));
            }

            var now = time.GetUtcNow();
            if (now >= link.Deadline - SessionTimers.LifetimeMargin)
            {
                // The reaper ends the session at this moment; the relay does not count on its timer.
                link.Ended = true;
                await ending.EndAsync(link.SessionId, EndReasons.MaxLifetime);
                return Answer(started, envelope, Refuse.With(ErrorCodes.NoSuchSession, "The session has ended: it reached its maximum lifetime."));
            }

            if (!link.Answered && connection.Party == Party.Seeker)
            {
                // Once per session: the answer may have come through another node.
                link.Answered = (await store.GetAsync(link.SessionId))?.Msg2 is not null;
                if (!link.Answered)
                {
                    return Answer(started, envelope, Refuse.With(ErrorCodes.WrongState, "No responder has answered yet; envelopes flow after msg2."));
                }
            }

            if (header.Sequence < link.NextSend)
            {
                return Answer(started, envelope, new SendResult { Sequence = header.Sequence, Duplicate = true });
            }

            if (header.Sequence > link.NextSend)
            {
                return Answer(started, envelope, Refuse.With(ErrorCodes.OutOfOrder, "The sequence number is not the next one; send envelopes in order, each once."));
            }

            var window = options.Value.MaxUnacknowledged;
            if ((long)header.Sequence - link.KnownPeerAck > window)
            {
                link.KnownPeerAck = (await store.GetAsync(link.SessionId))?.Acked(sends) ?? link.KnownPeerAck;
                if ((long)header.Sequence - link.KnownPeerAck > window)
                {
                    return Answer(started, envelope, Refuse.With(ErrorCodes.BufferFull, $"{window} envelopes wait unacknowledged; wait for the peer."));
                }
            }

            var expires = Min(now + options.Value.EnvelopeMaxAge, link.Deadline);
            var peer = await routes.ConnectionOfAsync(link.SessionId, connection.Party == Party.Seeker ? Party.Responder : Party.Seeker);

            // Accepted means buffered: the send is answered, and its seq used up, only once the buffer holds it. The
            // live forward runs alongside the write rather than after it, so waiting costs one round trip, not two.
            // A forward of an envelope that then turns out a duplicate or too late is dropped by the receiving channel.
            var write = store.AppendEnvelopeAsync(link.SessionId, sends, header.Sequence, envelope, expires);
            var forward = ForwardAsync(connection.Party, peer, envelope);

            // Activity keeps the session from idling out; refreshed now and then, not per envelope, and sent
            // alongside the write rather than after it: no round trip of its own.
            var touch = Task.CompletedTask;
            if (now - link.LastTouch > options.Value.IdleTimeout / 8)
            {
                link.LastTouch = now;
                touch = store.TouchAsync(link.SessionId, now, link.Deadline);
            }

            AppendOutcome stored;
            try
            {
                stored = await write;
            }
            finally
            {
                await forward;
                await touch;
            }

            if (stored == AppendOutcome.SessionGone)
            {
                // Ended on another node, whose word has not reached this one yet; or the store lost the session.
                return Answer(started, envelope, await watch.SessionGoneAsync(link) || link.Lost
                    ? StoreWatch.LostRefusal
                    : Refuse.With(ErrorCodes.NoSuchSession, "The session has ended."));
            }

            // A duplicate here is the resend of a send whose answer was lost (or failed after the write landed): it is
            // in the buffer, and was forwarded again above.
            link.NextSend = header.Sequence + 1;
            if (stored == AppendOutcome.Stored)
            {
                metrics.EnvelopeStored(envelope.Length, recipientAway: peer is null);
            }

            return Answer(started, envelope, new SendResult { Sequence = header.Sequence, Duplicate = stored == AppendOutcome.Duplicate });
        }
        catch (Exception e) when (e is StackExchange.Redis.RedisException or TimeoutException)
        {
            metrics.StoreFailed(Command);
            metrics.CommandHandled(Command, "error", Stopwatch.GetElapsedTime(started));
            throw;
        }
    }

    /// <summary>What the metrics behaviour records of a handled send; then the value, or the refusal thrown.</summary>
    private SendResult Answer(long started, byte[]? envelope, Outcome<SendResult> outcome)
    {
        metrics.CommandHandled(Command, outcome.Succeeded ? "ok" : "refused", Stopwatch.GetElapsedTime(started));
        if (!outcome.Succeeded)
        {
            metrics.Refused(Command, outcome.Code);
        }
        else if (outcome.Value is { Duplicate: false })
        {
            metrics.EnvelopeRelayed(envelope!.Length);
        }

        return outcome.ValueOrRefuse();
    }

    private static DateTimeOffset Min(DateTimeOffset a, DateTimeOffset b) => a < b ? a : b;

    /// <summary>
    /// Hands the envelope to the peer's connection, through that node's channel when it is on another node. A failed
    /// forward is not a failed send (the envelope is buffered): the watch re-delivers from the buffer.
    /// </summary>
    private async Task ForwardAsync(Party from, string? peer, byte[] envelope)
    {
        try
        {
            if (from == Party.Seeker)
            {
                if (routes.Responder(peer) is { } responder)
                {
                    await responder.Envelope(envelope);
                }
            }
            else if (routes.Seeker(peer) is { } seeker)
            {
                await seeker.Envelope(envelope);
            }
        }
        catch (Exception e) when (e is StackExchange.Redis.RedisException or TimeoutException)
        {
            watch.Reported();
        }
    }
}

public sealed record AcknowledgeCommand(ConnectionState Connection, byte[]? SessionId, ulong Through) : ICommand<Outcome<Done>>;

/// <summary>The recipient confirms envelopes up to a seq (cumulative): they are forgotten, and the sender is told.</summary>
public sealed class AcknowledgeHandler(ISessionStore store, PeerRoutes routes, StoreWatch watch, IOptions<SessionLimits> options)
    : ICommandHandler<AcknowledgeCommand, Outcome<Done>>
{
    public async ValueTask<Outcome<Done>> Handle(AcknowledgeCommand command, CancellationToken cancellationToken)
    {
        var (connection, sessionIdBytes, through) = command;
        SessionLink? link;
        if (connection.Party == Party.Seeker)
        {
            link = connection.Single();
        }
        else
        {
            link = sessionIdBytes is { Length: Wire.SessionIdSize }
                ? connection.Find(new Guid(sessionIdBytes, bigEndian: true))
                : null;
        }

        if (link is null || link.Ended)
        {
            return link is { Lost: true } ? StoreWatch.LostRefusal : Refuse.With(ErrorCodes.NoSuchSession, "This connection holds no such session.");
        }

        if (through >= Wire.SequenceCap)
        {
            return Refuse.With(ErrorCodes.BadRequest, "A sequence number is below 2^32.");
        }

        var received = connection.Party == Party.Seeker ? Direction.ServerToClient : Direction.ClientToServer;
        var acked = await store.AcknowledgeAsync(link.SessionId, received, through, options.Value.MaxUnacknowledged);
        if (acked == -3)
        {
            return Refuse.With(ErrorCodes.BadRequest, "That acknowledges envelopes that have not been sent.");
        }

        if (acked < -1)
        {
            return await watch.SessionGoneAsync(link) || link.Lost
                ? StoreWatch.LostRefusal
                : Refuse.With(ErrorCodes.NoSuchSession, "The session has ended.");
        }

        var sender = await routes.ConnectionOfAsync(link.SessionId, connection.Party == Party.Seeker ? Party.Responder : Party.Seeker);
        if (connection.Party == Party.Seeker)
        {
            if (routes.Responder(sender) is { } responder)
            {
                await responder.Delivered(link.SessionId.ToByteArray(bigEndian: true), (ulong)acked);
            }
        }
        else if (routes.Seeker(sender) is { } seeker)
        {
            await seeker.Delivered((ulong)acked);
        }

        return new Done();
    }
}
