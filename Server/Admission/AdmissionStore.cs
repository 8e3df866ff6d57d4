using System.Collections.Concurrent;
using StackExchange.Redis;
using TrustLine.Server.Storage;

namespace TrustLine.Server.Admission;

/// <summary>
/// Single-use tokens of the admission path (puzzle nonces, sign-in challenges): each is spent at most once
/// and forgotten when it could no longer be used anyway. One store command per spend; nothing is stored for
/// a token that is never spent.
/// </summary>
public interface ISpentTokens
{
    /// <summary>True the first time <paramref name="token"/> is spent; false if it was spent before.</summary>
    Task<bool> TrySpendAsync(string kind, ReadOnlyMemory<byte> token, DateTimeOffset until);
}

/// <summary>Redis: <c>SET key 1 PXAT until NX</c>, one key per spent token, gone when it expires.</summary>
internal sealed class RedisSpentTokens(IConnectionMultiplexer redis, RedisKeys keys, TimeProvider time) : ISpentTokens
{
    public async Task<bool> TrySpendAsync(string kind, ReadOnlyMemory<byte> token, DateTimeOffset until)
    {
        var ttl = until - time.GetUtcNow();
        if (ttl <= TimeSpan.Zero)
        {
            ttl = TimeSpan.FromSeconds(1);
        }

        return await redis.GetDatabase().StringSetAsync(
            $"{keys.Prefix}:spent:{kind}:{Convert.ToHexStringLower(token.Span)}", 1, ttl, When.NotExists, CommandFlags.DemandMaster);
    }
}

/// <summary>In memory, for the embedded single-node store; expired entries are swept as new ones arrive.</summary>
internal sealed class EmbeddedSpentTokens(TimeProvider time) : ISpentTokens
{
    private readonly ConcurrentDictionary<string, DateTimeOffset> spent = new();
    private long adds;

    public Task<bool> TrySpendAsync(string kind, ReadOnlyMemory<byte> token, DateTimeOffset until)
    {
        var now = time.GetUtcNow();
        if (Interlocked.Increment(ref adds) % 256 == 0)
        {
            foreach (var (key, expires) in spent)
            {
                if (expires <= now)
                {
                    spent.TryRemove(key, out _);
                }
            }
        }

        var id = $"{kind}:{Convert.ToHexStringLower(token.Span)}";
        if (spent.TryGetValue(id, out var old) && old <= now)
        {
            spent.TryRemove(id, out _);
        }

        return Task.FromResult(spent.TryAdd(id, until));
    }

    internal int Count => spent.Count;
}
