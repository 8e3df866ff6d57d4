using System.Security.Cryptography;
using TrustLine.Server.Storage;

namespace TrustLine.Server.Tests.Storage;

/// <summary>
/// The keys every session shares (the timers, an organisation's queue) must live as long as the latest
/// session in them, whatever order sessions arrive in; and still carry a TTL.
/// </summary>
public sealed class RedisKeyLifetimeTests
{
    [Test]
    public async Task SharedKeysLiveUntilTheLatestDeadlineWhateverTheOrder()
    {
        var keys = new RedisKeys(TestRedis.NewPrefix());
        var store = new RedisSessionStore(TestRedis.Connection, keys, TimeProvider.System);
        var org = RandomNumberGenerator.GetBytes(16);
        var longLived = Session(org, TimeSpan.FromHours(4));
        var shortLived = Session(org, TimeSpan.FromMinutes(1));

        // The long-lived session first: a later, shorter one must not pull the shared keys' expiry back.
        await store.CreateAsync(longLived, 10);
        await store.ScheduleAsync(org, longLived.Id, longLived.Deadline.AddSeconds(-2), longLived.Deadline);
        await store.CreateAsync(shortLived, 10);
        await store.ScheduleAsync(org, shortLived.Id, shortLived.Deadline.AddSeconds(-2), shortLived.Deadline);

        var db = TestRedis.Connection.GetDatabase();
        var timers = await db.KeyTimeToLiveAsync(keys.Timers(org));
        var queue = await db.KeyTimeToLiveAsync(keys.Queue(org));
        var tickets = await db.KeyTimeToLiveAsync(keys.Tickets(org));
        Assert.Multiple(() =>
        {
            Assert.That(tickets, Is.GreaterThan(TimeSpan.FromHours(3.9)).And.LessThanOrEqualTo(TimeSpan.FromHours(4)), "ticket counters");
            Assert.That(timers, Is.GreaterThan(TimeSpan.FromHours(3.9)).And.LessThanOrEqualTo(TimeSpan.FromHours(4)), "timers");
            Assert.That(queue, Is.GreaterThan(TimeSpan.FromHours(3.9)).And.LessThanOrEqualTo(TimeSpan.FromHours(4)), "queue");
        });
    }

    private static SessionRecord Session(byte[] org, TimeSpan lifetime) => TestSessions.Waiting(org, DateTimeOffset.UtcNow, lifetime);
}
