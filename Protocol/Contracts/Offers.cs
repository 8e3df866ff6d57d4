using MessagePack;

namespace TrustLine.Protocol.Contracts;

/// <summary>A waiting session offered to one responder: routing fields only, and how long the offer stands.</summary>
[MessagePackObject]
public sealed class Offer
{
    /// <summary>The 16-byte session id.</summary>
    [Key(0)] public byte[] SessionId { get; set; } = [];

    /// <summary>Language.</summary>
    [Key(1)] public string Language { get; set; } = "";

    /// <summary>Topic, or empty.</summary>
    [Key(2)] public string Topic { get; set; } = "";

    /// <summary>Urgent flag.</summary>
    [Key(3)] public bool Urgent { get; set; }

    /// <summary>How long it has waited, whole seconds.</summary>
    [Key(4)] public int WaitingSeconds { get; set; }

    /// <summary>Whole seconds left to accept or decline; then it goes to the next responder.</summary>
    [Key(5)] public int ExpiresInSeconds { get; set; }
}

/// <summary>A responder connection's availability, capacity and open chats.</summary>
[MessagePackObject]
public sealed class ResponderStatus
{
    /// <summary>True when available for offers.</summary>
    [Key(0)] public bool Available { get; set; }

    /// <summary>Chats this connection holds now; −1 in a notice from a node that does not hold the connection (it cannot count them).</summary>
    [Key(1)] public int OpenChats { get; set; }

    /// <summary>The most chats it may hold at once; 0 for no limit.</summary>
    [Key(2)] public int Capacity { get; set; }

    /// <summary>Whether the organisation offers sessions to available responders (otherwise responders take them).</summary>
    [Key(3)] public bool OffersOn { get; set; }

    /// <summary>Why the server changed the availability, one of <see cref="OfferEndReasons"/>, or empty when the responder did.</summary>
    [Key(4)] public string Reason { get; set; } = "";
}

/// <summary>Stable reasons an offer ends without being accepted, and why the server set a responder away.</summary>
public static class OfferEndReasons
{
    /// <summary>Nobody answered the offer in time; after several in a row the responder is set away.</summary>
    public const string Lapsed = "lapsed";

    /// <summary>The responder declined it.</summary>
    public const string Declined = "declined";

    /// <summary>The session was taken by someone else or ended.</summary>
    public const string Gone = "gone";

    /// <summary>The responder set itself away.</summary>
    public const string Away = "away";
}
