using System.Security.Cryptography;
using TrustLine.Protocol.Crypto;
using TrustLine.Server.Storage;

namespace TrustLine.Server.Tests.Storage;

/// <summary>
/// The buffer write calls its script by name (EVALSHA) and builds the envelope's key inside the script. Redis only:
/// a primary that has lost its script cache (a restart, a failover) must still take the write, and the key the script
/// builds must be the one every reader (resume, ack, end) looks for, with its TTL.
/// </summary>
public sealed class RedisAppendScriptTests
{
    [Test]
    public async Task AWriteAfterTheScriptCacheIsEmptiedIsStoredUnderTheEnvelopesKeyWithItsTtl()
    {
        var keys = new RedisKeys(TestRedis.NewPrefix());
        var store = new RedisSessionStore(TestRedis.Connection, keys, TimeProvider.System);
        var session = Session();
        await store.CreateAsync(session, 10);
        var expires = DateTimeOffset.UtcNow.AddMinutes(5);
        await store.AppendEnvelopeAsync(session.Id, Direction.ClientToServer, 0, [1], expires); // the script is cached now

        // What a promoted replica or a restarted primary looks like to the client: it knows no script.
        await TestRedis.Connection.GetServers().Single().ScriptFlushAsync();
        var stored = await store.AppendEnvelopeAsync(session.Id, Direction.ClientToServer, 1, [2], expires);
        var otherWay = await store.AppendEnvelopeAsync(session.Id, Direction.ServerToClient, 0, [3], expires);
        var resent = await store.AppendEnvelopeAsync(session.Id, Direction.ClientToServer, 1, [9], expires);

        var db = TestRedis.Connection.GetDatabase();
        var ttl = await db.KeyTimeToLiveAsync(keys.Envelope(session.Id, Direction.ClientToServer, 1));
        var read = await store.GetEnvelopesAsync(session.Id, Direction.ClientToServer, -1, 16);
        var readOtherWay = await store.GetEnvelopesAsync(session.Id, Direction.ServerToClient, -1, 16);
        Assert.Multiple(() =>
        {
            Assert.That(stored, Is.EqualTo(AppendOutcome.Stored), "stored although the script was not cached");
            Assert.That(otherWay, Is.EqualTo(AppendOutcome.Stored));
            Assert.That(resent, Is.EqualTo(AppendOutcome.Duplicate), "a resend is still a duplicate");
            Assert.That(read.Select(e => (e.Sequence, e.Envelope[0])), Is.EqualTo(new[] { (0UL, (byte)1), (1UL, (byte)2) }), "read back under RedisKeys.Envelope's names");
            Assert.That(readOtherWay.Select(e => (e.Sequence, e.Envelope[0])), Is.EqualTo(new[] { (0UL, (byte)3) }), "each direction under its own names");
            Assert.That(ttl, Is.Not.Null.And.GreaterThan(TimeSpan.FromMinutes(4)).And.LessThanOrEqualTo(TimeSpan.FromMinutes(5)), "the envelope's key has its TTL");
        });
    }

    [Test]
    public async Task AWriteToAnEndedSessionLeavesNoKey()
    {
        var keys = new RedisKeys(TestRedis.NewPrefix());
        var store = new RedisSessionStore(TestRedis.Connection, keys, TimeProvider.System);
        var session = Session();
        await store.CreateAsync(session, 10);
        await store.DeleteAsync(session.Id, 16);

        await TestRedis.Connection.GetServers().Single().ScriptFlushAsync();
        var outcome = await store.AppendEnvelopeAsync(session.Id, Direction.ClientToServer, 0, [1], DateTimeOffset.UtcNow.AddMinutes(5));

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(outcome, Is.EqualTo(AppendOutcome.SessionGone));
            Assert.That(await TestRedis.Connection.GetDatabase().KeyExistsAsync(keys.Envelope(session.Id, Direction.ClientToServer, 0)), Is.False);
        });
    }

    private static SessionRecord Session() => TestSessions.Waiting(RandomNumberGenerator.GetBytes(16), DateTimeOffset.UtcNow, TimeSpan.FromHours(1));
}
