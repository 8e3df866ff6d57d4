using Microsoft.Extensions.Time.Testing;
using TrustLine.Server.Relay;
using TrustLine.Server.Storage;
using TrustLine.Server.Tests.Infrastructure;

namespace TrustLine.Server.Tests.Relay;

/// <summary>
/// A node's cache of where each party is connected stays right whatever order its own store reads and
/// other nodes' route messages arrive in. The interleavings are replayed exactly by pausing a store read.
/// </summary>
public sealed class PeerRoutesTests
{
    private readonly FakeTimeProvider time = new(DateTimeOffset.UtcNow);
    private EmbeddedSessionStore store = null!;
    private PausingStore pausing = null!;
    private PeerRoutes routes = null!;

    [SetUp]
    public void SetUp()
    {
        store = new EmbeddedSessionStore(time);
        pausing = new PausingStore(store);
        // No hub is needed to look up routes; a single node's channel carries nothing.
        routes = new PeerRoutes(pausing, null!, null!, new RouteChannel(null!, new StoreMode(StoreKind.Embedded), new RedisKeys("t")));
    }

    [Test]
    public void ASeekerIsConnectedHereOnlyWhileItsLiveLinkIsHeldOnThisNode()
    {
        var id = Guid.NewGuid();
        var seeker = ConnectionState.Create("seeker", Party.Seeker);
        var responder = ConnectionState.Create("responder", Party.Responder);
        var seekerLink = new SessionLink(id, [1], time.GetUtcNow().AddHours(1));
        var responderLink = new SessionLink(id, [1], time.GetUtcNow().AddHours(1));
        routes.Track(responderLink);
        responder.TryAdd(responderLink);
        var responderOnly = routes.SeekerConnectedHere(id);
        routes.Track(seekerLink);
        var notAddedYet = routes.SeekerConnectedHere(id);
        seeker.TryAdd(seekerLink);
        var held = routes.SeekerConnectedHere(id);
        routes.Untrack(seekerLink);
        var dropped = routes.SeekerConnectedHere(id);
        routes.Track(seekerLink);
        seekerLink.Ended = true;

        Assert.Multiple(() =>
        {
            Assert.That(responderOnly, Is.False, "the responder's link says nothing of the seeker");
            Assert.That(notAddedYet, Is.False, "tracked but not held by a connection yet");
            Assert.That(held, Is.True);
            Assert.That(dropped, Is.False, "a drop untracks the link");
            Assert.That(routes.SeekerConnectedHere(id), Is.False, "an ended link");
        });
    }

    [Test]
    public void RouteMessagesReadBackAsWrittenAndAMalformedOneIsNone()
    {
        var id = Guid.NewGuid();
        RouteMessage[] messages =
        [
            new(RouteChange.Moved, id, Party.Responder, "conn-1", 42),
            new(RouteChange.Moved, id, Party.Seeker, null, 3),
            new(RouteChange.Ended, id, Party.Seeker, null, 0),
            new(RouteChange.Lost, id, Party.Seeker, null, 0),
        ];

        Assert.Multiple(() =>
        {
            Assert.That(messages.Select(m => RouteMessage.Decode(m.Encode())), Is.EqualTo(messages));
            foreach (var bad in new[] { "", "m|x|s||1", $"m|{id:N}|s||", $"m|{id:N}|s||-1", $"m|{id:N}|s|a|b|1", $"m|{id:N}|s|1" })
            {
                Assert.That(RouteMessage.Decode(bad), Is.Null, bad);
            }
        });
    }

    [Test]
    public async Task ALookupRacingAResumeOnAnotherNodeEndsWithTheNewConnection()
    {
        var id = await CreateAsync("old-connection");
        pausing.PauseNextRead();

        // A send on this node looks up its peer and has read the old connection from the store...
        var lookup = routes.ConnectionOfAsync(id, Party.Seeker).AsTask();
        await pausing.Paused.WaitAsync(TimeSpan.FromSeconds(10));

        // ...when the peer resumes on another node, which records the new connection and says so.
        var epoch = await store.SetConnectionAsync(id, Party.Seeker, "new-connection", null);
        routes.Apply(new RouteMessage(RouteChange.Moved, id, Party.Seeker, "new-connection", epoch!.Value));
        pausing.Resume();
        await lookup.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.That(await routes.ConnectionOfAsync(id, Party.Seeker).AsTask().WaitAsync(TimeSpan.FromSeconds(10)), Is.EqualTo("new-connection"));
    }

    [Test]
    public async Task ARouteMessageOlderThanTheCachedRouteChangesNothing()
    {
        var id = await CreateAsync("first");
        var dropped = await store.SetConnectionAsync(id, Party.Seeker, null, time.GetUtcNow());
        var resumed = await store.SetConnectionAsync(id, Party.Seeker, "third", null);
        Assert.That(await routes.ConnectionOfAsync(id, Party.Seeker).AsTask().WaitAsync(TimeSpan.FromSeconds(10)), Is.EqualTo("third"));

        // The drop's message was slow: it arrives after the node read the resumed route.
        routes.Apply(new RouteMessage(RouteChange.Moved, id, Party.Seeker, null, dropped!.Value));
        var after = await routes.ConnectionOfAsync(id, Party.Seeker).AsTask().WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Multiple(() =>
        {
            Assert.That(resumed, Is.GreaterThan(dropped!.Value));
            Assert.That(after, Is.EqualTo("third"));
        });
    }

    [Test]
    public async Task ALookupRacingTheEndCachesNothing()
    {
        var id = await CreateAsync("connection");
        pausing.PauseNextRead();
        var lookup = routes.ConnectionOfAsync(id, Party.Seeker).AsTask();
        await pausing.Paused.WaitAsync(TimeSpan.FromSeconds(10));

        await store.DeleteAsync(id, 16);
        routes.Apply(new RouteMessage(RouteChange.Ended, id, Party.Seeker, null, 0));
        pausing.Resume();
        await lookup.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.That(await routes.ConnectionOfAsync(id, Party.Seeker).AsTask().WaitAsync(TimeSpan.FromSeconds(10)), Is.Null);
    }

    private async Task<Guid> CreateAsync(string seekerConnection)
    {
        var session = Storage.TestSessions.Waiting(new byte[16], time.GetUtcNow(), TimeSpan.FromHours(1)) with { SeekerConnection = seekerConnection };
        Assert.That(await store.CreateAsync(session, 10), Is.EqualTo(CreateOutcome.Created));
        return session.Id;
    }

    /// <summary>Pauses one read after it has read the store, until the test lets it go on.</summary>
    private sealed class PausingStore(ISessionStore inner) : StoreDecorator(inner)
    {
        private readonly TaskCompletionSource paused = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource resume = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int armed;

        public Task Paused => paused.Task;

        public void PauseNextRead() => Interlocked.Exchange(ref armed, 1);

        public void Resume() => resume.TrySetResult();

        public override async Task<SessionRecord?> GetAsync(Guid id)
        {
            var record = await Inner.GetAsync(id);
            if (Interlocked.Exchange(ref armed, 0) == 1)
            {
                paused.TrySetResult();
                await resume.Task;
            }

            return record;
        }
    }
}
