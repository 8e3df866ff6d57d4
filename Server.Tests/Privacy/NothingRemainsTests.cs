using System.Text.RegularExpressions;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using TrustLine.Client;
using TrustLine.Protocol.Contracts;
using TrustLine.Server.Storage;
using TrustLine.Server.Tests.Infrastructure;
using TrustLine.Server.Tests.Relay;

namespace TrustLine.Server.Tests.Privacy;

/// <summary>The data inventory as a tested property: TTLs at every step, nothing left after the end, nothing in logs.</summary>
public sealed partial class NothingRemainsTests
{
    [TestCase(Party.Seeker)]
    [TestCase(Party.Responder)]
    public async Task AfterASessionEndsNoKeyOfItRemainsAndEveryKeyAlwaysHadATtl(Party closer)
    {
        await using var world = await World.StartAsync(StoreUnderTest.Redis, nodes: 2);
        var seeker = world.Seeker(0);
        var ended = new Inbox<SeekerState>();
        seeker.StateChanged += s =>
        {
            if (s == SeekerState.Ended)
            {
                ended.Add(s);
            }
        };
        await seeker.OpenAsync("nl").WaitAsync(TimeSpan.FromSeconds(15));
        await RedisInspection.AssertEveryKeyHasATtlAsync(world.Prefix, "while queued");

        var (_, session, seekerInbox, responderInbox) = await ContinueAsync(world, seeker);
        await RedisInspection.AssertEveryKeyHasATtlAsync(world.Prefix, "after the handshake");
        for (var i = 0; i < 5; i++)
        {
            await seeker.SendTextAsync($"s{i}");
            await session.SendTextAsync($"r{i}");
        }

        await seekerInbox.WaitForAsync(5, "texts at the seeker");
        await responderInbox.WaitForAsync(5, "texts at the responder");
        await RedisInspection.AssertEveryKeyHasATtlAsync(world.Prefix, "mid-conversation");
        var sid = RedisInspection.Hex(seeker.SessionId).ToString();
        Assert.That((await RedisInspection.KeysAsync(world.Prefix)).Any(k => k.Key.Contains(sid, StringComparison.Ordinal)), Is.True,
            "the live session must be in Redis, or this test proves nothing");

        if (closer == Party.Seeker)
        {
            await seeker.CloseAsync().WaitAsync(TimeSpan.FromSeconds(10));
        }
        else
        {
            await session.CloseAsync().WaitAsync(TimeSpan.FromSeconds(10));
            await ended.WaitForAsync(1, "the seeker to be told of the end");
        }

        var left = await RedisInspection.KeysAsync(world.Prefix);
        Assert.Multiple(() =>
        {
            Assert.That(left.Where(k => k.Key.Contains(sid, StringComparison.Ordinal)), Is.Empty, "keys of the ended session");
            // What may remain: the responder's hashed access token, which lives for hours by design, and the list of
            // organisations served (no session's).
            Assert.That(left.Select(k => k.Key).Where(k => !RedisInspection.MayRemain(world.Prefix, k)), Is.Empty);
            Assert.That(left.Where(k => k.Ttl is null), Is.Empty);
            Assert.That(seeker.EndReason, Is.EqualTo(closer == Party.Seeker ? EndReasons.SeekerClosed : SessionEndReasons.PeerClosed));
        });
    }

    [TestCase(true)]
    [TestCase(false)]
    public async Task AnEnvelopeInFlightWhenAnotherNodeEndsTheSessionLeavesNoKey(bool peerConnected)
    {
        await using var world = await World.StartAsync(StoreUnderTest.Redis);
        await using var scenario = await ManualSeeker.ConnectAsync(world);
        var sid = scenario.SessionId.ToString("N");
        if (!peerConnected)
        {
            await scenario.Responder.DisposeAsync();
            await Eventually.TrueAsync(async () => (await OtherNode(world).GetAsync(scenario.SessionId))?.ResponderConnection is null,
                TimeSpan.FromSeconds(10), "the responder is recorded away");
        }

        // Another node (the reaper, or the peer's) deletes the session; this node has not heard of it yet.
        Assert.That(await OtherNode(world).DeleteAsync(scenario.SessionId, 256), Is.Not.Null);
        try
        {
            await scenario.Hub.InvokeAsync<SendResult>(SeekerHubMethods.Send, scenario.Channel.SealText("te laat")).WaitAsync(TimeSpan.FromSeconds(10));
        }
        catch (Microsoft.AspNetCore.SignalR.HubException e)
        {
            // No end notice follows this bare delete, so the node may also take it for a store that lost the session.
            Assert.That(e.Message, Does.Contain(ErrorCodes.NoSuchSession).Or.Contain(ErrorCodes.StoreLost));
        }

        // A later command on the seeker's connection runs after the write on the node's one Redis connection.
        try
        {
            await scenario.Hub.InvokeAsync(SeekerHubMethods.Acknowledge, 0UL).WaitAsync(TimeSpan.FromSeconds(10));
        }
        catch (Microsoft.AspNetCore.SignalR.HubException)
        {
            // Refused either way: the session is gone.
        }

        Assert.That((await RedisInspection.KeysAsync(world.Prefix)).Where(k => k.Key.Contains(sid, StringComparison.Ordinal)), Is.Empty);
    }

    private static RedisSessionStore OtherNode(World world) => new(TestRedis.Connection, new RedisKeys(world.Prefix), TimeProvider.System);

    [Test]
    public async Task EmbeddedStoreHoldsNothingAfterTheEnd()
    {
        await using var world = await World.StartAsync(StoreUnderTest.Embedded);
        var (seeker, _, _, responderInbox) = await Connected.PairAsync(world);
        await seeker.SendTextAsync("iets");
        await responderInbox.WaitForAsync(1, "text at the responder");
        var store = world.Nodes[0].Services.GetRequiredService<EmbeddedSessionStore>();
        Assert.That(store.CountEntries(), Is.GreaterThan(0));

        await seeker.CloseAsync().WaitAsync(TimeSpan.FromSeconds(10));

        Assert.That(store.CountEntries(), Is.Zero);
    }

    [Test]
    public async Task LogsOfAFullScenarioNameNoAddressAndNoSession()
    {
        await using var world = await World.StartAsync(StoreUnderTest.Redis, nodes: 2);
        var (seeker, session, seekerInbox, responderInbox) = await Connected.PairAsync(world, 0, 1);
        await seeker.SendTextAsync("geheim bericht");
        await session.SendTextAsync("geheim antwoord");
        await responderInbox.WaitForAsync(1, "text at the responder");
        await seekerInbox.WaitForAsync(1, "text at the seeker");
        await seeker.SimulateNetworkLossAsync(preferServer: 1);
        await session.SendTextAsync("na het herstel");
        await seekerInbox.WaitForAsync(2, "text after the resume");
        await seeker.CloseAsync().WaitAsync(TimeSpan.FromSeconds(10));

        var sid = seeker.SessionId.ToString("N");
        var ports = world.Nodes.Select(n => n.BaseAddress.Port.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToList();
        // The host's own start-up lines name its listening address; everything from the sessions must not.
        var lines = world.Logs.Entries.Where(e => e.Category != "Microsoft.Hosting.Lifetime").Select(e => e.Text).ToList();

        Assert.Multiple(() =>
        {
            Assert.That(lines, Is.Not.Empty);
            Assert.That(lines.Any(l => l.Contains("Session opened", StringComparison.Ordinal)), Is.True, "the capture must see session logs");
            Assert.That(lines.Where(l => IpAddress().IsMatch(l)), Is.Empty, "lines with an IP address");
            Assert.That(lines.Where(l => l.Contains(sid, StringComparison.OrdinalIgnoreCase) || l.Contains(seeker.SessionId.ToString(), StringComparison.OrdinalIgnoreCase)), Is.Empty, "lines with the session id");
            Assert.That(lines.Where(l => l.Contains("geheim", StringComparison.Ordinal)), Is.Empty, "lines with message text");
            Assert.That(lines.Where(l => l.Contains("localhost", StringComparison.Ordinal)), Is.Empty);
        });
    }

    private static async Task<(SeekerClient, ResponderSession, Inbox<string>, Inbox<string>)> ContinueAsync(World world, SeekerClient seeker)
    {
        var seekerInbox = new Inbox<string>();
        seeker.MessageReceived += seekerInbox.Add;
        var responder = await world.ResponderAsync(1);
        var session = await responder.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(15));
        var responderInbox = new Inbox<string>();
        session!.MessageReceived += responderInbox.Add;
        await session.WhenEstablished.WaitAsync(TimeSpan.FromSeconds(15));
        return (seeker, session, seekerInbox, responderInbox);
    }

    [GeneratedRegex(@"\b(\d{1,3}\.){3}\d{1,3}\b|\[?[0-9a-fA-F]{0,4}(:[0-9a-fA-F]{0,4}){2,7}\]?:\d+|::1")]
    private static partial Regex IpAddress();
}
