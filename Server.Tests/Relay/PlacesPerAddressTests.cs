using System.Net;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using TrustLine.Protocol.Contracts;
using TrustLine.Protocol.Crypto;
using TrustLine.Server.Tests.Infrastructure;

namespace TrustLine.Server.Tests.Relay;

/// <summary>
/// One network may hold only so many places in the queues through one node (<c>Limits:PlacesPerAddress</c>), so a
/// host that solves every puzzle still cannot fill a queue; the address is kept only as a keyed hash in memory.
/// Test connections stand for other networks by binding other loopback addresses.
/// </summary>
[TestFixture(StoreUnderTest.Redis)]
[TestFixture(StoreUnderTest.Embedded)]
public sealed class PlacesPerAddressTests(StoreUnderTest store)
{
    private static readonly IPAddress Attacker = IPAddress.Parse("127.0.0.2");
    private static readonly IPAddress Neighbour = IPAddress.Parse("127.0.0.3");

    private static readonly Dictionary<string, string?> CapOfThree = new()
    {
        ["Limits:PlacesPerAddress"] = "3",
        ["Organisations:test:QueueCapacity"] = "50",
    };

    [Test]
    public async Task ANetworkAtItsCapIsRefusedWhileOtherNetworksStillGetPlaces()
    {
        await using var world = await World.StartAsync(store, extra: CapOfThree);
        var counted = new System.Collections.Concurrent.ConcurrentQueue<string?>();
        using var listener = RefusalListener(world.Nodes[0], counted);
        var hubs = new List<HubConnection>();
        try
        {
            var codes = new List<string>();
            for (var i = 0; i < 5; i++)
            {
                var hub = await RawHub.SeekerAsync(world.Nodes[0], from: Attacker);
                hubs.Add(hub);
                codes.Add(await RawHub.CodeOfAsync(OpenAsync(hub, world)));
            }

            var neighbour = await RawHub.SeekerAsync(world.Nodes[0], from: Neighbour);
            hubs.Add(neighbour);
            var result = await OpenAsync(neighbour, world);

            Assert.Multiple(() =>
            {
                Assert.That(codes, Is.EqualTo(new[] { "accepted", "accepted", "accepted", ErrorCodes.TooManyWaiting, ErrorCodes.TooManyWaiting }));
                Assert.That(result.Queue.Position, Is.EqualTo(4), "another network still gets a place, behind the three");
                Assert.That(world.Logs.Entries.Select(e => e.Text), Has.None.Contain("127.0.0.2").And.None.Contain("127.0.0.3"), "no address is logged");
                Assert.That(counted.Count(c => c == ErrorCodes.TooManyWaiting), Is.EqualTo(2), "each refusal is counted by its code");
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

    [Test]
    public async Task APlaceThatWasTakenOrLeftNoLongerCounts()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var world = await World.StartAsync(store, extra: CapOfThree, time: time);
        var hubs = new List<HubConnection>();
        try
        {
            for (var i = 0; i < 3; i++)
            {
                hubs.Add(await RawHub.SeekerAsync(world.Nodes[0], from: Attacker));
                await OpenAsync(hubs[^1], world);
            }

            hubs.Add(await RawHub.SeekerAsync(world.Nodes[0], from: Attacker));
            Assert.That(await RawHub.CodeOfAsync(OpenAsync(hubs[^1], world)), Is.EqualTo(ErrorCodes.TooManyWaiting));

            // One seeker leaves the queue and a counsellor takes another: two places are free again.
            await hubs[0].InvokeAsync(SeekerHubMethods.Close);
            var responder = await world.ResponderAsync();
            Assert.That(await responder.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(15)), Is.Not.Null);
            time.Advance(TimeSpan.FromSeconds(2)); // the cap is looked at again at most once a second

            var codes = new List<string>();
            for (var i = 0; i < 3; i++)
            {
                hubs.Add(await RawHub.SeekerAsync(world.Nodes[0], from: Attacker));
                codes.Add(await RawHub.CodeOfAsync(OpenAsync(hubs[^1], world)));
            }

            Assert.That(codes, Is.EqualTo(new[] { "accepted", "accepted", ErrorCodes.TooManyWaiting }));
        }
        finally
        {
            foreach (var hub in hubs)
            {
                await hub.DisposeAsync();
            }
        }
    }

    [Test]
    public async Task TheCountStartsAfreshWhenTheAddressKeyRotates()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var extra = new Dictionary<string, string?>(CapOfThree) { ["Limits:PlacesPerAddress"] = "1", ["Limits:AddressKeyLifetime"] = "00:10:00" };
        await using var world = await World.StartAsync(store, extra: extra, time: time);
        await using var first = await RawHub.SeekerAsync(world.Nodes[0], from: Attacker);
        await using var second = await RawHub.SeekerAsync(world.Nodes[0], from: Attacker);
        await OpenAsync(first, world);
        var before = await RawHub.CodeOfAsync(OpenAsync(second, world));

        time.Advance(TimeSpan.FromMinutes(11));
        await using var third = await RawHub.SeekerAsync(world.Nodes[0], from: Attacker);
        var after = await RawHub.CodeOfAsync(OpenAsync(third, world));

        Assert.Multiple(() =>
        {
            Assert.That(before, Is.EqualTo(ErrorCodes.TooManyWaiting));
            Assert.That(after, Is.EqualTo("accepted"), "a new key: nothing held before can be matched");
        });
    }

    [Test]
    public async Task BehindATrustedProxyTheForwardedAddressCountsAndFromAnyoneElseTheHeaderIsIgnored()
    {
        var extra = new Dictionary<string, string?>(CapOfThree) { ["Limits:PlacesPerAddress"] = "1", ["Limits:TrustedProxies:0"] = "127.0.0.1/32" };
        await using var world = await World.StartAsync(store, extra: extra);
        var one = new Dictionary<string, string> { ["X-Forwarded-For"] = "198.51.100.7" };
        var other = new Dictionary<string, string> { ["X-Forwarded-For"] = "203.0.113.9, 198.51.100.8" };
        await using var a = await RawHub.SeekerAsync(world.Nodes[0], headers: one);
        await using var b = await RawHub.SeekerAsync(world.Nodes[0], headers: one);
        await using var c = await RawHub.SeekerAsync(world.Nodes[0], headers: other);
        await using var d = await RawHub.SeekerAsync(world.Nodes[0], from: Attacker, headers: other);
        await using var e = await RawHub.SeekerAsync(world.Nodes[0], from: Attacker, headers: one);

        var codes = new List<string>();
        foreach (var hub in new[] { a, b, c, d, e })
        {
            codes.Add(await RawHub.CodeOfAsync(OpenAsync(hub, world)));
        }

        Assert.Multiple(() =>
        {
            Assert.That(codes[0], Is.EqualTo("accepted"));
            Assert.That(codes[1], Is.EqualTo(ErrorCodes.TooManyWaiting), "the same forwarded address");
            Assert.That(codes[2], Is.EqualTo("accepted"), "the last forwarded address is the one the proxy saw");
            Assert.That(codes[3], Is.EqualTo("accepted"), "127.0.0.2 is no proxy: its own address counts, not the header");
            Assert.That(codes[4], Is.EqualTo(ErrorCodes.TooManyWaiting), "and it is at its cap of one");
        });
    }

    [Test]
    public async Task UnsetTrustedProxiesMeanANginxOnTheSameHost()
    {
        var extra = new Dictionary<string, string?>(CapOfThree) { ["Limits:PlacesPerAddress"] = "1" };
        await using var world = await World.StartAsync(store, extra: extra);
        await using var a = await RawHub.SeekerAsync(world.Nodes[0], headers: new Dictionary<string, string> { ["X-Forwarded-For"] = "198.51.100.7" });
        await using var b = await RawHub.SeekerAsync(world.Nodes[0], headers: new Dictionary<string, string> { ["X-Forwarded-For"] = "198.51.100.7" });
        await using var c = await RawHub.SeekerAsync(world.Nodes[0], headers: new Dictionary<string, string> { ["X-Forwarded-For"] = "198.51.100.8" });

        var codes = new List<string>();
        foreach (var hub in new[] { a, b, c })
        {
            codes.Add(await RawHub.CodeOfAsync(OpenAsync(hub, world)));
        }

        Assert.That(codes, Is.EqualTo(new[] { "accepted", ErrorCodes.TooManyWaiting, "accepted" }), "from loopback the forwarded address counts");
    }

    [TestCase("not-an-address")]
    [TestCase("10.0.0.0/33")]
    public async Task ATrustedProxyThatIsNoAddressStopsTheNodeAtStartup(string proxy)
    {
        var extra = new Dictionary<string, string?>(CapOfThree) { ["Limits:TrustedProxies:0"] = proxy };
        var failure = Assert.CatchAsync(async () => await (await World.StartAsync(store, extra: extra)).DisposeAsync());
        Assert.That(failure!.ToString(), Does.Contain("Limits:TrustedProxies"));
    }

    /// <summary>Collects the code of every refusal the node's <c>trustline.refusals</c> counter records.</summary>
    private static System.Diagnostics.Metrics.MeterListener RefusalListener(TrustLineNode node, System.Collections.Concurrent.ConcurrentQueue<string?> codes)
    {
        var factory = node.Services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>();
        var listener = new System.Diagnostics.Metrics.MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (ReferenceEquals(instrument.Meter.Scope, factory) && instrument.Name == "trustline.refusals")
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((_, _, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key == "code")
                {
                    codes.Enqueue(tag.Value as string);
                }
            }
        });
        listener.Start();
        return listener;
    }

    private static Task<OpenSessionResult> OpenAsync(HubConnection hub, World world)
    {
        using var handshake = SeekerHandshake.Start(world.Org.Pin);
        return hub.InvokeAsync<OpenSessionResult>(SeekerHubMethods.OpenSession,
            new OpenSessionRequest { Msg1 = handshake.Msg1.ToArray(), Language = "nl" }).WaitAsync(TimeSpan.FromSeconds(10));
    }
}

/// <summary>
/// One network may keep only so many seeker connections open on one node (<c>Limits:ConnectionsPerAddress</c>):
/// past it a connection is refused before its WebSocket opens, and a closed one makes room again.
/// </summary>
public sealed class ConnectionsPerAddressTests
{
    private static readonly IPAddress Attacker = IPAddress.Parse("127.0.0.2");
    private static readonly IPAddress Neighbour = IPAddress.Parse("127.0.0.3");

    [Test]
    public async Task ConnectionsPastTheCapAreRefusedAtTheDoorAndAClosedOneMakesRoom()
    {
        await using var world = await World.StartAsync(StoreUnderTest.Embedded, extra: new Dictionary<string, string?> { ["Limits:ConnectionsPerAddress"] = "3" });
        var hubs = new List<HubConnection>();
        try
        {
            for (var i = 0; i < 3; i++)
            {
                hubs.Add(await RawHub.SeekerAsync(world.Nodes[0], from: Attacker));
            }

            var refused = Assert.CatchAsync(async () => hubs.Add(await RawHub.SeekerAsync(world.Nodes[0], from: Attacker)));
            hubs.Add(await RawHub.SeekerAsync(world.Nodes[0], from: Neighbour));
            await hubs[0].DisposeAsync();
            hubs.RemoveAt(0);
            HubConnection? again = null;
            await Eventually.TrueAsync(async () =>
            {
                try
                {
                    again = await RawHub.SeekerAsync(world.Nodes[0], from: Attacker);
                    return true;
                }
                catch (Exception e) when (e is HttpRequestException or System.Net.WebSockets.WebSocketException)
                {
                    return false;
                }
            }, TimeSpan.FromSeconds(10), "a closed connection makes room for another");
            hubs.Add(again!);

            Assert.Multiple(() =>
            {
                Assert.That(refused!.ToString(), Does.Contain("429"), "the fourth from one address is refused before the WebSocket opens");
                Assert.That(hubs.All(h => h.State == HubConnectionState.Connected), Is.True, "the others are not harmed; another network connects");
                Assert.That(world.Logs.Entries.Select(e => e.Text), Has.None.Contain("127.0.0.2"), "no address is logged");
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
}
