using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using Mediator;
using Microsoft.Extensions.Options;
using TrustLine.Protocol.Contracts;
using TrustLine.Protocol.Crypto;
using TrustLine.Server.Sessions;
using TrustLine.Server.Storage;

namespace TrustLine.Server.Limits;

/// <summary>
/// A keyed hash of a connection's network address, the only form in which an address is ever held: HMAC-SHA-256
/// under a random key that lives in this node's memory and is replaced every <see cref="LimitOptions.AddressKeyLifetime"/>,
/// so a tag cannot be turned back into an address, matched across nodes, or matched with a tag from before the last
/// rotation. Tags are never written to a store, a log or a metric.
/// </summary>
public readonly record struct AddressTag(long Generation, UInt128 Value);

/// <summary>Makes <see cref="AddressTag"/>s, and rotates their key.</summary>
public sealed class AddressTags(IOptions<LimitOptions> options, TimeProvider time)
{
    private readonly Lock gate = new();
    private byte[] key = RandomNumberGenerator.GetBytes(32);
    private long generation;
    private DateTimeOffset rotatedAt = time.GetUtcNow();
    // Unset: a proxy on the same host (loopback), where only the host's own processes can send the header.
    private readonly IPNetwork[] proxies = options.Value.TrustedProxies.Count > 0
        ? [.. options.Value.TrustedProxies.Select(p => ParseProxy(p)!.Value)]
        : [IPNetwork.Parse("127.0.0.0/8"), IPNetwork.Parse("::1/128")];

    /// <summary>The key's generation now: a tag of an older generation is stale.</summary>
    public long Generation
    {
        get
        {
            lock (gate)
            {
                Rotate();
                return generation;
            }
        }
    }

    /// <summary>
    /// The tag of the connection's address; null when it has none (a test server). Behind a proxy listed in
    /// <see cref="LimitOptions.TrustedProxies"/>, the address is the last one that proxy put in <c>X-Forwarded-For</c>.
    /// </summary>
    public AddressTag? Of(HttpContext? context)
    {
        if (context?.Connection.RemoteIpAddress is not { } address)
        {
            return null;
        }

        address = Normalise(address);
        if (proxies.Any(p => p.Contains(address)) && LastForwarded(context.Request.Headers["X-Forwarded-For"].ToString()) is { } forwarded)
        {
            address = forwarded;
        }

        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out var written);
        Span<byte> mac = stackalloc byte[32];
        lock (gate)
        {
            Rotate();
            HMACSHA256.HashData(key, bytes[..written], mac);
            return new AddressTag(generation, System.Buffers.Binary.BinaryPrimitives.ReadUInt128LittleEndian(mac));
        }
    }

    private void Rotate()
    {
        var now = time.GetUtcNow();
        if (now - rotatedAt < options.Value.AddressKeyLifetime)
        {
            return;
        }

        CryptographicOperations.ZeroMemory(key);
        key = RandomNumberGenerator.GetBytes(32);
        generation++;
        rotatedAt = now;
    }

    /// <summary>A proxy setting: one address (<c>127.0.0.1</c>) or a network (<c>172.30.0.0/24</c>); null if it is neither.</summary>
    public static IPNetwork? ParseProxy(string value) =>
        IPNetwork.TryParse(value, out var network) ? network
        : IPAddress.TryParse(value, out var address) ? new IPNetwork(Normalise(address), Normalise(address).AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128)
        : null;

    private static IPAddress Normalise(IPAddress address) => address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;

    private static IPAddress? LastForwarded(string header)
    {
        var last = header.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).LastOrDefault();
        return last is not null && IPAddress.TryParse(last, out var parsed) ? Normalise(parsed) : null;
    }
}

/// <summary>
/// How many places in the queues the connections of one address (as a tag) hold through this node. One host
/// opening sessions from many connections, solving every puzzle, would otherwise fill a queue that real people
/// need; with the cap it holds at most <see cref="LimitOptions.PlacesPerAddress"/> places per node, generous for
/// a shelter's or a carrier's shared address. Only session ids of places still waiting are kept, in memory, under
/// the tag; a place that was taken or ended is dropped the next time the tag is at its cap, and all of it goes when
/// the tag's key rotates.
/// </summary>
public sealed class PlaceHolders(IOptions<LimitOptions> options, ISessionStore store, TimeProvider time)
{
    private readonly ConcurrentDictionary<UInt128, Holder> holders = new();
    private long generation = -1;

    /// <summary>True when the tag may take one more place now.</summary>
    public async Task<bool> HasRoomAsync(AddressTag tag)
    {
        var cap = options.Value.PlacesPerAddress;
        if (cap <= 0)
        {
            return true;
        }

        Forget(tag.Generation);
        if (tag.Generation != Volatile.Read(ref generation) || !holders.TryGetValue(tag.Value, out var holder))
        {
            return true;
        }

        Guid[] held;
        var now = time.GetUtcNow();
        lock (holder)
        {
            if (holder.Sessions.Count < cap)
            {
                return true;
            }

            // At the cap: look again at most once a second, so a host refused in a loop costs no store reads.
            if (now - holder.CheckedAt < TimeSpan.FromSeconds(1))
            {
                return false;
            }

            holder.CheckedAt = now;
            held = [.. holder.Sessions];
        }

        var gone = new List<Guid>();
        foreach (var id in held)
        {
            if (await store.GetAsync(id) is not { State: SessionState.Queued })
            {
                gone.Add(id);
            }
        }

        lock (holder)
        {
            holder.Sessions.ExceptWith(gone);
            return holder.Sessions.Count < cap;
        }
    }

    public void Hold(AddressTag tag, Guid sessionId)
    {
        if (options.Value.PlacesPerAddress <= 0)
        {
            return;
        }

        Forget(tag.Generation);
        if (tag.Generation != Volatile.Read(ref generation))
        {
            return; // a tag from before a rotation
        }

        var holder = holders.GetOrAdd(tag.Value, _ => new Holder());
        lock (holder)
        {
            holder.Sessions.Add(sessionId);
        }
    }

    private void Forget(long current)
    {
        var seen = Volatile.Read(ref generation);
        if (current > seen && Interlocked.CompareExchange(ref generation, current, seen) == seen)
        {
            holders.Clear(); // the key rotated: nothing held under the old one can be matched any more
        }
    }

    private sealed class Holder
    {
        public HashSet<Guid> Sessions { get; } = [];
        public DateTimeOffset CheckedAt { get; set; } = DateTimeOffset.MinValue;
    }
}

/// <summary>
/// How many seeker hub connections each address (as a tag) has open on this node. A client that opens hundreds
/// of connections costs the node for every call each of them makes, refused or not; with the cap, connections
/// past <see cref="LimitOptions.ConnectionsPerAddress"/> from one network are refused before the WebSocket
/// opens, at the cost of one small HTTP answer. Counts only, under tags of the current and earlier keys, each
/// dropped when its last connection closes.
/// </summary>
public sealed class ConnectionsPerAddress(IOptions<LimitOptions> options)
{
    private readonly ConcurrentDictionary<AddressTag, int> open = new();

    /// <summary>
    /// Counts a connection in, unless its address (null: none known) is at the cap; the lease says which, and is
    /// disposed when the connection closes.
    /// </summary>
    public Lease Enter(AddressTag? tag)
    {
        var cap = options.Value.ConnectionsPerAddress;
        if (cap <= 0 || tag is not { } known)
        {
            return new Lease(this, null, admitted: true);
        }

        while (true)
        {
            var count = open.GetOrAdd(known, 0);
            if (count >= cap)
            {
                return new Lease(this, null, admitted: false);
            }

            if (open.TryUpdate(known, count + 1, count))
            {
                return new Lease(this, known, admitted: true);
            }
        }
    }

    private void Leave(AddressTag tag)
    {
        while (open.TryGetValue(tag, out var count))
        {
            if (count <= 1 ? open.TryRemove(new KeyValuePair<AddressTag, int>(tag, count)) : open.TryUpdate(tag, count - 1, count))
            {
                return;
            }
        }
    }

    /// <summary>One connection counted in (or refused: <see cref="Admitted"/> false, and nothing to give back).</summary>
    public sealed class Lease(ConnectionsPerAddress owner, AddressTag? tag, bool admitted) : IDisposable
    {
        private int disposed;

        public bool Admitted { get; } = admitted;

        public void Dispose()
        {
            if (tag is { } counted && Interlocked.Exchange(ref disposed, 1) == 0)
            {
                owner.Leave(counted);
            }
        }
    }
}

/// <summary>
/// Before an open: the connection's address must hold fewer than its cap of waiting places through this node;
/// after it, the new place is counted under the address's tag. Runs after the puzzle's check, so a refused open
/// has already paid its work.
/// </summary>
internal sealed class PlacesBehaviour(PlaceHolders places) : IPipelineBehavior<OpenSessionCommand, Outcome<OpenSessionResult>>
{
    public async ValueTask<Outcome<OpenSessionResult>> Handle(
        OpenSessionCommand message, MessageHandlerDelegate<OpenSessionCommand, Outcome<OpenSessionResult>> next, CancellationToken cancellationToken)
    {
        if (message.Connection.Address is not { } tag)
        {
            return await next(message, cancellationToken);
        }

        if (!await places.HasRoomAsync(tag))
        {
            return Refuse.With(ErrorCodes.TooManyWaiting,
                "Too many people are already waiting from this network; please try again in a few minutes.");
        }

        var outcome = await next(message, cancellationToken);
        if (outcome.Succeeded && message.Request?.Msg1 is { } msg1 && ResponderHandshake.TryParseMsg1(msg1, out _, out var sessionId))
        {
            places.Hold(tag, sessionId);
        }

        return outcome;
    }
}
