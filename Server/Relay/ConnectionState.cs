using Microsoft.AspNetCore.SignalR;
using TrustLine.Server.Storage;

namespace TrustLine.Server.Relay;

/// <summary>
/// What one connection may do, kept in the connection itself so the hot path needs no Redis round trip
/// for authorisation: its party, its responder grant, and the sessions it holds.
/// </summary>
/// <remarks>
/// The disconnect handler can run while a call of the same connection is still in flight, so the links
/// sit behind a lock, and closing is final: a handler that finishes after the close cannot add its link
/// (<see cref="TryAdd"/> says so) and must undo or hand over what it did for the connection.
/// </remarks>
public sealed class ConnectionState
{
    private const string ItemKey = "trustline";

    private readonly Lock gate = new();
    private readonly Dictionary<Guid, SessionLink> links = [];
    private bool closed;

    private ConnectionState(string connectionId, Party party, ResponderGrant? grant)
    {
        ConnectionId = connectionId;
        Party = party;
        Grant = grant;
    }

    /// <summary>
    /// The connection's address (<c>node.connection</c>, see <see cref="ThisNode"/>): what the store records as where a
    /// party is connected, and what any node sends to.
    /// </summary>
    public string ConnectionId { get; }

    public Party Party { get; }

    /// <summary>The responder's grant (organisation and key id); null for a seeker.</summary>
    public ResponderGrant? Grant { get; }

    /// <summary>A seeker connection's address as a keyed hash (<see cref="Limits.AddressTags"/>); null when it has none.</summary>
    public Limits.AddressTag? Address { get; set; }

    /// <summary>How many sessions this connection acts on: at most one for a seeker.</summary>
    public int LinkCount
    {
        get
        {
            lock (gate)
            {
                return links.Count;
            }
        }
    }

    /// <summary>The connection has closed (<see cref="Close"/>): nothing may be added to it any more.</summary>
    public bool IsClosed
    {
        get
        {
            lock (gate)
            {
                return closed;
            }
        }
    }

    /// <summary>Gives a new connection its state; <see cref="ConnectionId"/> is its address on this node (<see cref="ThisNode"/>).</summary>
    public static ConnectionState Attach(HubCallerContext context, ThisNode node, Party party, ResponderGrant? grant = null)
    {
        var state = Create(node.AddressOf(context.ConnectionId), party, grant);
        context.Items[ItemKey] = state;
        return state;
    }

    /// <summary>State for a connection id without a hub context (tests drive handlers through the mediator).</summary>
    internal static ConnectionState Create(string connectionId, Party party, ResponderGrant? grant = null) => new(connectionId, party, grant);

    public static ConnectionState Of(HubCallerContext context) =>
        context.Items.TryGetValue(ItemKey, out var value) && value is ConnectionState state
            ? state
            : throw new InvalidOperationException("The connection has no TrustLine state; OnConnectedAsync did not run.");

    public SessionLink? Find(Guid sessionId)
    {
        lock (gate)
        {
            return links.GetValueOrDefault(sessionId);
        }
    }

    /// <summary>The links held now, copied under the lock.</summary>
    public IReadOnlyList<SessionLink> Snapshot()
    {
        lock (gate)
        {
            return [.. links.Values];
        }
    }

    /// <summary>The seeker's one session, or null.</summary>
    public SessionLink? Single()
    {
        lock (gate)
        {
            return links.Count == 1 ? links.Values.First() : null;
        }
    }

    /// <summary>Adds a link; false once the connection has closed (the caller then undoes or hands over its work).</summary>
    public bool TryAdd(SessionLink link)
    {
        lock (gate)
        {
            if (closed)
            {
                return false;
            }

            links[link.SessionId] = link;
            link.Owner = this;
            return true;
        }
    }

    public void Remove(Guid sessionId)
    {
        lock (gate)
        {
            links.Remove(sessionId);
        }
    }

    /// <summary>Closes the connection for good and hands back the links it held.</summary>
    public IReadOnlyList<SessionLink> Close()
    {
        lock (gate)
        {
            closed = true;
            List<SessionLink> held = [.. links.Values];
            links.Clear();
            return held;
        }
    }
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

    /// <summary>The connection that holds this link, once added to it: where this node tells the party news.</summary>
    public ConnectionState? Owner { get; set; }

    /// <summary>Set before <see cref="Ended"/> when the store lost the session, so refusals can say so.</summary>
    public volatile bool Lost;

    /// <summary>Set when the session ended on any node; the link then refuses everything.</summary>
    public volatile bool Ended;
}
