using System.Security.Cryptography;
using Microsoft.Extensions.Time.Testing;
using TrustLine.Server.Storage;
using TrustLine.Server.Tests.Infrastructure;

namespace TrustLine.Server.Tests.Storage;

/// <summary>
/// Timers belong to their organisation (in Redis, the slot of its queue): the open sets the first with the queue
/// entry, the claim moves it with the entry's removal, the end removes it, and each organisation's are found and
/// taken apart. One contract, both stores.
/// </summary>
[TestFixture(StoreUnderTest.Redis)]
[TestFixture(StoreUnderTest.Embedded)]
public sealed class TimerStoreContractTests(StoreUnderTest kind)
{
    private const int Window = 16;
    private FakeTimeProvider time = null!;
    private ISessionStore store = null!;
    private readonly byte[] org = RandomNumberGenerator.GetBytes(16);
    private readonly byte[] other = RandomNumberGenerator.GetBytes(16);
    private string prefix = "";

    [SetUp]
    public void SetUp()
    {
        time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        if (kind == StoreUnderTest.Redis)
        {
            prefix = TestRedis.NewPrefix();
            store = new RedisSessionStore(TestRedis.Connection, new RedisKeys(prefix), time);
        }
        else
        {
            store = new EmbeddedSessionStore(time);
        }
    }

    [Test]
    public async Task TimersOfTwoOrganisationsAreFoundAndTakenApart()
    {
        var ours = Session(org);
        var theirs = Session(other);
        await store.OpenAsync(ours, time.GetUtcNow().AddSeconds(5), 10);
        await store.OpenAsync(theirs, time.GetUtcNow().AddSeconds(10), 10);
        time.Advance(TimeSpan.FromSeconds(11));
        var now = time.GetUtcNow();
        var lease = now.AddSeconds(30);

        var dueOurs = await store.GetDueAsync(org, now, 10);
        var dueTheirs = await store.GetDueAsync(other, now, 10);
        var crossed = await store.TryTakeTimerAsync(other, ours.Id, now, lease);
        var taken = await store.TryTakeTimerAsync(org, ours.Id, now, lease);
        await store.CompleteTimerAsync(other, ours.Id, lease, null);
        var afterCrossedCompletion = await store.GetDueAsync(org, lease, 10);
        var theirsAfter = await store.GetDueAsync(other, now, 10);
        await store.CompleteTimerAsync(org, ours.Id, lease, null);

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(dueOurs, Is.EqualTo(new[] { ours.Id }), "only its own organisation's");
            Assert.That(dueTheirs, Is.EqualTo(new[] { theirs.Id }));
            Assert.That(crossed, Is.False, "another organisation's timer is not there to take");
            Assert.That(taken, Is.True);
            Assert.That(afterCrossedCompletion, Is.EqualTo(new[] { ours.Id }), "finishing it under another organisation changes nothing");
            Assert.That(theirsAfter, Is.EqualTo(new[] { theirs.Id }), "taking one organisation's timer leaves the other's due");
            Assert.That(await store.GetDueAsync(org, lease.AddDays(1), 10), Is.Empty, "finished under its own organisation, it is gone");
            Assert.That(await store.TryTakeTimerAsync(other, theirs.Id, now, lease), Is.True);
        });
    }

    [Test]
    public async Task TheClaimMovesTheTimerWithTheQueueEntryAndOnlyTheWinnersCounts()
    {
        var session = Session(org);
        var untimed = Session(org);
        var opened = time.GetUtcNow().AddMinutes(50);
        await store.OpenAsync(session, opened, 10);
        await store.OpenAsync(untimed, opened, 10);
        var idle = time.GetUtcNow().AddMinutes(30);

        var claims = await Task.WhenAll(Enumerable.Range(0, 8).Select(i => store.ClaimAsync(org, session.Id, $"r{i}", $"c{i}", idle)));
        var plain = await store.ClaimAsync(org, untimed.Id, "r", "c");

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(claims.Count(c => c is not null), Is.EqualTo(1));
            Assert.That(plain, Is.Not.Null);
            Assert.That(await store.GetQueueAsync(org, 10), Is.Empty);
            Assert.That(await store.GetDueAsync(org, idle.AddMilliseconds(-1), 10), Is.Empty, "moved from the queue's deadline to the take's");
            Assert.That(await store.GetDueAsync(org, idle, 10), Is.EqualTo(new[] { session.Id }));
            Assert.That(await store.GetDueAsync(org, opened, 10), Is.EquivalentTo(new[] { session.Id, untimed.Id }), "a claim without a timer leaves it");
        });
    }

    [Test]
    public async Task EndingASessionLeavesNoTimerMemberAndNoKeyWithoutTtl()
    {
        var queued = Session(org);
        var active = Session(org);
        var stays = Session(org);
        foreach (var s in new[] { queued, active, stays })
        {
            await store.OpenAsync(s, time.GetUtcNow().AddMinutes(5), 10);
        }

        await store.ClaimAsync(org, active.Id, "r", "c", time.GetUtcNow().AddMinutes(30));

        var endedQueued = await store.DeleteAsync(queued.Id, Window);
        var endedActive = await store.DeleteAsync(active.Id, Window);

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(endedQueued?.State, Is.EqualTo(SessionState.Queued));
            Assert.That(endedActive?.State, Is.EqualTo(SessionState.Active));
            Assert.That(await store.GetDueAsync(org, time.GetUtcNow().AddDays(1), 10), Is.EqualTo(new[] { stays.Id }), "both ended timers gone, the other's kept");
        });

        await store.DeleteAsync(stays.Id, Window);
        if (kind == StoreUnderTest.Redis)
        {
            var keys = new RedisKeys(prefix);
            var db = TestRedis.Connection.GetDatabase();
            var left = new List<(string Key, TimeSpan? Ttl)>();
            await foreach (var key in TestRedis.Connection.GetServer(TestRedis.Connection.GetEndPoints()[0]).KeysAsync(pattern: prefix + ":*"))
            {
                left.Add((key.ToString(), await db.KeyTimeToLiveAsync(key)));
            }

            Assert.Multiple(() =>
            {
                Assert.That(left, Is.Empty, "the organisation's timers, queue and tickets go with their last session");
                Assert.That(keys.Timers(org).ToString(), Does.Contain("{" + keys.Queue(org).ToString() + "}"), "the timers share the queue's hash tag");
            });
        }
        else
        {
            Assert.That(((EmbeddedSessionStore)store).CountEntries(), Is.Zero);
        }
    }

    [Test]
    public async Task ATimerWhoseRecordExpiredGoesWithTheReapersLook()
    {
        var session = Session(org) with { Deadline = time.GetUtcNow().AddMilliseconds(1) };
        await store.CreateAsync(session, 10);
        await store.ScheduleAsync(org, session.Id, time.GetUtcNow().AddSeconds(5), time.GetUtcNow().AddHours(1));
        time.Advance(TimeSpan.FromSeconds(1));
        await Eventually.TrueAsync(async () => await store.GetAsync(session.Id) is null, TimeSpan.FromSeconds(10), "the record expired");

        var deleted = await store.DeleteAsync(session.Id, Window);

        // The reaper's look at a due timer whose record is gone: take it, find no record, finish it.
        time.Advance(TimeSpan.FromSeconds(5));
        var lease = time.GetUtcNow().AddSeconds(30);
        if (await store.TryTakeTimerAsync(org, session.Id, time.GetUtcNow(), lease))
        {
            Assert.That(await store.GetAsync(session.Id), Is.Null);
            await store.CompleteTimerAsync(org, session.Id, lease, null);
        }

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(deleted, Is.Null, "nothing to delete: nobody announces an end");
            Assert.That(await store.GetDueAsync(org, time.GetUtcNow().AddDays(1), 10), Is.Empty, "no timer is left");
        });
    }

    [Test]
    public async Task OrganisationsOnceListedStayListedWhenNoLongerServed()
    {
        var until = time.GetUtcNow().AddHours(4);
        await store.OpenAsync(Session(other), time.GetUtcNow().AddMinutes(5), 10);

        var both = await store.GetTimerOrganisationsAsync([org, other], until);
        var later = await store.GetTimerOrganisationsAsync([org], until);
        var none = await store.GetTimerOrganisationsAsync([], until);

        Assert.Multiple(() =>
        {
            Assert.That(both.Select(Convert.ToHexString), Is.EquivalentTo(new[] { Convert.ToHexString(org), Convert.ToHexString(other) }));
            Assert.That(later.Select(Convert.ToHexString), Does.Contain(Convert.ToHexString(other)), "its sessions still need their ends");
            Assert.That(none.Select(Convert.ToHexString), Does.Contain(Convert.ToHexString(other)));
        });
    }

    private SessionRecord Session(byte[] orgId) => TestSessions.Waiting(orgId, time.GetUtcNow(), TimeSpan.FromHours(1));
}

/// <summary>What only Redis has: the claim's race with another call's removal, the list's own lifetime, and the layout of an earlier release.</summary>
public sealed class RedisTimerLayoutTests
{
    private readonly FakeTimeProvider time = new(DateTimeOffset.UtcNow);
    private readonly byte[] org = RandomNumberGenerator.GetBytes(16);

    [Test]
    public async Task AClaimWhoseQueueEntryAnotherCallRemovedStillGetsItsTimer()
    {
        var keys = new RedisKeys(TestRedis.NewPrefix());
        var store = new RedisSessionStore(TestRedis.Connection, keys, time);
        var session = Session();
        await store.OpenAsync(session, time.GetUtcNow().AddMinutes(50), 10);

        // A claimer that lost the race removed the entry (and moved the timer to its own idea of the take).
        await TestRedis.Connection.GetDatabase().SortedSetRemoveAsync(keys.Queue(org), session.Id.ToString("N"));
        var idle = time.GetUtcNow().AddMinutes(30);
        var claimed = await store.ClaimAsync(org, session.Id, "r", "c", idle);

        Assert.That(claimed, Is.Not.Null);
        Assert.That(await TestRedis.Connection.GetDatabase().SortedSetScoreAsync(keys.Timers(org), session.Id.ToString("N")),
            Is.EqualTo(idle.ToUnixTimeMilliseconds()), "the winner schedules it after the claim");
    }

    [Test]
    public async Task TheListOfOrganisationsForgetsOnesPastTheirTimeAndHasATtl()
    {
        var keys = new RedisKeys(TestRedis.NewPrefix());
        var store = new RedisSessionStore(TestRedis.Connection, keys, time);
        var gone = RandomNumberGenerator.GetBytes(16);

        await store.GetTimerOrganisationsAsync([gone], time.GetUtcNow().AddMinutes(10));
        await store.GetTimerOrganisationsAsync([org], time.GetUtcNow().AddHours(4));
        await store.GetTimerOrganisationsAsync([org], time.GetUtcNow().AddHours(1)); // never shortened
        time.Advance(TimeSpan.FromMinutes(11));
        var listed = await store.GetTimerOrganisationsAsync([], time.GetUtcNow());
        var ttl = await TestRedis.Connection.GetDatabase().KeyTimeToLiveAsync(keys.TimerOrganisations);

        Assert.Multiple(() =>
        {
            Assert.That(listed.Select(Convert.ToHexString), Is.EqualTo(new[] { Convert.ToHexString(org) }), "the one listed only ten minutes is gone");
            Assert.That(ttl, Is.GreaterThan(TimeSpan.FromHours(3.7)).And.LessThanOrEqualTo(TimeSpan.FromHours(4)), "as long as its latest entry");
        });
    }

    [Test]
    public async Task TimersOfTheEarlierSingleKeyMoveToTheirOrganisations()
    {
        var keys = new RedisKeys(TestRedis.NewPrefix());
        var store = new RedisSessionStore(TestRedis.Connection, keys, time);
        var db = TestRedis.Connection.GetDatabase();
        var session = Session();
        var timedHere = Session();
        var recordless = Guid.NewGuid();
        await store.CreateAsync(session, 10);
        await store.OpenAsync(timedHere, time.GetUtcNow().AddMinutes(20), 10);

        // What a node of the earlier release wrote: one key for every organisation's timers.
        var due = time.GetUtcNow().AddMinutes(3).ToUnixTimeMilliseconds();
        await db.SortedSetAddAsync(keys.LegacyTimers, [new(session.Id.ToString("N"), due), new(timedHere.Id.ToString("N"), due), new(recordless.ToString("N"), due)]);
        await db.KeyExpireAsync(keys.LegacyTimers, TimeSpan.FromHours(1));

        await store.GetTimerOrganisationsAsync([org], time.GetUtcNow().AddHours(4));

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(await db.KeyExistsAsync(keys.LegacyTimers), Is.False, "every timer moved or dropped");
            Assert.That(await store.GetDueAsync(org, DateTimeOffset.FromUnixTimeMilliseconds(due), 10), Is.EquivalentTo(new[] { session.Id, timedHere.Id }),
                "the earlier of two timers stands");
            Assert.That(await db.KeyTimeToLiveAsync(keys.Timers(org)), Is.GreaterThan(TimeSpan.FromMinutes(59)), "to the session's deadline");
        });
    }

    private SessionRecord Session() => TestSessions.Waiting(org, time.GetUtcNow(), TimeSpan.FromHours(1));
}
