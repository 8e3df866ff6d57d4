using System.Collections.Concurrent;
using StackExchange.Redis;
using TrustLine.Protocol.Crypto;

namespace TrustLine.Server.Storage;

/// <summary>
/// Every Redis key TrustLine writes. The keys of one session share the hash tag <c>{sid}</c>, so they sit
/// in one cluster slot and one script may touch them together.
/// </summary>
public sealed class RedisKeys(string prefix)
{
    public string Prefix => prefix;

    public RedisKey Session(Guid id) => $"{prefix}:{{{id:N}}}:s";

    public RedisKey Envelope(Guid id, Direction direction, ulong sequence) => $"{prefix}:{{{id:N}}}:e{(byte)direction}:{sequence}";

    /// <summary>
    /// What every envelope key of the session starts with (<c>…e</c>, then the direction, <c>:</c> and the seq):
    /// scripts build the keys of a range of seqs from it. It carries the session's hash tag, so they share the record's slot.
    /// </summary>
    public string EnvelopeBase(Guid id) => $"{prefix}:{{{id:N}}}:e";

    /// <summary>What the envelope keys of one direction start with: the seq follows.</summary>
    public string EnvelopeBase(Guid id, Direction direction) => $"{prefix}:{{{id:N}}}:e{(byte)direction}:";

    public RedisKey Queue(byte[] orgId) => Of(orgId).Queue;

    /// <summary>
    /// The organisation's ticket counters (a hash: last ticket handed out per class). Its hash tag is the queue
    /// key's whole name, so it sits in the queue's cluster slot and one script may touch both.
    /// </summary>
    public RedisKey Tickets(byte[] orgId) => Of(orgId).Tickets;

    /// <summary>
    /// The organisation's session timers (a sorted set: session id → next deadline or lease end). Its hash tag is the
    /// queue key's whole name, like <see cref="Tickets"/>: one slot with the queue, so the queue scripts set and move
    /// a session's timer in the same step as its queue entry.
    /// </summary>
    public RedisKey Timers(byte[] orgId) => Of(orgId).Timers;

    /// <summary>
    /// The organisations that may hold timers (a sorted set: organisation id in hex → until when), kept by every node's
    /// reaper for the organisations it serves, so that sessions of an organisation since removed from the configuration
    /// still end on time. Organisation ids are public (the directory lists them); nothing of a session is here.
    /// </summary>
    public RedisKey TimerOrganisations => $"{prefix}:timer-orgs";

    /// <summary>
    /// The single timers key of releases before timers moved to their organisations' slots: read and emptied into the
    /// organisations' keys, never added to, while nodes of such a release may be running beside this one (a rolling upgrade).
    /// </summary>
    public RedisKey LegacyTimers => $"{prefix}:timers";

    /// <summary>An organisation's counsellor presence (hash: connection id → state); one slot with its offers.</summary>
    public RedisKey Presence(byte[] orgId) => $"{prefix}:{{o:{Convert.ToHexStringLower(orgId)}}}:p";

    /// <summary>An organisation's offers, holds and declines (hash: session id → offer or hold, <c>d:</c>session id → declines).</summary>
    public RedisKey Offers(byte[] orgId) => $"{prefix}:{{o:{Convert.ToHexStringLower(orgId)}}}:o";

    public RedisKey Token(byte[] tokenHash) => $"{prefix}:tok:{Convert.ToHexStringLower(tokenHash)}";

    public RedisChannel Routes => RedisChannel.Literal($"{prefix}:routes");

    private const int MostOrganisationsKept = 1024;

    private readonly ConcurrentDictionary<byte[], OrganisationKeys> organisations = new(BytesComparer.Instance);

    /// <summary>
    /// An organisation's queue, ticket and timer keys, made once per organisation (a few of them are on every open, take
    /// and end). Only the organisations the server serves come here; past a bound, keys are made afresh each time.
    /// </summary>
    private OrganisationKeys Of(byte[] orgId)
    {
        if (organisations.TryGetValue(orgId, out var known))
        {
            return known;
        }

        var hex = Convert.ToHexStringLower(orgId);
        var made = new OrganisationKeys($"{prefix}:q:{hex}", $"{prefix}:{{{prefix}:q:{hex}}}:t", $"{prefix}:{{{prefix}:q:{hex}}}:timers");
        return organisations.Count < MostOrganisationsKept ? organisations.GetOrAdd([.. orgId], made) : made;
    }

    private sealed record OrganisationKeys(RedisKey Queue, RedisKey Tickets, RedisKey Timers);

    private sealed class BytesComparer : IEqualityComparer<byte[]>
    {
        public static readonly BytesComparer Instance = new();

        public bool Equals(byte[]? x, byte[]? y) => x.AsSpan().SequenceEqual(y);

        public int GetHashCode(byte[] obj)
        {
            var hash = new HashCode();
            hash.AddBytes(obj);
            return hash.ToHashCode();
        }
    }

    /// <summary>Envelope keys for seqs <paramref name="after"/>+1 through <paramref name="after"/>+<paramref name="count"/>.</summary>
    public RedisKey[] Envelopes(Guid id, Direction direction, long after, int count)
    {
        var keys = new RedisKey[Math.Max(0, count)];
        for (var i = 0; i < keys.Length; i++)
        {
            keys[i] = Envelope(id, direction, (ulong)(after + 1 + i));
        }

        return keys;
    }
}
