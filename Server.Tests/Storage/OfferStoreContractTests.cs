using System.Security.Cryptography;
using Microsoft.Extensions.Time.Testing;
using TrustLine.Server.Storage;
using TrustLine.Server.Tests.Infrastructure;

namespace TrustLine.Server.Tests.Storage;

/// <summary>One offer contract, two stores: presence, the choice of counsellor, answers, lapses, holds and releases.</summary>
[TestFixture(StoreUnderTest.Redis)]
[TestFixture(StoreUnderTest.Embedded)]
public sealed class OfferStoreContractTests(StoreUnderTest kind)
{
    private static readonly TimeSpan Life = TimeSpan.FromMinutes(2);
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private readonly byte[] org = RandomNumberGenerator.GetBytes(16);
    private FakeTimeProvider time = null!;
    private IOfferStore store = null!;
    private string prefix = "";

    private DateTimeOffset Now => time.GetUtcNow();

    [SetUp]
    public void SetUp()
    {
        time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        prefix = TestRedis.NewPrefix();
        store = kind == StoreUnderTest.Redis ? new RedisOfferStore(TestRedis.Connection, new RedisKeys(prefix)) : new EmbeddedOfferStore();
    }

    [Test]
    public async Task TheOfferGoesToTheAvailableConnectionWithFewestChatsThenLongestSinceItsLastTake()
    {
        await store.SetPresenceAsync(org, "busy", true, 1, Now, Now + Life);
        await store.SetPresenceAsync(org, "recent", true, 0, Now, Now + Life);
        await store.SetPresenceAsync(org, "earlier", true, 0, Now, Now + Life);
        await store.SetPresenceAsync(org, "away", false, 0, Now, Now + Life);
        await store.TookAsync(org, "earlier", Now);
        await store.ChatEndedAsync(org, "earlier");
        await store.TookAsync(org, "recent", Now + TimeSpan.FromSeconds(1));
        await store.ChatEndedAsync(org, "recent");
        var sessions = Enumerable.Range(0, 4).Select(_ => Guid.NewGuid()).ToList();

        var first = await store.OfferAsync(org, sessions, 2, Now, Now + Timeout);
        var second = await store.OfferAsync(org, sessions, 2, Now, Now + Timeout);
        var third = await store.OfferAsync(org, sessions, 2, Now, Now + Timeout);
        var fourth = await store.OfferAsync(org, sessions, 2, Now, Now + Timeout);

        Assert.Multiple(() =>
        {
            Assert.That(first, Is.EqualTo(new OfferMade(sessions[0], "earlier")));
            Assert.That(second, Is.EqualTo(new OfferMade(sessions[1], "recent")));
            Assert.That(third, Is.EqualTo(new OfferMade(sessions[2], "busy")));
            Assert.That(fourth, Is.Null, "each holds one offer; the away one gets none");
        });
    }

    [Test]
    public async Task CapacityAndPresenceThatRanOutKeepOffersAway()
    {
        await store.SetPresenceAsync(org, "full", true, 2, Now, Now + Life);
        await store.SetPresenceAsync(org, "gone", true, 0, Now, Now + TimeSpan.FromSeconds(5));
        time.Advance(TimeSpan.FromSeconds(6));

        Assert.That(await store.OfferAsync(org, [Guid.NewGuid()], 2, Now, Now + Timeout), Is.Null);
        await store.ChatEndedAsync(org, "full");
        Assert.That((await store.OfferAsync(org, [Guid.NewGuid()], 2, Now, Now + Timeout))?.ConnectionId, Is.EqualTo("full"));
    }

    [Test]
    public async Task AcceptTurnsTheOfferIntoAHoldAndDeclineMovesItOnForGood()
    {
        var sid = Guid.NewGuid();
        await store.SetPresenceAsync(org, "a", true, 0, Now, Now + Life);
        await store.SetPresenceAsync(org, "b", true, 1, Now, Now + Life);
        await store.OfferAsync(org, [sid], 2, Now, Now + Timeout);

        var wrong = await store.AnswerAsync(org, sid, "b", accept: true, Now, Now + Timeout);
        var declined = await store.AnswerAsync(org, sid, "a", accept: false, Now, Now + Timeout);
        var again = await store.AnswerAsync(org, sid, "a", accept: false, Now, Now + Timeout);
        var next = await store.OfferAsync(org, [sid], 2, Now, Now + Timeout);
        var accepted = await store.AnswerAsync(org, sid, "b", accept: true, Now, Now + Timeout);
        var heldFromOthers = await store.HoldAsync(org, sid, "a", Now, Now + Timeout);
        var heldByOwner = await store.HoldAsync(org, sid, "b", Now, Now + Timeout);
        await store.ReleaseAsync(org, sid);

        Assert.Multiple(() =>
        {
            Assert.That(wrong, Is.EqualTo(OfferAnswer.NotOffered));
            Assert.That(declined, Is.EqualTo(OfferAnswer.Done));
            Assert.That(again, Is.EqualTo(OfferAnswer.NotOffered));
            Assert.That(next, Is.EqualTo(new OfferMade(sid, "b")), "not back to the one who declined");
            Assert.That(accepted, Is.EqualTo(OfferAnswer.Done));
            Assert.That(heldFromOthers, Is.False);
            Assert.That(heldByOwner, Is.True);
        });
    }

    [Test]
    public async Task LapsesCountInARowAndSetTheConnectionAwayAtTheLimit()
    {
        await store.SetPresenceAsync(org, "a", true, 0, Now, Now + Life);
        var lapses = new List<LapsedOffer>();
        var expired = OfferAnswer.Done;
        for (var i = 0; i < 2; i++)
        {
            var sid = Guid.NewGuid();
            await store.OfferAsync(org, [sid], 2, Now, Now + Timeout);
            Assert.That(await store.LapseAsync(org, Now + Timeout - TimeSpan.FromSeconds(1), 2), Is.Empty, "not yet");
            time.Advance(Timeout);
            expired = await store.AnswerAsync(org, sid, "a", accept: true, Now, Now + Timeout);
            lapses.AddRange(await store.LapseAsync(org, Now, 2));
        }

        Assert.Multiple(() =>
        {
            Assert.That(expired, Is.EqualTo(OfferAnswer.Expired));
            Assert.That(lapses.Select(l => (l.ConnectionId, l.SetAway)), Is.EqualTo(new[] { ("a", false), ("a", true) }));
        });
        Assert.That(await store.OfferAsync(org, [Guid.NewGuid()], 2, Now, Now + Timeout), Is.Null, "away now");
        await store.SetPresenceAsync(org, "a", true, 0, Now, Now + Life);
        Assert.That(await store.OfferAsync(org, [Guid.NewGuid()], 2, Now, Now + Timeout), Is.Not.Null, "available again");
    }

    [Test]
    public async Task AHeldSessionIsNotOfferedAndGoingAwayOrLeavingWithdrawsAnOffer()
    {
        var held = Guid.NewGuid();
        var other = Guid.NewGuid();
        await store.SetPresenceAsync(org, "a", true, 0, Now, Now + Life);
        Assert.That(await store.HoldAsync(org, held, "taker", Now, Now + Timeout), Is.True);

        var made = await store.OfferAsync(org, [held, other], 2, Now, Now + Timeout);
        var withdrawnByAway = await store.SetPresenceAsync(org, "a", false, 0, Now, Now + Life);
        await store.SetPresenceAsync(org, "a", true, 0, Now, Now + Life);
        await store.OfferAsync(org, [other], 2, Now, Now + Timeout);
        var withdrawnByLeaving = await store.RemovePresenceAsync(org, "a");
        var releasedTo = await store.ReleaseAsync(org, held);

        Assert.Multiple(() =>
        {
            Assert.That(made, Is.EqualTo(new OfferMade(other, "a")));
            Assert.That(withdrawnByAway, Is.EqualTo(other));
            Assert.That(withdrawnByLeaving, Is.EqualTo(other));
            Assert.That(releasedTo, Is.Null, "a hold is nobody's offer");
        });
    }

    [Test]
    public async Task ConcurrentOffersNeverGiveOneSessionToTwoConnectionsNorTwoSessionsToOne()
    {
        var connections = Enumerable.Range(0, 20).Select(i => $"c{i}").ToList();
        foreach (var connection in connections)
        {
            await store.SetPresenceAsync(org, connection, true, 0, Now, Now + Life);
        }

        var sessions = Enumerable.Range(0, 30).Select(_ => Guid.NewGuid()).ToList();
        var made = await Task.WhenAll(Enumerable.Range(0, 60).Select(i => store.OfferAsync(org, [.. sessions.Skip(i % 10)], 2, Now, Now + Timeout)))
            .WaitAsync(TimeSpan.FromSeconds(30));

        var offers = made.OfType<OfferMade>().ToList();
        Assert.Multiple(() =>
        {
            Assert.That(offers, Has.Count.EqualTo(20), "every connection got one");
            Assert.That(offers.Select(o => o.SessionId), Is.Unique);
            Assert.That(offers.Select(o => o.ConnectionId), Is.Unique);
        });
    }
}

/// <summary>The Redis offer store's keys: each has a time to live, and the last presence takes its key with it.</summary>
public sealed class OfferRedisKeyTests
{
    private static readonly TimeSpan Life = TimeSpan.FromMinutes(2);
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private readonly byte[] org = RandomNumberGenerator.GetBytes(16);
    private readonly FakeTimeProvider time = new(DateTimeOffset.UtcNow);
    private readonly string prefix = TestRedis.NewPrefix();
    private RedisOfferStore store = null!;

    private DateTimeOffset Now => time.GetUtcNow();

    [SetUp]
    public void SetUp() => store = new RedisOfferStore(TestRedis.Connection, new RedisKeys(prefix));

    [Test]
    public async Task EveryRedisKeyOfPresenceAndOffersHasATimeToLive()
    {
        await store.SetPresenceAsync(org, "a", true, 0, Now, Now + Life);
        await store.OfferAsync(org, [Guid.NewGuid()], 2, Now, Now + Timeout);
        var sid = Guid.NewGuid();
        await store.HoldAsync(org, sid, "b", Now, Now + Timeout);

        var db = TestRedis.Connection.GetDatabase();
        var keys = new RedisKeys(prefix);
        var presence = await db.KeyTimeToLiveAsync(keys.Presence(org));
        var offers = await db.KeyTimeToLiveAsync(keys.Offers(org));
        await store.RemovePresenceAsync(org, "a");
        await store.ReleaseAsync(org, sid);

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(presence, Is.Not.Null.And.LessThanOrEqualTo(Life));
            Assert.That(offers, Is.Not.Null.And.LessThanOrEqualTo(Timeout + RedisOfferStore.DeclineMemory));
            Assert.That(await db.KeyExistsAsync(keys.Presence(org)), Is.False, "the last presence gone, the key is gone");
        });
    }
}
