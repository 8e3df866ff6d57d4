using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using TrustLine.Client;
using TrustLine.Protocol.Contracts;
using TrustLine.Server.Sessions;
using TrustLine.Server.Storage;
using TrustLine.Server.Tests.Infrastructure;

namespace TrustLine.Server.Tests.Relay;

/// <summary>Queue order, grace, abandonment, idle and lifetime ends, with short limits so they run in seconds.</summary>
public sealed class LifecycleTests
{
    [Test]
    public async Task QueueOrdersUrgentFirstThenOldest()
    {
        await using var world = await World.StartAsync(StoreUnderTest.Redis);
        var first = world.Seeker();
        var second = world.Seeker();
        var urgent = world.Seeker();
        await first.OpenAsync("nl").WaitAsync(TimeSpan.FromSeconds(10));
        await second.OpenAsync("en").WaitAsync(TimeSpan.FromSeconds(10));
        var position = await urgent.OpenAsync("nl", "health", urgent: true).WaitAsync(TimeSpan.FromSeconds(10));
        var responder = await world.ResponderAsync();

        var queue = await responder.GetQueueAsync();

        Assert.Multiple(() =>
        {
            Assert.That(position.Position, Is.EqualTo(1));
            Assert.That(position.Waiting, Is.EqualTo(3));
            Assert.That(queue.Select(q => new Guid(q.SessionId, bigEndian: true)), Is.EqualTo(new[] { urgent.SessionId, first.SessionId, second.SessionId }));
            Assert.That(queue[0].Urgent, Is.True);
            Assert.That(queue[0].Topic, Is.EqualTo("health"));
            Assert.That(queue[2].Language, Is.EqualTo("en"));
        });
    }

    [Test]
    public async Task WaitingSeekersHearTheirNewPlaceWhenTheQueueMoves()
    {
        await using var world = await World.StartAsync(StoreUnderTest.Redis);
        var first = world.Seeker();
        var second = world.Seeker();
        var places = new Inbox<int>();
        second.QueueChanged += q => places.Add(q.Position);
        await first.OpenAsync("nl").WaitAsync(TimeSpan.FromSeconds(10));
        var joined = await second.OpenAsync("nl").WaitAsync(TimeSpan.FromSeconds(10));
        var responder = await world.ResponderAsync();
        var snapshots = new Inbox<int>();
        responder.QueueChanged += q => snapshots.Add(q.Waiting);

        await responder.TakeNextAsync();

        await Eventually.TrueAsync(() => Task.FromResult(places.Items.Contains(1)), TimeSpan.FromSeconds(10), "the second seeker hears it is next");
        Assert.Multiple(() =>
        {
            Assert.That(joined.Position, Is.EqualTo(2));
            Assert.That(places.Items, Does.Not.Contain(2), "joining at the end moves nobody, so nobody is told");
        });
        Assert.That(await snapshots.WaitForAsync(1, "the responders' queue snapshot"), Does.Contain(1));
    }

    [Test]
    public async Task LeavingTheQueueEndsTheSessionForEveryone()
    {
        await using var world = await World.StartAsync(StoreUnderTest.Redis);
        var seeker = world.Seeker();
        await seeker.OpenAsync("nl").WaitAsync(TimeSpan.FromSeconds(10));
        var responder = await world.ResponderAsync();
        Assert.That(await responder.GetQueueAsync(), Has.Length.EqualTo(1));

        await seeker.CloseAsync();

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(await responder.GetQueueAsync(), Is.Empty);
            Assert.That(await RedisInspection.KeysAsync(world.Prefix), Has.All.Matches<(string Key, TimeSpan? Ttl)>(k => RedisInspection.MayRemain(world.Prefix, k.Key)));
        });
    }

    [Test]
    public async Task SeekerWhoDoesNotComeBackWithinGraceHasAbandonedAndTheResponderIsTold()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var world = await World.StartAsync(StoreUnderTest.Redis, time: time);
        var (seeker, session, _, _) = await Connected.PairAsync(world);
        var ended = new Inbox<string>();
        session.Ended += ended.Add;
        var store = new RedisSessionStore(TestRedis.Connection, new RedisKeys(world.Prefix), time);

        // The phone is gone for good: dispose without closing.
        await seeker.DisposeAsync();
        await Eventually.TrueAsync(async () => (await store.GetDueAsync(world.Org.OrgId, time.GetUtcNow() + new SessionLimits().Grace, 100)).Contains(seeker.SessionId),
            TimeSpan.FromSeconds(10), "the grace timer is set");
        time.Advance(TimeSpan.FromMinutes(1));
        Assert.That(ended.Items, Is.Empty, "still within grace");
        time.Advance(new SessionLimits().Grace);

        Assert.That(await ended.WaitForAsync(1, "the end at the responder"), Is.EqualTo(new[] { EndReasons.SeekerAbandoned }));
        Assert.That((await RedisInspection.KeysAsync(world.Prefix)).Where(k => k.Key.Contains(seeker.SessionId.ToString("N"), StringComparison.Ordinal)), Is.Empty);
    }

    [Test]
    public async Task QueuedSeekerKeepsItsPlaceWhileWithinGrace()
    {
        await using var world = await World.StartAsync(StoreUnderTest.Redis, nodes: 2, extra: new Dictionary<string, string?> { ["Sessions:Grace"] = "00:00:30", ["Sessions:QueueGrace"] = "00:00:30" });
        var first = world.Seeker();
        var second = world.Seeker();
        await first.OpenAsync("nl").WaitAsync(TimeSpan.FromSeconds(10));
        await second.OpenAsync("nl").WaitAsync(TimeSpan.FromSeconds(10));
        var states = new Inbox<SeekerState>();
        first.StateChanged += states.Add;

        await first.SimulateNetworkLossAsync(preferServer: 1);
        await states.WaitForAsync(2, "reconnecting then waiting");
        var responder = await world.ResponderAsync();
        var queue = await responder.GetQueueAsync();

        Assert.Multiple(() =>
        {
            Assert.That(states.Items, Is.EqualTo(new[] { SeekerState.Reconnecting, SeekerState.Waiting }));
            Assert.That(new Guid(queue[0].SessionId, bigEndian: true), Is.EqualTo(first.SessionId));
        });
    }

    [Test]
    public async Task IdleSessionEnds()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var world = await World.StartAsync(StoreUnderTest.Redis, time: time);
        var (seeker, session, _, _) = await Connected.PairAsync(world);
        var ended = new Inbox<string>();
        session.Ended += ended.Add;

        time.Advance(new SessionLimits().IdleTimeout + TimeSpan.FromSeconds(1));

        Assert.That(await ended.WaitForAsync(1, "the idle end"), Is.EqualTo(new[] { EndReasons.Idle }));
        await Eventually.TrueAsync(() => Task.FromResult(seeker.State == SeekerState.Ended), TimeSpan.FromSeconds(5), "the seeker is told");
        Assert.That(seeker.EndReason, Is.EqualTo(EndReasons.Idle));
    }

    [Test]
    public async Task SessionEndsAtItsMaximumLifetimeEvenWhileActive()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var world = await World.StartAsync(StoreUnderTest.Embedded, time: time);
        var (seeker, session, _, responderInbox) = await Connected.PairAsync(world);
        var ended = new Inbox<string>();
        session.Ended += ended.Add;
        var limits = new SessionLimits();
        var store = world.Nodes[0].Services.GetRequiredService<EmbeddedSessionStore>();

        // A message every 20 minutes keeps the session from idling out, all its life long.
        var elapsed = TimeSpan.Zero;
        var sent = 0;
        while (elapsed + TimeSpan.FromMinutes(20) < limits.MaxLifetime - SessionTimers.LifetimeMargin)
        {
            await seeker.SendTextAsync("nog steeds hier").WaitAsync(TimeSpan.FromSeconds(10));
            await responderInbox.WaitForAsync(++sent, "the text at the responder");
            await Eventually.TrueAsync(async () => (await store.GetAsync(seeker.SessionId))!.LastActivity >= time.GetUtcNow() - TimeSpan.FromMinutes(1),
                TimeSpan.FromSeconds(10), "the activity is recorded");
            time.Advance(TimeSpan.FromMinutes(20));
            elapsed += TimeSpan.FromMinutes(20);
        }

        Assert.That(ended.Items, Is.Empty, "not ended before its lifetime");
        time.Advance(limits.MaxLifetime - SessionTimers.LifetimeMargin - elapsed + TimeSpan.FromMilliseconds(500));

        Assert.That(await ended.WaitForAsync(1, "the lifetime end"), Is.EqualTo(new[] { EndReasons.MaxLifetime }));
    }
}
