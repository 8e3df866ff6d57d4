using System.Security.Cryptography;
using Microsoft.Extensions.Time.Testing;
using TrustLine.Server.Storage;
using TrustLine.Server.Tests.Infrastructure;

namespace TrustLine.Server.Tests.Storage;

/// <summary>The store's part of a transfer, the same on both stores: proposals settle once, and a transferred seeker keeps its join time.</summary>
[TestFixture(StoreUnderTest.Redis)]
[TestFixture(StoreUnderTest.Embedded)]
public sealed class TransferStoreContractTests(StoreUnderTest kind)
{
    private FakeTimeProvider time = null!;
    private ISessionStore store = null!;
    private readonly byte[] org = RandomNumberGenerator.GetBytes(16);
    private readonly byte[] partner = RandomNumberGenerator.GetBytes(16);

    [SetUp]
    public void SetUp()
    {
        time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        store = kind == StoreUnderTest.Redis
            ? new RedisSessionStore(TestRedis.Connection, new RedisKeys(TestRedis.NewPrefix()), time)
            : new EmbeddedSessionStore(time);
    }

    [Test]
    public async Task AProposalNeedsAnActiveSessionOfTheHolderAndOnlyOneRunsAtATime()
    {
        var queued = Session();
        await store.CreateAsync(queued, 10);
        var active = Session();
        await store.CreateAsync(active, 10);
        await store.ClaimAsync(org, active.Id, "holder", "c");
        var now = time.GetUtcNow();
        var until = Ms(now.AddMinutes(2));

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(await store.ProposeTransferAsync(queued.Id, "holder", partner, until, now), Is.False, "a queued session");
            Assert.That(await store.ProposeTransferAsync(active.Id, "someone-else", partner, until, now), Is.False, "not the holder");
            Assert.That(await store.ProposeTransferAsync(Guid.NewGuid(), "holder", partner, until, now), Is.False, "no such session");
            Assert.That(await store.ProposeTransferAsync(active.Id, "holder", partner, until, now), Is.True);
            Assert.That(await store.ProposeTransferAsync(active.Id, "holder", org, Ms(now.AddMinutes(3)), now), Is.False, "one at a time");
            var record = await store.GetAsync(active.Id);
            Assert.That(record!.TransferTo, Is.EqualTo(partner));
            Assert.That(record.TransferUntil, Is.EqualTo(until));
        });

        // Once lapsed (not yet cleared by the reaper), a new proposal replaces it.
        var later = now.AddMinutes(2).AddSeconds(1);
        Assert.That(await store.ProposeTransferAsync(active.Id, "holder", org, Ms(later.AddMinutes(2)), later), Is.True);
    }

    [Test]
    public async Task AProposalIsSettledByExactlyOneCaller()
    {
        var active = Session();
        await store.CreateAsync(active, 10);
        await store.ClaimAsync(org, active.Id, "holder", "c");
        var now = time.GetUtcNow();
        var until = Ms(now.AddMinutes(2));
        await store.ProposeTransferAsync(active.Id, "holder", partner, until, now);

        var wrong = await store.ClearTransferAsync(active.Id, until.AddMilliseconds(1));
        var settled = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => store.ClearTransferAsync(active.Id, until)));

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(wrong, Is.False, "another proposal's time");
            Assert.That(settled.Count(s => s), Is.EqualTo(1));
            var record = await store.GetAsync(active.Id);
            Assert.That(record!.TransferTo, Is.Null);
            Assert.That(record.TransferUntil, Is.Null);
            Assert.That(record.State, Is.EqualTo(SessionState.Active), "the chat goes on");
        });
    }

    [Test]
    public async Task ATransferredSessionGoesToTheHeadOfItsClassAndKeepsItsJoinTime()
    {
        var joined = time.GetUtcNow();
        time.Advance(TimeSpan.FromMinutes(1));
        var arrival = Session(partner);
        await store.CreateAsync(arrival, 10);
        var urgent = Session(partner, urgent: true);
        await store.CreateAsync(urgent, 10);
        time.Advance(TimeSpan.FromMinutes(1));
        var transferred = Session(partner) with { QueuedSince = Ms(joined) };
        await store.CreateAsync(transferred, 10);

        var queue = await store.GetQueueAsync(partner, 10);
        await Assert.MultipleAsync(async () =>
        {
            Assert.That(queue.Select(q => q.Id), Is.EqualTo(new[] { urgent.Id, transferred.Id, arrival.Id }));
            Assert.That((await store.GetAsync(transferred.Id))!.QueuedSince, Is.EqualTo(Ms(joined)), "a second transfer keeps it");
            Assert.That((await store.GetAsync(arrival.Id))!.QueuedSince, Is.Null);
        });
    }

    private static DateTimeOffset Ms(DateTimeOffset at) => DateTimeOffset.FromUnixTimeMilliseconds(at.ToUnixTimeMilliseconds());

    private SessionRecord Session(byte[]? orgId = null, bool urgent = false)
    {
        var now = time.GetUtcNow();
        return new SessionRecord
        {
            Id = Guid.NewGuid(),
            OrgId = orgId ?? org,
            Language = "nl",
            Topic = "",
            Urgent = urgent,
            Msg1 = new byte[67],
            ResumeTokenHash = new byte[32],
            CreatedAt = now,
            Deadline = now.AddHours(1),
            LastActivity = now,
        };
    }
}
