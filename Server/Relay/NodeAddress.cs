using System.Security.Cryptography;

namespace TrustLine.Server.Relay;

/// <summary>
/// This node's random id, made at start, and the addresses it gives its connections: <c>node.connection</c>.
/// TrustLine records a party's address (not the bare SignalR connection id) wherever it records where the party is
/// connected, so any node can send to it through the node it is on without asking anyone.
/// </summary>
/// <remarks>
/// The id says nothing about the machine and lives as long as the process; a restarted node has a new one, and
/// its old connections are gone with it. A bare connection id (no dot: SignalR's ids are base64url) is this node's.
/// </remarks>
public sealed class ThisNode
{
    public const char Separator = '.';

    public string Id { get; } = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6));

    public string AddressOf(string connectionId) => string.Concat(Id, ".", connectionId);

    /// <summary>Splits an address into its node (null for a bare connection id: this node's) and its connection id.</summary>
    public static (string? Node, string ConnectionId) Split(string address)
    {
        var dot = address.IndexOf(Separator, StringComparison.Ordinal);
        return dot < 0 ? (null, address) : (address[..dot], address[(dot + 1)..]);
    }

    /// <summary>Whether the address is on this node, and then its connection id (a slice of it: no string is made).</summary>
    public bool IsLocal(string address, out ReadOnlySpan<char> connectionId)
    {
        var dot = address.IndexOf(Separator, StringComparison.Ordinal);
        if (dot < 0 || address.AsSpan(0, dot).SequenceEqual(Id))
        {
            connectionId = address.AsSpan(dot + 1);
            return true;
        }

        connectionId = default;
        return false;
    }
}
