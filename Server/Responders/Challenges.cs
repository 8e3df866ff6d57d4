using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Security.Cryptography;
using NSec.Cryptography;
using StackExchange.Redis;
using TrustLine.Server.Storage;

namespace TrustLine.Server.Responders;

/// <summary>
/// Sign-in challenges that cost nothing to hand out: <c>nonce(8) ‖ expires(8) ‖ mac(16)</c>, 32 bytes, where
/// the MAC is HMAC-SHA-256 under a key shared by every node and replaced each day (a node reads it from
/// Redis, where it has a two-day TTL, or keeps it in memory on the embedded store). Nothing is stored when a
/// challenge is handed out; a challenge is spent (once, until it expires) only by a sign-in whose
/// certificates and signature verified, so a flood of requests, signed or not, stores nothing.
/// </summary>
public sealed class Challenges(IServiceProvider services, StoreMode mode, RedisKeys keys, TimeProvider time) : IDisposable
{
    public const int Size = 32;

    private readonly ConcurrentDictionary<long, Lazy<Task<Key>>> byDay = new();

    public async Task<byte[]> IssueAsync(TimeSpan lifetime)
    {
        var challenge = new byte[Size];
        RandomNumberGenerator.Fill(challenge.AsSpan(0, 8));
        var expires = time.GetUtcNow() + lifetime;
        BinaryPrimitives.WriteInt64BigEndian(challenge.AsSpan(8, 8), expires.ToUnixTimeSeconds());
        Mac(await KeyOfDayAsync(Day(time.GetUtcNow())), challenge, challenge.AsSpan(16, 16));
        return challenge;
    }

    /// <summary>True when this deployment made <paramref name="challenge"/> and it has not expired (it may still have been spent).</summary>
    public async Task<bool> IsGenuineAsync(byte[] challenge)
    {
        var expires = BinaryPrimitives.ReadInt64BigEndian(challenge.AsSpan(8, 8));
        var now = time.GetUtcNow();
        if (expires < now.ToUnixTimeSeconds() || expires > (now + TimeSpan.FromHours(1)).ToUnixTimeSeconds())
        {
            return false;
        }

        // A challenge made just before midnight is checked under yesterday's key.
        return Matches(await KeyOfDayAsync(Day(now)), challenge) || Matches(await KeyOfDayAsync(Day(now) - 1), challenge);
    }

    /// <summary>When a challenge stops being accepted.</summary>
    public static DateTimeOffset ExpiryOf(byte[] challenge) => DateTimeOffset.FromUnixTimeSeconds(BinaryPrimitives.ReadInt64BigEndian(challenge.AsSpan(8, 8)));

    public void Dispose()
    {
        foreach (var key in byDay.Values)
        {
            if (key.IsValueCreated && key.Value.IsCompletedSuccessfully)
            {
                key.Value.Result.Dispose();
            }
        }
    }

    private static bool Matches(Key key, byte[] challenge)
    {
        Span<byte> expected = stackalloc byte[16];
        Mac(key, challenge, expected);
        return CryptographicOperations.FixedTimeEquals(expected, challenge.AsSpan(16, 16));
    }

    private static long Day(DateTimeOffset at) => at.ToUnixTimeSeconds() / 86400;

    private static void Mac(Key key, ReadOnlySpan<byte> challenge, Span<byte> mac16)
    {
        Span<byte> full = stackalloc byte[32];
        MacAlgorithm.HmacSha256.Mac(key, challenge[..16], full);
        full[..16].CopyTo(mac16);
    }

    private Task<Key> KeyOfDayAsync(long day)
    {
        foreach (var old in byDay.Keys.Where(d => d < day - 1))
        {
            // Keys of older days are never needed again; the Key objects themselves are few and small.
            byDay.TryRemove(old, out _);
        }

        var lazy = byDay.GetOrAdd(day, d => new Lazy<Task<Key>>(() => LoadAsync(d)));
        var task = lazy.Value;
        if (task.IsFaulted)
        {
            // A store error must not stick: the next sign-in asks again.
            byDay.TryRemove(new KeyValuePair<long, Lazy<Task<Key>>>(day, lazy));
        }

        return task;
    }

    private async Task<Key> LoadAsync(long day)
    {
        var fresh = RandomNumberGenerator.GetBytes(32);
        byte[] secret = fresh;
        if (mode.Kind == StoreKind.Redis)
        {
            var db = services.GetRequiredService<IConnectionMultiplexer>().GetDatabase();
            RedisKey name = $"{keys.Prefix}:challenge-key:{day}";
            // The first node of the day sets it; every node then reads the same one.
            await db.StringSetAsync(name, fresh, TimeSpan.FromDays(2), When.NotExists, CommandFlags.DemandMaster);
            secret = (byte[]?)await db.StringGetAsync(name, CommandFlags.DemandMaster) ?? fresh;
        }

        try
        {
            return Key.Import(MacAlgorithm.HmacSha256, secret, KeyBlobFormat.RawSymmetricKey);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(fresh);
        }
    }
}
