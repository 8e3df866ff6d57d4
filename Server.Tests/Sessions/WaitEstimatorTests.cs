using Microsoft.Extensions.Time.Testing;
using TrustLine.Protocol.Contracts;
using TrustLine.Server.Admission;

namespace TrustLine.Server.Tests.Sessions;

/// <summary>The wait shown to a waiting seeker: a range from the recent take rate, or nothing when the data are thin.</summary>
public sealed class WaitEstimatorTests
{
    private const string Org = "11111111111111111111111111111111";

    [Test]
    public void WithFewerThanFiveTakesInTheLastHourThereIsNoEstimate()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var waits = new WaitEstimator(clock);
        for (var i = 0; i < WaitEstimator.MinimumTakes - 1; i++)
        {
            waits.Taken(Org);
            clock.Advance(TimeSpan.FromMinutes(1));
        }

        Assert.Multiple(() =>
        {
            Assert.That(waits.Estimate(Org, 1), Is.Null);
            Assert.That(waits.Fill(new QueueStatus { Position = 1 }, Org).WaitLowSeconds, Is.EqualTo(-1));
        });
    }

    [Test]
    public void ATakeEveryMinuteGivesARangeAroundThePlaceInMinutes()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var waits = new WaitEstimator(clock);
        for (var i = 0; i < 60; i++)
        {
            clock.Advance(TimeSpan.FromMinutes(1));
            waits.Taken(Org);
        }

        var third = waits.Estimate(Org, 3)!.Value;
        var tenth = waits.Estimate(Org, 10)!.Value;

        Assert.Multiple(() =>
        {
            // Erlang(3, 1/min): median about 2.7 min, 90th percentile about 5.3 min.
            Assert.That(third.Low.TotalMinutes, Is.InRange(2.4, 3.0));
            Assert.That(third.High.TotalMinutes, Is.InRange(4.8, 6.0));
            Assert.That(tenth.Low, Is.GreaterThan(third.High), "a later place waits longer");
            Assert.That(tenth.High - tenth.Low, Is.GreaterThan(TimeSpan.FromMinutes(2)), "a range, never one confident number");
        });
    }

    [Test]
    public void TakesOlderThanAnHourAgeOutAndTheEstimateGoesAway()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var waits = new WaitEstimator(clock);
        for (var i = 0; i < 10; i++)
        {
            waits.Taken(Org);
        }

        Assert.That(waits.Estimate(Org, 1), Is.Not.Null);
        clock.Advance(TimeSpan.FromMinutes(61));

        Assert.That(waits.Estimate(Org, 1), Is.Null);
    }

    [Test]
    public void ABurstOfTakesDoesNotPromiseAWaitOfSeconds()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var waits = new WaitEstimator(clock);
        for (var i = 0; i < 10; i++)
        {
            waits.Taken(Org);
        }

        Assert.That(waits.Estimate(Org, 1)!.Value.High, Is.GreaterThan(TimeSpan.FromMinutes(1)), "the rate is taken over at least a quarter of the hour");
    }
}

/// <summary>The range reaches a waiting seeker through the hub.</summary>
public sealed class WaitRangeThroughTheHubTests
{
    [Test]
    public async Task AfterFiveTakesANewSeekerIsToldARangeAndBeforeThemNothing()
    {
        await using var world = await Infrastructure.World.StartAsync(Infrastructure.StoreUnderTest.Embedded);
        var hubs = new List<Microsoft.AspNetCore.SignalR.Client.HubConnection>();
        try
        {
            var first = await OpenAsync(world, hubs);
            for (var i = 0; i < 5; i++)
            {
                await OpenAsync(world, hubs);
            }

            var responder = await world.ResponderAsync();
            for (var i = 0; i < 5; i++)
            {
                Assert.That(await responder.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(15)), Is.Not.Null);
            }

            var later = await OpenAsync(world, hubs);

            Assert.Multiple(() =>
            {
                Assert.That((first.Queue.WaitLowSeconds, first.Queue.WaitHighSeconds), Is.EqualTo((-1, -1)), "no takes yet: no estimate");
                Assert.That(later.Queue.WaitLowSeconds, Is.GreaterThanOrEqualTo(0));
                Assert.That(later.Queue.WaitHighSeconds, Is.GreaterThan(later.Queue.WaitLowSeconds), "a range");
            });
        }
        finally
        {
            foreach (var hub in hubs)
            {
                await hub.DisposeAsync();
            }
        }
    }

    private static async Task<OpenSessionResult> OpenAsync(Infrastructure.World world, List<Microsoft.AspNetCore.SignalR.Client.HubConnection> hubs)
    {
        var hub = await Infrastructure.RawHub.SeekerAsync(world.Nodes[0]);
        hubs.Add(hub);
        using var handshake = Protocol.Crypto.SeekerHandshake.Start(world.Org.Pin);
        return await Microsoft.AspNetCore.SignalR.Client.HubConnectionExtensions.InvokeAsync<OpenSessionResult>(hub, SeekerHubMethods.OpenSession,
            new OpenSessionRequest { Msg1 = handshake.Msg1.ToArray(), Language = "nl" }).WaitAsync(TimeSpan.FromSeconds(10));
    }
}
