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
        var now = time.GetUtcNow();
        var session = new SessionRecord
        {
            Id = Guid.NewGuid(),
            OrgId = new byte[16],
            Language = "nl",
            Topic = "",
            Urgent = false,
            Msg1 = new byte[67],
            ResumeTokenHash = new byte[32],
            CreatedAt = now,
            Deadline = now.AddHours(1),
            SeekerConnection = seekerConnection,
        };
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
