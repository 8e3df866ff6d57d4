using System.Buffers;
using System.Security.Cryptography;
using System.Text;

namespace TrustLine.Protocol.Crypto;

/// <summary>Which end of a session a channel belongs to.</summary>
public enum ChannelRole
{
    /// <summary>The help-seeker: sends c2s, receives s2c.</summary>
    Seeker,

    /// <summary>The responder: sends s2c, receives c2s.</summary>
    Responder,
}

/// <summary>
/// An established end-to-end channel (PROTOCOL.md §3): seals and opens envelopes with a per-direction
/// ratchet, padding to buckets, a receive window for gaps, and an outbox of sealed envelopes kept until
/// acknowledged so that a resend is always the same bytes. Not thread-safe: use from one logical caller.
/// Chain state lives only here, in memory; a lost channel means a new session.
/// </summary>
public sealed class SecureChannel : IDisposable
{
    /// <summary>How many out-of-order ciphertexts are held across a gap.</summary>
    public const int MaxHeld = 64;

    /// <summary>How long a held ciphertext may wait for its gap to fill.</summary>
    public static readonly TimeSpan MaxHoldTime = TimeSpan.FromSeconds(30);

    private readonly byte[] sessionId;
    private readonly ChainKey send;
    private readonly ChainKey receive;
    private readonly byte[] transcriptHash;
    private readonly byte[]? responderEphemeralPublic;
    private readonly TimeProvider time;
    private readonly SortedDictionary<ulong, byte[]> outbox = [];
    private readonly List<Held> held = [];
    private EphemeralKey? ownEphemeral;

    internal SecureChannel(
        ChannelRole role,
        ReadOnlySpan<byte> sessionId,
        ReadOnlySpan<byte> sendChain,
        ReadOnlySpan<byte> receiveChain,
        ReadOnlySpan<byte> transcriptHash,
        ReadOnlySpan<byte> responderEphemeralPublic,
        EphemeralKey? ownEphemeral,
        TimeProvider time)
    {
        Role = role;
        this.sessionId = sessionId.ToArray();
        send = new ChainKey(sendChain);
        receive = new ChainKey(receiveChain);
        this.transcriptHash = transcriptHash.ToArray();
        this.responderEphemeralPublic = role == ChannelRole.Seeker ? responderEphemeralPublic.ToArray() : null;
        this.ownEphemeral = ownEphemeral;
        this.time = time;
    }

    /// <summary>This end's role.</summary>
    public ChannelRole Role { get; }

    /// <summary>The 16-byte session id (<c>sid</c>).</summary>
    public ReadOnlySpan<byte> SessionId => sessionId;

    /// <summary>The session id as a <see cref="Guid"/> (big-endian, so its "N" form is the hex of <c>sid</c>).</summary>
    public Guid SessionGuid => new(sessionId, bigEndian: true);

    /// <summary><c>TH = SHA-256(msg1 ‖ msg2)</c>: public, binds everything to this handshake.</summary>
    public ReadOnlySpan<byte> TranscriptHash => transcriptHash;

    /// <summary>
    /// Seeker: true once HELLO has been sealed. Responder: true once the seeker's HELLO decrypted; only
    /// then is the session established (PROTOCOL.md §2).
    /// </summary>
    public bool IsEstablished { get; private set; }

    /// <summary>Why the channel ended, or null while it is open.</summary>
    public ChannelEndReason? EndReason { get; private set; }

    /// <summary>The sequence number the next sealed envelope gets.</summary>
    public ulong NextSendSequence => send.Next;

    /// <summary>The sequence number expected next from the peer.</summary>
    public ulong NextReceiveSequence => receive.Next;

    /// <summary>How many out-of-order ciphertexts are held now.</summary>
    public int HeldCount => held.Count;

    /// <summary>When the oldest ciphertext held across a gap arrived, or null when none is held.</summary>
    public DateTimeOffset? OldestHeldAt => held.Count == 0 ? null : held.Min(h => h.ArrivedAt);

    /// <summary>The sequence number of the oldest sealed envelope not yet acknowledged, or <see cref="NextSendSequence"/> when none waits.</summary>
    public ulong FirstUnacknowledged => outbox.Count == 0 ? send.Next : outbox.Keys.First();

    /// <summary>The sealed envelope with this sequence number, if it is still unacknowledged.</summary>
    public bool TryGetUnacknowledged(ulong sequence, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out byte[]? envelope) =>
        outbox.TryGetValue(sequence, out envelope);

    /// <summary>Sealed envelopes not yet acknowledged, in order: resend exactly these bytes after a reconnect.</summary>
    public IReadOnlyList<(ulong Sequence, byte[] Envelope)> Unacknowledged => [.. outbox.Select(p => (p.Key, p.Value))];

    private Direction SendDirection => Role == ChannelRole.Seeker ? Direction.ClientToServer : Direction.ServerToClient;

    private Direction ReceiveDirection => Role == ChannelRole.Seeker ? Direction.ServerToClient : Direction.ClientToServer;

    /// <summary>
    /// Seals the seeker's HELLO, which must be its first envelope. With a <paramref name="pseudonym"/> it
    /// carries the returning-seeker proof; without, it is a new seeker's HELLO of the same size.
    /// </summary>
    public byte[] SealHello(Pseudonym? pseudonym = null)
    {
        if (Role != ChannelRole.Seeker || IsEstablished)
        {
            throw new InvalidOperationException("Only the seeker sends HELLO, once, as its first envelope.");
        }

        byte[] body;
        if (pseudonym is null)
        {
            body = [0x00];
        }
        else
        {
            body = new byte[65];
            body[0] = 0x01;
            pseudonym.PublicKey.CopyTo(body, 1);
            pseudonym.Prove(responderEphemeralPublic, transcriptHash).CopyTo(body, 33);
        }

        var envelope = SealCore(ContentType.Hello, body);
        IsEstablished = true;
        return envelope;
    }

    /// <summary>Seals a TEXT message. Throws if its UTF-8 form exceeds <see cref="Wire.MaxBodySize"/> bytes.</summary>
    public byte[] SealText(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return Seal(ContentType.Text, Encoding.UTF8.GetBytes(text));
    }

    /// <summary>Seals an end-to-end ACK of everything received in order so far.</summary>
    public byte[] SealAck()
    {
        if (receive.Next == 0)
        {
            throw new InvalidOperationException("Nothing has been received yet, so there is nothing to acknowledge.");
        }

        Span<byte> body = stackalloc byte[8];
        Wire.WriteUInt64(body, receive.Next - 1);
        return Seal(ContentType.Ack, body);
    }

    /// <summary>Seals CLOSE; the channel then ends and seals nothing more.</summary>
    public byte[] SealClose()
    {
        var envelope = Seal(ContentType.Close, []);
        EndReason = ChannelEndReason.Closed;
        return envelope;
    }

    /// <summary>Seals TEXT, ACK or CLOSE content. A sender refuses a body over <see cref="Wire.MaxBodySize"/> bytes.</summary>
    public byte[] Seal(ContentType type, ReadOnlySpan<byte> body)
    {
        if (type == ContentType.Hello)
        {
            throw new ArgumentException("Use SealHello for HELLO.", nameof(type));
        }

        if (Role == ChannelRole.Seeker && !IsEstablished)
        {
            throw new InvalidOperationException("The seeker's first envelope must be HELLO (SealHello).");
        }

        return SealCore(type, body);
    }

    /// <summary>Forgets sealed envelopes up to and including <paramref name="sequence"/>; they were delivered.</summary>
    public void Acknowledge(ulong sequence)
    {
        foreach (var seq in outbox.Keys.TakeWhile(s => s <= sequence).ToList())
        {
            outbox.Remove(seq);
        }
    }

    /// <summary>
    /// Opens an envelope from the peer. A rejected envelope changes nothing; an early one is held (never
    /// decrypted early); a late one is dropped. See PROTOCOL.md §3.
    /// </summary>
    public OpenResult TryOpen(ReadOnlySpan<byte> envelope)
    {
        if (EndReason is not null)
        {
            return OpenResult.Reject(RejectReason.ChannelEnded);
        }

        if (HoldExpired())
        {
            return OpenResult.Missing;
        }

        var check = CheckHeader(envelope, out var sequence);
        if (check != RejectReason.None)
        {
            return OpenResult.Reject(check);
        }

        if (sequence < receive.Next || IsHeld(sequence, envelope))
        {
            return OpenResult.Dropped;
        }

        if (sequence > receive.Next)
        {
            if (held.Count >= MaxHeld)
            {
                End(ChannelEndReason.MessagesMissing);
                return OpenResult.Missing;
            }

            held.Add(new Held(sequence, envelope.ToArray(), time.GetUtcNow()));
            return OpenResult.Held;
        }

        var reason = TryOpenNext(envelope, out var first);
        if (reason != RejectReason.None)
        {
            return OpenResult.Reject(reason);
        }

        var messages = new List<ReceivedMessage> { first! };
        DrainHeld(messages);
        return new OpenResult(OpenStatus.Delivered, RejectReason.None, messages);
    }

    /// <summary>
    /// Ends the channel as "messages missing" if a held ciphertext has waited longer than 30 seconds.
    /// Call it from a timer while <see cref="HeldCount"/> is non-zero; returns true if the channel ended.
    /// </summary>
    public bool CheckGap() => HoldExpired();

    /// <inheritdoc />
    public void Dispose()
    {
        send.Dispose();
        receive.Dispose();
        ownEphemeral?.Dispose();
        ownEphemeral = null;
        held.Clear();
    }

    /// <summary>The current send chain key, for the known-answer tests only.</summary>
    internal byte[] CopySendChainForTests() => send.CopyForTests();

    /// <summary>The current receive chain key, for the known-answer tests only.</summary>
    internal byte[] CopyReceiveChainForTests() => receive.CopyForTests();

    /// <summary>Encrypts an arbitrary padded plaintext as the next envelope, for negative tests only.</summary>
    internal byte[] SealPaddedForTests(ReadOnlySpan<byte> padded) => Encrypt(padded);

    private byte[] SealCore(ContentType type, ReadOnlySpan<byte> body)
    {
        if (EndReason is not null)
        {
            throw new InvalidOperationException("The channel has ended; start a new session.");
        }

        if (body.Length > Wire.MaxBodySize)
        {
            throw new ArgumentException($"A body is at most {Wire.MaxBodySize} bytes; this one is {body.Length}.", nameof(body));
        }

        var bucket = Wire.BucketFor(3 + body.Length);
        var padded = ArrayPool<byte>.Shared.Rent(bucket);
        try
        {
            var plain = padded.AsSpan(0, bucket);
            plain.Clear();
            plain[0] = (byte)type;
            plain[1] = (byte)(body.Length >> 8);
            plain[2] = (byte)body.Length;
            body.CopyTo(plain[3..]);
            return Encrypt(plain);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(padded.AsSpan(0, bucket));
            ArrayPool<byte>.Shared.Return(padded);
        }
    }

    private byte[] Encrypt(ReadOnlySpan<byte> padded)
    {
        if (send.Next >= Wire.SequenceCap)
        {
            throw new InvalidOperationException("This direction has used all 2^32 sequence numbers; start a new session.");
        }

        var sequence = send.Next;
        var envelope = new byte[Wire.HeaderSize + padded.Length + Wire.TagSize];
        EnvelopeHeader.Write(envelope, SendDirection, sessionId, sequence);
        Span<byte> messageKey = stackalloc byte[32];
        try
        {
            send.MessageKey(messageKey);
            MessageCipher.Encrypt(messageKey, sequence, envelope.AsSpan(0, Wire.HeaderSize), padded, envelope.AsSpan(Wire.HeaderSize));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(messageKey);
        }

        send.Advance();
        outbox[sequence] = envelope;
        return envelope;
    }

    private RejectReason CheckHeader(ReadOnlySpan<byte> envelope, out ulong sequence)
    {
        sequence = 0;
        if (!Wire.IsEnvelopeSize(envelope.Length))
        {
            return RejectReason.BadSize;
        }

        if (envelope[0] != Wire.Version)
        {
            return RejectReason.BadVersion;
        }

        if (envelope[1] != Wire.TypeData)
        {
            return RejectReason.BadType;
        }

        if (envelope[2] != (byte)ReceiveDirection)
        {
            return RejectReason.WrongDirection;
        }

        if (!envelope.Slice(3, Wire.SessionIdSize).SequenceEqual(sessionId))
        {
            return RejectReason.OtherSession;
        }

        sequence = Wire.ReadUInt64(envelope.Slice(19, 8));
        return sequence >= Wire.SequenceCap ? RejectReason.SequenceOutOfRange : RejectReason.None;
    }

    /// <summary>Decrypts the envelope whose seq is the next expected; commits the ratchet step only on full success.</summary>
    private RejectReason TryOpenNext(ReadOnlySpan<byte> envelope, out ReceivedMessage? message)
    {
        message = null;
        var sequence = receive.Next;
        var plainLength = envelope.Length - Wire.HeaderSize - Wire.TagSize;
        var rented = ArrayPool<byte>.Shared.Rent(plainLength);
        Span<byte> messageKey = stackalloc byte[32];
        try
        {
            var plain = rented.AsSpan(0, plainLength);
            receive.MessageKey(messageKey);
            if (!MessageCipher.TryDecrypt(messageKey, sequence, envelope[..Wire.HeaderSize], envelope[Wire.HeaderSize..], plain))
            {
                return RejectReason.AuthenticationFailed;
            }

            var reason = Unpad(plain, out var type, out var body);
            if (reason != RejectReason.None)
            {
                return reason;
            }

            reason = CheckContent(type, body, out var hello);
            if (reason == RejectReason.BadHello)
            {
                // The one rejection that ends the channel: a malformed HELLO must not leave the session waiting (§3).
                End(ChannelEndReason.BadHello);
                return reason;
            }

            if (reason != RejectReason.None)
            {
                return reason;
            }

            // Everything checked: only now does the ratchet move (a forgery must not desynchronise it).
            receive.Advance();
            message = new ReceivedMessage(sequence, type, body.ToArray()) { Hello = hello };
            if (type == ContentType.Hello)
            {
                IsEstablished = true;
                ownEphemeral?.Dispose();
                ownEphemeral = null;
            }
            else if (type == ContentType.Close)
            {
                End(ChannelEndReason.PeerClosed);
            }

            return RejectReason.None;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(messageKey);
            CryptographicOperations.ZeroMemory(rented.AsSpan(0, plainLength));
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    private static RejectReason Unpad(ReadOnlySpan<byte> plain, out ContentType type, out ReadOnlySpan<byte> body)
    {
        type = (ContentType)plain[0];
        body = default;
        var length = (plain[1] << 8) | plain[2];
        if (3 + length > plain.Length)
        {
            return RejectReason.LengthPastBucket;
        }

        if (plain[(3 + length)..].ContainsAnyExcept((byte)0))
        {
            return RejectReason.NonZeroPadding;
        }

        body = plain.Slice(3, length);
        return RejectReason.None;
    }

    private RejectReason CheckContent(ContentType type, ReadOnlySpan<byte> body, out SeekerHello? hello)
    {
        hello = null;
        var expectingHello = Role == ChannelRole.Responder && !IsEstablished;
        switch (type)
        {
            case ContentType.Hello:
                if (!expectingHello)
                {
                    return RejectReason.UnexpectedHello;
                }

                // §3: bit 0 alone decides the length (1 or 65); bits 1–7 are reserved and ignored.
                if (body.Length == 0 || body.Length != ((body[0] & 1) == 1 ? 65 : 1))
                {
                    return RejectReason.BadHello;
                }

                var returning = (body[0] & 1) == 1;

                var verified = returning && ownEphemeral is not null
                    && Returning.Verify(ownEphemeral, body.Slice(1, 32), body.Slice(33, 32), transcriptHash);
                hello = new SeekerHello(verified, verified ? body.Slice(1, 32).ToArray() : null);
                return RejectReason.None;
            case ContentType.Text or ContentType.Ack or ContentType.Close when expectingHello:
                return RejectReason.ExpectedHello;
            case ContentType.Text:
                return IsUtf8(body) ? RejectReason.None : RejectReason.MalformedBody;
            case ContentType.Ack:
                return body.Length == 8 && Wire.ReadUInt64(body) < send.Next ? RejectReason.None : RejectReason.MalformedBody;
            case ContentType.Close:
                return body.IsEmpty ? RejectReason.None : RejectReason.MalformedBody;
            default:
                // Authentic but unknown (a newer peer): the caller drops and counts it (§3), the chain moves on.
                return RejectReason.None;
        }
    }

    private static bool IsUtf8(ReadOnlySpan<byte> body) => System.Text.Unicode.Utf8.IsValid(body);

    private void DrainHeld(List<ReceivedMessage> messages)
    {
        while (EndReason is null)
        {
            var candidates = held.FindAll(h => h.Sequence == receive.Next);
            if (candidates.Count == 0)
            {
                return;
            }

            foreach (var candidate in candidates)
            {
                held.Remove(candidate);
            }

            // Several copies of one seq can be held if a relay forged one; the genuine one still opens.
            foreach (var candidate in candidates)
            {
                if (TryOpenNext(candidate.Envelope, out var message) == RejectReason.None)
                {
                    messages.Add(message!);
                    break;
                }
            }
        }
    }

    private bool IsHeld(ulong sequence, ReadOnlySpan<byte> envelope)
    {
        foreach (var h in held)
        {
            if (h.Sequence == sequence && h.Envelope.AsSpan().SequenceEqual(envelope))
            {
                return true;
            }
        }

        return false;
    }

    private bool HoldExpired()
    {
        if (EndReason == ChannelEndReason.MessagesMissing)
        {
            return true;
        }

        if (held.Count == 0 || time.GetUtcNow() - held.Min(h => h.ArrivedAt) <= MaxHoldTime)
        {
            return false;
        }

        End(ChannelEndReason.MessagesMissing);
        return true;
    }

    private void End(ChannelEndReason reason)
    {
        EndReason ??= reason;
        held.Clear();
    }

    private sealed record Held(ulong Sequence, byte[] Envelope, DateTimeOffset ArrivedAt);
}
