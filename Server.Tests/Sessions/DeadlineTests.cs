using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using StackExchange.Redis;
using TrustLine.Protocol.Contracts;
using TrustLine.Server.Sessions;
using TrustLine.Server.Storage;
using TrustLine.Server.Tests.Infrastructure;
using TrustLine.Server.Tests.Relay;

namespace TrustLine.Server.Tests.Sessions;

/// <summary>Deadlines hold even when timers are lost or their handling fails; the clock is a fake one.</summary>
public sealed class DeadlineTests
{
    [Test]
    public async Task NothingIsRelayedPastTheMaximumLifetimeEvenWhenItsTimerIsLost()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var world = await World.StartAsync(StoreUnderTest.Redis, time: time,
            extra: new Dictionary<string, string?> { ["Sessions:MaxLifetime"] = "00:10:00" });
        await using var scenario = await ManualSeeker.ConnectAsync(world);
        var ended = new Inbox<string>();
        scenario.Session.Ended += ended.Add;

        // The timer is gone (as when the shared timers key expired early): only the relay can hold the line.
        await TestRedis.Connection.GetDatabase().KeyDeleteAsync(new RedisKeys(world.Prefix).Timers(world.Org.OrgId));
        time.Advance(TimeSpan.FromMinutes(10));

        var code = await RefusalTests.CodeOf(scenario.Hub.InvokeAsync<SendResult>(SeekerHubMethods.Send, scenario.Channel.SealText("te laat")));

        Assert.That(code, Is.EqualTo(ErrorCodes.NoSuchSession));
        Assert.That(await ended.WaitForAsync(1, "the end at the responder"), Is.EqualTo(new[] { EndReasons.MaxLifetime }));
        Assert.That(scenario.ResponderInbox.Items, Is.Empty, "nothing was relayed");
    }

    [Test]
    public async Task ATimerWhoseHandlingFailsIsHandledByALaterSweep()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        FailingStore? failing = null;
        await using var world = await World.StartAsync(StoreUnderTest.Redis, time: time,
            extra: new Dictionary<string, string?> { ["Sessions:Grace"] = "00:01:00", ["Sessions:QueueGrace"] = "00:01:00" },
            services: s => s.AddSingleton<ISessionStore>(sp => failing = new FailingStore(sp.GetRequiredService<RedisSessionStore>())));
        var observer = new RedisSessionStore(TestRedis.Connection, new RedisKeys(world.Prefix), time);
        var seeker = world.Seeker();
        await seeker.OpenAsync("nl").WaitAsync(TimeSpan.FromSeconds(15));
        var id = seeker.SessionId;

        // The phone is gone for good; the grace timer starts.
        await seeker.DisposeAsync();
        await Eventually.TrueAsync(async () => (await observer.GetDueAsync(world.Org.OrgId, time.GetUtcNow().AddMinutes(1), 100)).Contains(id),
            TimeSpan.FromSeconds(10), "the grace timer is set");
        failing!.FailNextRead();
        time.Advance(TimeSpan.FromSeconds(61));
        await failing.Failed.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.That(await observer.GetAsync(id), Is.Not.Null, "the failed sweep ended nothing");

        time.Advance(SessionReaper.TimerLease + TimeSpan.FromSeconds(1));

        await Eventually.TrueAsync(async () => await observer.GetAsync(id) is null, TimeSpan.FromSeconds(10), "a later sweep ends the abandoned session");
    }

    /// <summary>The real store, with one read that fails on cue the way Redis does when it cannot be reached.</summary>
    private sealed class FailingStore(ISessionStore inner) : StoreDecorator(inner)
    {
        private readonly TaskCompletionSource failed = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int armed;

        public Task Failed => failed.Task;

        public void FailNextRead() => Interlocked.Exchange(ref armed, 1);

        public override Task<SessionRecord?> GetAsync(Guid id)
        {
            if (Interlocked.Exchange(ref armed, 0) == 1)
            {
                failed.TrySetResult();
                throw new RedisConnectionException(ConnectionFailureType.SocketFailure, "failing on cue");
            }

            return Inner.GetAsync(id);
        }
    }
}
