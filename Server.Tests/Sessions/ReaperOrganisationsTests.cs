using System.Security.Cryptography;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Time.Testing;
using TrustLine.Server.Sessions;
using TrustLine.Server.Storage;
using TrustLine.Server.Tests.Infrastructure;

namespace TrustLine.Server.Tests.Sessions;

/// <summary>
/// The reaper sweeps organisation by organisation: those the node serves, and any other still listed as holding
/// timers (one removed from the configuration, whose sessions still need their ends). The clock is a fake one.
/// </summary>
[TestFixture(StoreUnderTest.Redis)]
[TestFixture(StoreUnderTest.Embedded)]
public sealed class ReaperOrganisationsTests(StoreUnderTest kind)
{
    [Test]
    public async Task ASessionOfAnOrganisationNoLongerServedStillEndsOnTime()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var world = await World.StartAsync(kind, time: time);
        var store = world.Store();
        var removed = RandomNumberGenerator.GetBytes(16);
        var limits = new SessionLimits();

        // A node that served the organisation listed it and opened a session there; this node does not serve it.
        await store.GetTimerOrganisationsAsync([removed], time.GetUtcNow() + limits.MaxLifetime);
        var session = Session(removed, time.GetUtcNow(), limits);
        var served = Session(world.Org.OrgId, time.GetUtcNow(), limits);
        await store.OpenAsync(session, SessionTimers.Next(session, limits), 10);
        await store.OpenAsync(served, SessionTimers.Next(served, limits), 10);

        time.Advance(limits.MaxQueueWait + TimeSpan.FromSeconds(1));
        await world.Reaper().SweepAsync().WaitAsync(TimeSpan.FromSeconds(10));

        await Eventually.TrueAsync(async () => await store.GetAsync(session.Id) is null && await store.GetAsync(served.Id) is null,
            TimeSpan.FromSeconds(10), "both waited their longest and ended");
        await Assert.MultipleAsync(async () =>
        {
            Assert.That(await store.GetDueAsync(removed, time.GetUtcNow().AddDays(1), 10), Is.Empty, "its timer went with it");
            Assert.That(await store.GetDueAsync(world.Org.OrgId, time.GetUtcNow().AddDays(1), 10), Is.Empty);
        });
    }

    [Test]
    public async Task TheGaugesCountLiveSessionsAndTheReapersLagOverTheOrganisationsTimers()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var world = await World.StartAsync(kind, time: time, extra: new Dictionary<string, string?> { ["Operations:Metrics"] = "true" });
        var store = world.Store();
        var limits = new SessionLimits();
        var now = time.GetUtcNow();
        var late = Session(world.Org.OrgId, now, limits);
        var onTime = Session(world.Org.OrgId, now, limits);
        await store.OpenAsync(late, SessionTimers.Next(late, limits), 10);
        await store.OpenAsync(onTime, SessionTimers.Next(onTime, limits), 10);
        // A timer the reaper has not handled for 90 s (its clock has not ticked since).
        await store.ScheduleAsync(world.Org.OrgId, late.Id, now - TimeSpan.FromSeconds(90), late.Deadline);

        var sampler = world.Nodes[0].Services.GetServices<IHostedService>().OfType<TrustLine.Server.Operations.Metrics.MetricsSampler>().Single();
        await sampler.SampleAsync();
        var sample = world.Nodes[0].Services.GetRequiredService<TrustLine.Server.Operations.Metrics.TrustLineMetrics>().LastSample;

        Assert.Multiple(() =>
        {
            Assert.That(sample!.Up, Is.True);
            Assert.That(sample.Live, Is.EqualTo(2), "both sessions, counted from their organisation's timers");
            Assert.That(sample.ReaperLagSeconds, Is.EqualTo(60), "due 90 s ago: past the 1-minute step, short of the 5-minute one");
        });
    }

    private static SessionRecord Session(byte[] orgId, DateTimeOffset now, SessionLimits limits) => Storage.TestSessions.Waiting(orgId, now, limits.MaxLifetime);
}
