using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;
using TrustLine.Protocol.Contracts;
using TrustLine.Server.Relay;
using TrustLine.Server.Responders;
using TrustLine.Server.Sessions;
using TrustLine.Server.Tests.Infrastructure;
using TrustLine.Server.Tests.Sessions;

namespace TrustLine.Server.Tests.Relay;

/// <summary>
/// Hub messages between nodes go through each node's own channel (<see cref="NodeBus"/>), not a Redis subscription
/// per connection: order across nodes, group changes on another node, unreadable messages, and what Redis holds.
/// </summary>
public sealed class NodeBusTests
{
    [Test]
    public async Task ManyTextsEachWayBetweenTwoNodesArriveInTheOrderTheyWereSent()
    {
        await using var world = await World.StartAsync(StoreUnderTest.Redis, nodes: 2);
        var (seeker, session, seekerInbox, responderInbox) = await Connected.PairAsync(world, seekerNode: 0, responderNode: 1);
        string[] fromSeeker = [.. Enumerable.Range(1, 150).Select(i => $"s{i}")];
        string[] fromResponder = [.. Enumerable.Range(1, 150).Select(i => $"r{i}")];

        await Task.WhenAll(SendAll(t => seeker.SendTextAsync(t), fromSeeker), SendAll(t => session.SendTextAsync(t), fromResponder));

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(await responderInbox.WaitForAsync(150, "the seeker's texts at the responder"), Is.EqualTo(fromSeeker));
            Assert.That(await seekerInbox.WaitForAsync(150, "the responder's texts at the seeker"), Is.EqualTo(fromResponder));
        });

        static async Task SendAll(Func<string, Task> send, string[] texts)
        {
            foreach (var text in texts)
            {
                await send(text);
            }
        }
    }

    [Test]
    public async Task ConnectionsCostNoRedisSubscriptionEachNodeHasTwoChannelsAndTheRoutes()
    {
        await using var world = await World.StartAsync(StoreUnderTest.Redis, nodes: 2);
        var seekers = Enumerable.Range(0, 6).Select(i => world.Seeker(i % 2)).ToList();
        await Task.WhenAll(seekers.Select(s => s.OpenAsync("nl"))).WaitAsync(TimeSpan.FromSeconds(30));
        await world.ResponderAsync(0);
        await world.ResponderAsync(1);

        var channels = await ChannelsAsync(world);
        var nodes = world.Nodes.Select(n => n.Services.GetRequiredService<ThisNode>().Id).ToList();

        Assert.That(channels, Is.EquivalentTo(new[] { $"{world.Prefix}:routes", $"{world.Prefix}:groups" }.Concat(nodes.Select(id => $"{world.Prefix}:node:{id}"))),
            "eight connections on two nodes, and no channel of a connection's own");
    }

    [Test]
    public async Task AConnectionOnAnotherNodeLeavesAndRejoinsAGroupWhenThatNodeHasAnswered()
    {
        await using var world = await World.StartAsync(StoreUnderTest.Redis, nodes: 2);
        var seeker = world.Seeker(0);
        await seeker.OpenAsync("nl").WaitAsync(TimeSpan.FromSeconds(15));
        var taker = await world.ResponderAsync(0);
        var other = await world.ResponderAsync(0);
        var (takerHeard, otherHeard) = (new Inbox<int>(), new Inbox<int>());
        taker.QueueChanged += q => Marked(q, takerHeard);
        other.QueueChanged += q => Marked(q, otherHeard);
        var session = await taker.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(15));
        var address = (await world.Store().GetAsync(seeker.SessionId))!.ResponderConnection!;
        var remote = world.Nodes[1].Services.GetRequiredService<IHubContext<ResponderHub, IResponderClient>>();
        var group = QueueNotifier.GroupOf(world.Org.OrgId);

        Assert.That(ThisNode.Split(address).Node, Is.EqualTo(world.Nodes[0].Services.GetRequiredService<ThisNode>().Id), "the taker is on node 0");
        await remote.Groups.RemoveFromGroupAsync(address, group).WaitAsync(TimeSpan.FromSeconds(10));
        await remote.Clients.Group(group).QueueChanged(new QueueSnapshot { Waiting = 101 });
        await otherHeard.WaitForAsync(1, "the first marked notice at the responder still in the group");
        await remote.Groups.AddToGroupAsync(address, group).WaitAsync(TimeSpan.FromSeconds(10));
        await remote.Clients.Group(group).QueueChanged(new QueueSnapshot { Waiting = 102 });

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(session, Is.Not.Null);
            Assert.That(await takerHeard.WaitForAsync(1, "the marked notice after the rejoin"), Is.EqualTo(new[] { 102 }));
            Assert.That(await otherHeard.WaitForAsync(2, "both marked notices"), Is.EqualTo(new[] { 101, 102 }));
        });

        static void Marked(QueueSnapshot queue, Inbox<int> heard)
        {
            if (queue.Waiting > 100)
            {
                heard.Add(queue.Waiting);
            }
        }
    }

    [Test]
    public async Task AGroupChangeForANodeThatIsGoneFailsAtOnceAndHarmsNothing()
    {
        await using var world = await World.StartAsync(StoreUnderTest.Redis, nodes: 1);
        var hub = world.Nodes[0].Services.GetRequiredService<IHubContext<SeekerHub, ISeekerClient>>();

        var leave = hub.Groups.RemoveFromGroupAsync("0123456789ab.nobody", "queue:00");

        // Nobody reads a gone node's channel: the change fails without waiting for an answer that cannot come.
        Assert.That(async () => await leave.WaitAsync(NodeBus.AckTimeout / 2), Throws.InstanceOf<IOException>());
        var (seeker, session, seekerInbox, _) = await Connected.PairAsync(world);
        await session.SendTextAsync("still relaying");
        Assert.That(await seekerInbox.WaitForAsync(1, "a text after the lost group change"), Is.EqualTo(new[] { "still relaying" }));
        GC.KeepAlive(seeker);
    }

    [Test]
    public async Task AnUnreadableMessageOnANodesChannelIsDroppedWithAWarningAndTheNodeKeepsRelaying()
    {
        await using var world = await World.StartAsync(StoreUnderTest.Redis, nodes: 2);
        var (seeker, session, seekerInbox, responderInbox) = await Connected.PairAsync(world, seekerNode: 0, responderNode: 1);
        var subscriber = TestRedis.Connection.GetSubscriber();
        foreach (var node in world.Nodes.Select(n => n.Services.GetRequiredService<ThisNode>().Id))
        {
            await subscriber.PublishAsync(RedisChannel.Literal($"{world.Prefix}:node:{node}"), new byte[] { 1, 0, 0, 0, 200, 7 });
            await subscriber.PublishAsync(RedisChannel.Literal($"{world.Prefix}:node:{node}"), new byte[] { 99 });
        }

        await subscriber.PublishAsync(RedisChannel.Literal($"{world.Prefix}:groups"), Array.Empty<byte>());
        await Eventually.TrueAsync(() => Task.FromResult(world.Logs.Entries.Count(e => e.EventId.Id == 60 && e.Level == LogLevel.Warning) >= 5),
            TimeSpan.FromSeconds(10), "each unreadable message is logged");
        await seeker.SendTextAsync("after");
        await session.SendTextAsync("after too");

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(await responderInbox.WaitForAsync(1, "a text across nodes"), Is.EqualTo(new[] { "after" }));
            Assert.That(await seekerInbox.WaitForAsync(1, "a text back"), Is.EqualTo(new[] { "after too" }));
        });
    }

    [Test]
    public async Task NodesThatStartWhileRedisIsDownRelayAndTellGroupsAcrossEachOtherOnceItAnswers()
    {
        await using var redis = await RedisServer.StartAsync();
        await redis.StopAsync();
        await using var world = await World.StartAsync(StoreUnderTest.Redis, nodes: 2, extra: new Dictionary<string, string?> { ["Redis:Configuration"] = redis.Configuration });
        await Eventually.TrueAsync(async () => !await IsReadyAsync(world.Nodes[1]), TimeSpan.FromSeconds(10), "the nodes start while Redis is down");

        await redis.StartAgainAsync();
        await Eventually.TrueAsync(async () => await IsReadyAsync(world.Nodes[0]) && await IsReadyAsync(world.Nodes[1]), TimeSpan.FromSeconds(40), "both nodes ready");
        await using var probe = await ConnectionMultiplexer.ConnectAsync(redis.Configuration);
        await Eventually.TrueAsync(async () => ((RedisResult[])(await probe.GetServers()[0].ExecuteAsync("PUBSUB", "CHANNELS", world.Prefix + ":*"))!).Length == 4,
            TimeSpan.FromSeconds(20), "each node subscribed its channel, the groups channel and the routes");
        var watcher = await world.ResponderAsync(0);
        var heard = new Inbox<int>();
        watcher.QueueChanged += q => heard.Add(q.Waiting);
        var (seeker, session, seekerInbox, responderInbox) = await Connected.PairAsync(world, seekerNode: 0, responderNode: 1);
        await seeker.SendTextAsync("across");
        await session.SendTextAsync("and back");
        await world.Nodes[1].Services.GetRequiredService<IHubContext<ResponderHub, IResponderClient>>().Clients.Group(QueueNotifier.GroupOf(world.Org.OrgId))
            .QueueChanged(new QueueSnapshot { Waiting = 101 });

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(await responderInbox.WaitForAsync(1, "the seeker's text on node 1"), Is.EqualTo(new[] { "across" }));
            Assert.That(await seekerInbox.WaitForAsync(1, "the responder's text on node 0"), Is.EqualTo(new[] { "and back" }));
            await Eventually.TrueAsync(() => Task.FromResult(heard.Items.Contains(101)), TimeSpan.FromSeconds(15), "node 1's group notice at node 0");
        });
    }

    [Test]
    public async Task AMemberThatStopsReadingHoldsUpNeitherTheGroupsSendsNorItsOtherMembers()
    {
        var recorder = new ConnectionRecorder();
        await using var world = await World.StartAsync(StoreUnderTest.Redis, services: services => services.Configure<HubOptions>(o => o.AddFilter(recorder)));
        var node = world.Nodes[0];
        using var stuck = new System.Net.WebSockets.ClientWebSocket(); // sends the SignalR handshake, then never reads
        await stuck.ConnectAsync(new Uri(node.BaseAddress.ToString().Replace("http", "ws", StringComparison.Ordinal) + Routes.SeekerHub.TrimStart('/')), CancellationToken.None);
        await stuck.SendAsync("{\"protocol\":\"messagepack\",\"version\":1}\u001e"u8.ToArray(), System.Net.WebSockets.WebSocketMessageType.Text, true, CancellationToken.None);
        await Eventually.TrueAsync(() => Task.FromResult(recorder.Connections.Count == 1), TimeSpan.FromSeconds(10), "the stuck connection is in");
        await using var reader = await RawHub.SeekerAsync(node);
        var marks = new Inbox<byte>();
        reader.On<byte[]>(nameof(ISeekerClient.Envelope), payload => marks.Add(payload[0]));
        await Eventually.TrueAsync(() => Task.FromResult(recorder.Connections.Count == 2), TimeSpan.FromSeconds(10), "the reading connection is in");
        var hub = node.Services.GetRequiredService<IHubContext<SeekerHub, ISeekerClient>>();
        foreach (var id in recorder.Connections)
        {
            await hub.Groups.AddToGroupAsync(id, "slow-test");
        }

        // A large payload through the group fills the stuck connection's buffers (some megabytes on loopback) within a
        // few hundred sends; TrustLine's own group messages are small queue notices, this only gets there sooner.
        var bulk = new byte[16 * 1024];
        var sends = Task.Run(async () =>
        {
            for (var i = 0; i < 1500; i++)
            {
                await hub.Clients.Group("slow-test").Envelope(bulk);
            }

            await hub.Clients.Group("slow-test").Envelope([7]);
        });

        await sends.WaitAsync(TimeSpan.FromSeconds(60));
        await Eventually.TrueAsync(() => Task.FromResult(marks.Items.Contains((byte)7)), TimeSpan.FromSeconds(30), "the reading member got the last message");
        var stuckId = recorder.Connections.First();

        Assert.Multiple(() =>
        {
            // Had the sends waited for the stuck member, they would have finished only once the node cut it.
            Assert.That(recorder.Disconnected, Does.Not.Contain(stuckId), "every group send finished while the stuck member was still connected");
            Assert.That(marks.Items[^1], Is.EqualTo((byte)7), "the reading member got the newest message last");
        });
    }

    [Test]
    public void ANodeAddressSplitsIntoItsNodeAndConnectionAndABareIdIsThisNodes()
    {
        var node = new ThisNode();
        var address = node.AddressOf("AbC-d_12");
        var other = new ThisNode();

        Assert.Multiple(() =>
        {
            Assert.That(ThisNode.Split(address), Is.EqualTo((node.Id, "AbC-d_12")));
            Assert.That(ThisNode.Split("bare"), Is.EqualTo(((string?)null, "bare")));
            Assert.That(LocalPart(node, address), Is.EqualTo("AbC-d_12"));
            Assert.That(LocalPart(node, "bare"), Is.EqualTo("bare"));
            Assert.That(LocalPart(other, address), Is.Null);
            Assert.That(node.Id, Is.Not.EqualTo(other.Id));
        });
    }

    [Test]
    public void ANodeMessageReadsBackAsWrittenAndEveryCutShortCopyIsRefusedAsUnreadable()
    {
        var wire = NodeWire.Start(NodeMessageKind.Send);
        wire.String("SeekerHub");
        wire.String("AbC-d_12");
        wire.Frames([new SerializedMessage("messagepack", new byte[] { 9, 8, 7 })]);
        var whole = wire.ToArray();

        var reader = new NodeReader(whole);
        Assert.Multiple(() =>
        {
            Assert.That(reader.Kind(), Is.EqualTo(NodeMessageKind.Send));
            Assert.That(reader.String(), Is.EqualTo("SeekerHub"));
            Assert.That(System.Text.Encoding.ASCII.GetString(reader.Bytes()), Is.EqualTo("AbC-d_12"));
            Assert.That(reader.Frames().GetSerializedMessage(new Microsoft.AspNetCore.SignalR.Protocol.MessagePackHubProtocol()).ToArray(), Is.EqualTo(new byte[] { 9, 8, 7 }));
        });
        for (var length = 0; length < whole.Length; length++)
        {
            var cut = whole[..length];
            Assert.That(() =>
            {
                var partial = new NodeReader(cut);
                partial.Kind();
                partial.String();
                partial.Bytes();
                partial.Frames();
            }, Throws.InstanceOf<InvalidDataException>(), $"cut to {length} bytes");
        }
    }

    private static async Task<bool> IsReadyAsync(TrustLineNode node)
    {
        using var response = await node.Http.GetAsync("/health/ready");
        return response.StatusCode == System.Net.HttpStatusCode.OK;
    }

    private static string? LocalPart(ThisNode node, string address) => node.IsLocal(address, out var connectionId) ? connectionId.ToString() : null;

    private static async Task<string[]> ChannelsAsync(World world)
    {
        var server = TestRedis.Connection.GetServers()[0];
        var reply = await server.ExecuteAsync("PUBSUB", "CHANNELS", world.Prefix + ":*");
        return [.. ((RedisResult[])reply!).Select(r => (string)r!)];
    }
}

/// <summary>Records the id of every connection the node accepts, in order, and of every one that closed.</summary>
internal sealed class ConnectionRecorder : IHubFilter
{
    private readonly System.Collections.Concurrent.ConcurrentQueue<string> connections = new();

    private readonly System.Collections.Concurrent.ConcurrentQueue<string> disconnected = new();

    public IReadOnlyCollection<string> Connections => connections;

    public IReadOnlyCollection<string> Disconnected => disconnected;

    public Task OnDisconnectedAsync(HubLifetimeContext context, Exception? exception, Func<HubLifetimeContext, Exception?, Task> next)
    {
        disconnected.Enqueue(context.Context.ConnectionId);
        return next(context, exception);
    }

    public Task OnConnectedAsync(HubLifetimeContext context, Func<HubLifetimeContext, Task> next)
    {
        connections.Enqueue(context.Context.ConnectionId);
        return next(context);
    }
}
