using System.Security.Cryptography;
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

    private static SessionRecord Session(byte[] orgId, DateTimeOffset now, SessionLimits limits) => Storage.TestSessions.Waiting(orgId, now, limits.MaxLifetime);
}
