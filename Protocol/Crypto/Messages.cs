using System.Text;

namespace TrustLine.Protocol.Crypto;

/// <summary>Content type of a decrypted envelope (PROTOCOL.md §3).</summary>
public enum ContentType : byte
{
    /// <summary>UTF-8 text.</summary>
    Text = 0x01,

    /// <summary>The seeker's first envelope, optionally with the returning-seeker proof.</summary>
    Hello = 0x02,

    /// <summary>An end-to-end receipt: the highest sequence received in order.</summary>
    Ack = 0x03,

    /// <summary>The sender ends the session.</summary>
    Close = 0x04,
}

/// <summary>What <see cref="SecureChannel.TryOpen"/> did with an envelope.</summary>
public enum OpenStatus
{
    /// <summary>One or more messages were decrypted (a filled gap can release several).</summary>
    Delivered,

    /// <summary>The envelope is ahead of the next expected one; its ciphertext is held until the gap fills.</summary>
    Buffered,

    /// <summary>Already received (a replay or a resend); dropped.</summary>
    Duplicate,

    /// <summary>Refused; the channel is exactly as it was. See <see cref="OpenResult.Reason"/>.</summary>
    Rejected,

    /// <summary>A gap was not filled in time or the hold window overflowed; the channel has ended.</summary>
    MessagesMissing,
}

/// <summary>Why an envelope was refused.</summary>
public enum RejectReason
{
    /// <summary>Not refused.</summary>
    None = 0,

    /// <summary>The envelope is not 299, 1067, 4139 or 16427 bytes.</summary>
    BadSize,

    /// <summary>The version byte is not 0x01.</summary>
    BadVersion,

    /// <summary>The type byte is not Data (0x10).</summary>
    BadType,

    /// <summary>The direction is not the peer's (a reflected envelope).</summary>
    WrongDirection,

    /// <summary>The session id is another session's.</summary>
    OtherSession,

    /// <summary>The sequence number is at or past 2^32.</summary>
    SequenceOutOfRange,

    /// <summary>The ciphertext, tag or header failed authentication.</summary>
    AuthenticationFailed,

    /// <summary>The plaintext's declared length runs past its bucket.</summary>
    LengthPastBucket,

    /// <summary>The padding is not all zero bytes.</summary>
    NonZeroPadding,

    /// <summary>An unknown content type (no longer returned: an authentic unknown type is delivered for the caller to drop).</summary>
    UnknownContentType,

    /// <summary>The body does not fit its content type (bad UTF-8, wrong ACK or HELLO size).</summary>
    MalformedBody,

    /// <summary>The responder expected the seeker's HELLO first.</summary>
    ExpectedHello,

    /// <summary>A HELLO arrived where none is allowed.</summary>
    UnexpectedHello,

    /// <summary>The channel has already ended.</summary>
    ChannelEnded,

    /// <summary>A HELLO whose length does not match its bit 0 (1 or 65 bytes); unlike other rejections it ends the channel.</summary>
    BadHello,
}

/// <summary>Why a channel ended.</summary>
public enum ChannelEndReason
{
    /// <summary>This side closed it.</summary>
    Closed,

    /// <summary>The peer sent CLOSE.</summary>
    PeerClosed,

    /// <summary>A gap in the peer's sequence was not filled within 64 envelopes or 30 seconds.</summary>
    MessagesMissing,

    /// <summary>The seeker's HELLO was malformed ("bad hello", PROTOCOL.md §3).</summary>
    BadHello,
}

/// <summary>The seeker's HELLO as the responder saw it.</summary>
/// <param name="IsReturning">True only when the returning proof verified for this handshake.</param>
/// <param name="PseudonymPublicKey">The verified <c>s_U_pub</c>, or null for a new seeker.</param>
public sealed record SeekerHello(bool IsReturning, byte[]? PseudonymPublicKey);

/// <summary>One decrypted message.</summary>
/// <param name="Sequence">Its sequence number in the sender's direction.</param>
/// <param name="Type">Its content type.</param>
/// <param name="Body">Its body, unpadded.</param>
public sealed record ReceivedMessage(ulong Sequence, ContentType Type, byte[] Body)
{
    /// <summary>The text of a TEXT message.</summary>
    public string Text => Type == ContentType.Text ? Encoding.UTF8.GetString(Body) : "";

    /// <summary>For an ACK: the highest sequence the peer received in order.</summary>
    public ulong AcknowledgedSequence => Type == ContentType.Ack ? Wire.ReadUInt64(Body) : 0;

    /// <summary>For the responder's view of a HELLO: whether the seeker proved a pseudonym.</summary>
    public SeekerHello? Hello { get; init; }
}

/// <summary>The outcome of opening one envelope.</summary>
/// <param name="Status">What happened.</param>
/// <param name="Reason">Why it was rejected, when <paramref name="Status"/> is <see cref="OpenStatus.Rejected"/>.</param>
/// <param name="Messages">Messages released, in order (empty unless delivered).</param>
public sealed record OpenResult(OpenStatus Status, RejectReason Reason, IReadOnlyList<ReceivedMessage> Messages)
{
    internal static OpenResult Reject(RejectReason reason) => new(OpenStatus.Rejected, reason, []);

    internal static readonly OpenResult Held = new(OpenStatus.Buffered, RejectReason.None, []);

    internal static readonly OpenResult Dropped = new(OpenStatus.Duplicate, RejectReason.None, []);

    internal static readonly OpenResult Missing = new(OpenStatus.MessagesMissing, RejectReason.None, []);
}
