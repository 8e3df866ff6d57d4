using System.Security.Cryptography;
using Mediator;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using TrustLine.Protocol.Contracts;
using TrustLine.Protocol.Crypto;
using TrustLine.Server.Relay;
using TrustLine.Server.Responders;
using TrustLine.Server.Sessions;
using TrustLine.Server.Storage;
using TrustLine.Server.Tests.Infrastructure;

namespace TrustLine.Server.Tests.Sessions;

/// <summary>
/// A connection can close while one of its calls is still running, so the disconnect handler runs first
/// and the call finishes after it. Whatever the late call did for that connection is undone or handed
/// over to the grace period, never left pointing at a dead connection.
/// </summary>
public sealed class LateHandlerTests
{
    private static readonly Dictionary<string, string?> ShortGrace = new() { ["Sessions:Grace"] = "00:01:00", ["Sessions:QueueGrace"] = "00:01:00" };

    [Test]
    public async Task AResumeFinishingAfterItsConnectionClosedLeavesTheSeekerAwayUntilAbandoned()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var world = await World.StartAsync(StoreUnderTest.Redis, time: time, extra: ShortGrace);
        var store = Observer(world, time);
        var (id, token) = await OpenAndDropAsync(world, store, time);

        var late = await ClosedConnectionAsync(world, Party.Seeker);
        await Mediator(world).Send(new ResumeSessionCommand(late, new ResumeSessionRequest
        {
            SessionId = id.ToByteArray(bigEndian: true),
            ResumeToken = token,
            ReceivedThrough = -1,
        })).AsTask().WaitAsync(TimeSpan.FromSeconds(10));

        var record = await store.GetAsync(id);
        Assert.Multiple(() =>
        {
            Assert.That(record!.SeekerConnection, Is.Null, "no dead connection is recorded");
            Assert.That(record.SeekerGoneAt, Is.Not.Null);
        });
        time.Advance(TimeSpan.FromSeconds(61));
        await Eventually.TrueAsync(async () => await store.GetAsync(id) is null, TimeSpan.FromSeconds(10), "the session ends as abandoned");
    }

    [Test]
    public async Task ATakeFinishingAfterItsConnectionClosedLeavesTheResponderAwayUntilAbandoned()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var world = await World.StartAsync(StoreUnderTest.Redis, time: time, extra: ShortGrace);
        var store = Observer(world, time);
        var seeker = world.Seeker();
        var ended = new Inbox<string>();
        seeker.StateChanged += s =>
        {
            if (s == TrustLine.Client.SeekerState.Ended)
            {
                ended.Add(seeker.EndReason!);
            }
        };
        await seeker.OpenAsync("nl").WaitAsync(TimeSpan.FromSeconds(15));

        var grant = new ResponderGrant(world.Org.OrgId, Certificate.Fingerprint(world.Org.ResponderPublic), time.GetUtcNow().AddHours(1));
        var late = await ClosedConnectionAsync(world, Party.Responder, grant);
        await Mediator(world).Send(new TakeSessionCommand(late, null)).AsTask().WaitAsync(TimeSpan.FromSeconds(10));

        var record = await store.GetAsync(seeker.SessionId);
        Assert.Multiple(() =>
        {
            Assert.That(record!.State, Is.EqualTo(SessionState.Active), "the take itself stands");
            Assert.That(record.ResponderConnection, Is.Null, "no dead connection is recorded");
            Assert.That(record.ResponderGoneAt, Is.Not.Null);
        });
        time.Advance(TimeSpan.FromSeconds(61));
        Assert.That(await ended.WaitForAsync(1, "the end at the seeker"), Is.EqualTo(new[] { EndReasons.ResponderAbandoned }));
    }

    [Test]
    public async Task AnOpenFinishingAfterItsConnectionClosedLeavesNoSession()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var world = await World.StartAsync(StoreUnderTest.Redis, time: time, extra: ShortGrace);
        var store = Observer(world, time);
        using var handshake = SeekerHandshake.Start(world.Org.Pin);

        var late = await ClosedConnectionAsync(world, Party.Seeker);
        await Mediator(world).Send(new OpenSessionCommand(late, new OpenSessionRequest { Msg1 = handshake.Msg1.ToArray(), Language = "nl" }))
            .AsTask().WaitAsync(TimeSpan.FromSeconds(10));

        // Nobody holds its resume token: nobody could ever come back for it.
        await Assert.MultipleAsync(async () =>
        {
            Assert.That(await store.GetAsync(handshake.SessionGuid), Is.Null);
            Assert.That(await store.GetQueueAsync(world.Org.OrgId, 10), Is.Empty);
        });
    }

    [Test]
    public async Task AnOpenWhoseConnectionClosesWhileTheStoreCreatesItLeavesNoSession()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var connection = ConnectionState.Create("closing-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8)), Party.Seeker);
        ClosingStore? closing = null;
        await using var world = await World.StartAsync(StoreUnderTest.Embedded, time: time, extra: ShortGrace,
            services: s => s.AddSingleton<ISessionStore>(sp => closing = new ClosingStore(sp.GetRequiredService<EmbeddedSessionStore>(), connection)));
        using var handshake = SeekerHandshake.Start(world.Org.Pin);

        // The connection is open when the open starts and closes while the store creates the session.
        var outcome = await Mediator(world).Send(new OpenSessionCommand(connection, new OpenSessionRequest { Msg1 = handshake.Msg1.ToArray(), Language = "nl" }))
            .AsTask().WaitAsync(TimeSpan.FromSeconds(10));

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(closing!.Opened, Is.True, "the store created it");
            Assert.That(outcome.Succeeded, Is.False);
            Assert.That(await closing.GetAsync(handshake.SessionGuid), Is.Null, "ended again: nobody holds its resume token");
            Assert.That(await closing.GetQueueAsync(world.Org.OrgId, 10), Is.Empty);
            Assert.That(await closing.GetDueAsync(world.Org.OrgId, time.GetUtcNow().AddDays(1), 10), Is.Empty, "nor a timer");
        });
    }

    private static async Task<(Guid Id, byte[] Token)> OpenAndDropAsync(World world, RedisSessionStore store, TimeProvider time)
    {
        var hub = new HubConnectionBuilder()
            .WithUrl(new Uri(world.Nodes[0].BaseAddress, Routes.SeekerHub), HttpTransportType.WebSockets, o => o.SkipNegotiation = true)
            .AddMessagePackProtocol()
            .Build();
        await hub.StartAsync().WaitAsync(TimeSpan.FromSeconds(10));
        using var handshake = SeekerHandshake.Start(world.Org.Pin);
        var opened = await hub.InvokeAsync<OpenSessionResult>(SeekerHubMethods.OpenSession,
            new OpenSessionRequest { Msg1 = handshake.Msg1.ToArray(), Language = "nl" }).WaitAsync(TimeSpan.FromSeconds(10));
        await hub.DisposeAsync();
        var id = handshake.SessionGuid;
        await Eventually.TrueAsync(async () => (await store.GetDueAsync(world.Org.OrgId, time.GetUtcNow().AddSeconds(61), 100)).Contains(id),
            TimeSpan.FromSeconds(10), "the grace timer is set");
        return (id, opened.ResumeToken);
    }

    /// <summary>A connection whose disconnect handler has already run, as when it closed mid-call.</summary>
    private static async Task<ConnectionState> ClosedConnectionAsync(World world, Party party, ResponderGrant? grant = null)
    {
        var state = ConnectionState.Create("late-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8)), party, grant);
        await Mediator(world).Send(new ConnectionLostCommand(state)).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        return state;
    }

    /// <summary>Closes the connection while the open's create runs, as a disconnect handler running meanwhile does.</summary>
    private sealed class ClosingStore(ISessionStore inner, ConnectionState connection) : StoreDecorator(inner)
    {
        public bool Opened { get; private set; }

        public override async Task<Opening> OpenAsync(SessionRecord session, DateTimeOffset timer, int queueCapacity, int urgentCapacity = int.MaxValue)
        {
            connection.Close();
            var opening = await Inner.OpenAsync(session, timer, queueCapacity, urgentCapacity);
            Opened = opening.Outcome == CreateOutcome.Created;
            return opening;
        }
    }

    private static IMediator Mediator(World world) => world.Nodes[0].Services.GetRequiredService<IMediator>();

    private static RedisSessionStore Observer(World world, TimeProvider time) => new(TestRedis.Connection, new RedisKeys(world.Prefix), time);
}
