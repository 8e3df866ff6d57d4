using Microsoft.AspNetCore.SignalR;
using TrustLine.Server.Storage;

namespace TrustLine.Server.Relay;

/// <summary>
/// What one connection may do, kept in the connection itself so the hot path needs no Redis round trip
/// for authorisation: its party, its responder grant, and the sessions it holds.
/// </summary>
public sealed class ConnectionState
{
    private const string ItemKey = "trustline";

    private ConnectionState(string connectionId, Party party, ResponderGrant? grant)
    {
        ConnectionId = connectionId;
        Party = party;
        Grant = grant;
    }

    public string ConnectionId { get; }

    public Party Party { get; }

    /// <summary>The responder's grant (organisation and key id); null for a seeker.</summary>
    public ResponderGrant? Grant { get; }

    /// <summary>The sessions this connection acts on: at most one for a seeker.</summary>
    public Dictionary<Guid, SessionLink> Links { get; } = [];

    public static ConnectionState Attach(HubCallerContext context, Party party, ResponderGrant? grant = null)
    {
        var state = new ConnectionState(context.ConnectionId, party, grant);
        context.Items[ItemKey] = state;
        return state;
    }

    public static ConnectionState Of(HubCallerContext context) =>
        context.Items.TryGetValue(ItemKey, out var value) && value is ConnectionState state
            ? state
            : throw new InvalidOperationException("The connection has no TrustLine state; OnConnectedAsync did not run.");
}

/// <summary>One session as seen from one connection of one party.</summary>
public sealed class SessionLink(Guid sessionId, byte[] orgId, DateTimeOffset deadline)
{
    public Guid SessionId { get; } = sessionId;

    public byte[] OrgId { get; } = orgId;

    public DateTimeOffset Deadline { get; } = deadline;

    /// <summary>Seeker only: the responder has answered, so envelopes may flow.</summary>
    public bool Answered { get; set; }

    /// <summary>The seq this party must send next.</summary>
    public ulong NextSend { get; set; }

    /// <summary>The highest of this party's seqs the peer is known to have acknowledged (−1 for none).</summary>
    public long KnownPeerAck { get; set; } = -1;

    /// <summary>When this link last refreshed the session's activity.</summary>
    public DateTimeOffset LastTouch { get; set; }

    /// <summary>Set when the session ended on any node; the link then refuses everything.</summary>
    public volatile bool Ended;
}
