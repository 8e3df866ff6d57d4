using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using TrustLine.Client;
using TrustLine.Protocol.Contracts;
using TrustLine.Protocol.Crypto;
using TrustLine.Server.Sessions;
using TrustLine.Server.Storage;
using TrustLine.Server.Tests.Infrastructure;

namespace TrustLine.Server.Tests.Sessions;

/// <summary>
/// Queue fairness and lifetimes (issue 10): seekers who are away are passed over, not punished; places end
/// after the queue grace or the longest wait; urgent places are capped; queue notices are coalesced.
/// </summary>
[TestFixture(StoreUnderTest.Redis)]
[TestFixture(StoreUnderTest.Embedded)]
public sealed class QueueFairnessTests(StoreUnderTest store)
{
    [Test]
    public async Task TakeSkipsAQueuedSeekerWhoIsAwayUntilItReturns()
    {
        await using var world = await World.StartAsync(store);
        var first = await RawSeeker.OpenAsync(world);
        var second = world.Seeker();
        await second.OpenAsync("nl").WaitAsync(TimeSpan.FromSeconds(10));
        var responder = await world.ResponderAsync();

        // The first seeker's phone switched apps: its place stays, but nobody can talk to it now.
        await first.DropAsync();
        await Eventually.TrueAsync(async () => (await responder.GetQueueAsync()).Length == 2 && await world.Store().GetAsync(first.Id) is { SeekerConnection: null },
            TimeSpan.FromSeconds(10), "the first seeker is away and keeps its place");
        var code = await CodeOfAsync(responder.TakeAsync(first.Id.ToByteArray(bigEndian: true)));
        var taken = await responder.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(15));

        Assert.Multiple(() =>
        {
            Assert.That(code, Is.EqualTo(ErrorCodes.NotAvailable), "a named take of an away seeker is refused");
            Assert.That(taken?.Id, Is.EqualTo(second.SessionId), "the next take passes over the away seeker");
        });

        // Back within the queue grace, with its place: now it is taken.
        var resumed = await first.ResumeAsync(world);
        var next = await responder.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(15));

        Assert.Multiple(() =>
        {
            Assert.That(resumed.Queued, Is.True);
            Assert.That(resumed.Queue.Position, Is.EqualTo(1));
            Assert.That(next?.Id, Is.EqualTo(first.Id));
        });
    }

    [Test]
    public async Task AQueuedSeekerWhoStaysAwayLosesItsPlaceWhenTheQueueGraceRunsOut()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var world = await World.StartAsync(store, time: time, extra: new Dictionary<string, string?>
        {
            ["Sessions:Grace"] = "00:00:30",
            ["Sessions:QueueGrace"] = "00:05:00",
        });
        var seeker = await RawSeeker.OpenAsync(world);

        await seeker.DropAsync();
        await Eventually.TrueAsync(async () => await world.Store().GetAsync(seeker.Id) is { SeekerGoneAt: not null },
            TimeSpan.FromSeconds(10), "the seeker is away");
        time.Advance(TimeSpan.FromMinutes(2));
        await world.Reaper().SweepAsync().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.That(await world.Store().GetAsync(seeker.Id), Is.Not.Null, "past the chat's grace, but within the queue's: the place is kept");

        time.Advance(TimeSpan.FromMinutes(3) + TimeSpan.FromSeconds(1));

        await Eventually.TrueAsync(async () => await world.Store().GetAsync(seeker.Id) is null, TimeSpan.FromSeconds(10), "the place ends with the queue grace");
        var code = await CodeOfAsync(seeker.ResumeAsync(world));
        Assert.That(code, Is.EqualTo(ErrorCodes.ResumeRefused));
    }

    [Test]
    public async Task ASeekerWhoWaitedTheLongestWaitIsToldAndTheSessionEnds()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var world = await World.StartAsync(store, time: time, extra: new Dictionary<string, string?> { ["Sessions:MaxQueueWait"] = "00:20:00" });
        var seeker = world.Seeker();
        await seeker.OpenAsync("nl").WaitAsync(TimeSpan.FromSeconds(10));
        var states = new Inbox<SeekerState>();
        seeker.StateChanged += states.Add;

        time.Advance(TimeSpan.FromMinutes(19));
        await world.Reaper().SweepAsync().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.That(seeker.State, Is.EqualTo(SeekerState.Waiting), "still within the longest wait");
        time.Advance(TimeSpan.FromMinutes(1) + TimeSpan.FromSeconds(1));

        await states.WaitForAsync(1, "the end");
        await Assert.MultipleAsync(async () =>
        {
            Assert.That(seeker.State, Is.EqualTo(SeekerState.Ended));
            Assert.That(seeker.EndReason, Is.EqualTo(EndReasons.QueueTimeout));
            Assert.That(await world.Store().GetAsync(seeker.SessionId), Is.Null);
        });
    }

    [Test]
    public async Task UrgentSessionsPastTheOrganisationsUrgentCapacityWaitInOrderOfArrivalAndAreToldSo()
    {
        await using var world = await World.StartAsync(store, extra: new Dictionary<string, string?> { ["Organisations:test:UrgentCapacity"] = "2" });
        var calm = await RawSeeker.OpenAsync(world);
        var urgent = new List<RawSeeker>();
        for (var i = 0; i < 3; i++)
        {
            urgent.Add(await RawSeeker.OpenAsync(world, urgent: true));
        }

        var responder = await world.ResponderAsync();
        var queue = await responder.GetQueueAsync().WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Multiple(() =>
        {
            Assert.That(urgent.Select(u => u.Opened.Urgent), Is.EqualTo(new[] { true, true, false }));
            Assert.That(urgent[2].Opened.Queue.Position, Is.EqualTo(4), "behind the calm one that came first");
            Assert.That(queue.Select(q => new Guid(q.SessionId, bigEndian: true)), Is.EqualTo(new[] { urgent[0].Id, urgent[1].Id, calm.Id, urgent[2].Id }));
            Assert.That(queue.Select(q => q.Urgent), Is.EqualTo(new[] { true, true, false, false }));
        });

        // An urgent place that frees up is there for the next urgent seeker.
        await urgent[0].CloseAsync();
        var later = await RawSeeker.OpenAsync(world, urgent: true);
        Assert.That(later.Opened.Urgent, Is.True);
    }

    [Test]
    public async Task ChurnInTheQueueReachesCounsellorsAsAFewCoalescedNotices()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var world = await World.StartAsync(store, time: time, extra: new Dictionary<string, string?> { ["Admission:OpenRateThreshold"] = "1000" });
        var responder = await world.ResponderAsync();
        var snapshots = new Inbox<int>();
        responder.QueueChanged += q => snapshots.Add(q.Waiting);
        var holder = await RawSeeker.OpenAsync(world);
        await snapshots.WaitForAsync(1, "the first change, told at once");

        // 40 opens and closes on one connection, all within one notice interval (the clock stands still).
        await using var churn = await RawSeeker.ConnectAsync(world);
        for (var i = 0; i < 40; i++)
        {
            var opened = await RawSeeker.OpenOnAsync(churn, world);
            await churn.InvokeAsync(SeekerHubMethods.Close).WaitAsync(TimeSpan.FromSeconds(10));
            Assert.That(opened.ResumeToken, Is.Not.Empty);
        }

        Assert.That(snapshots.Items, Has.Count.EqualTo(1), "nothing more within the interval");
        time.Advance(TimeSpan.FromSeconds(1));

        Assert.That(await snapshots.WaitForAsync(2, "one notice for all 40 changes"), Is.EqualTo(new[] { 1, 1 }));
        time.Advance(TimeSpan.FromSeconds(1));
        await world.Reaper().SweepAsync().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.That(snapshots.Items, Has.Count.EqualTo(2), "no change, no notice");
        await holder.CloseAsync();
    }

    private static async Task<string> CodeOfAsync(Task call)
    {
        try
        {
            await call.WaitAsync(TimeSpan.FromSeconds(15));
            return "accepted";
        }
        catch (HubException e)
        {
            return e.Message[..e.Message.IndexOf(':', StringComparison.Ordinal)];
        }
        catch (TrustLineException e)
        {
            return e.Code;
        }
    }
}

/// <summary>A seeker on a bare hub connection, so a test decides exactly when it drops and comes back.</summary>
internal sealed class RawSeeker
{
    private HubConnection hub;

    private RawSeeker(HubConnection hub, Guid id, OpenSessionResult opened)
    {
        this.hub = hub;
        Id = id;
        Opened = opened;
    }

    public Guid Id { get; }

    public OpenSessionResult Opened { get; }

    public static async Task<RawSeeker> OpenAsync(World world, bool urgent = false)
    {
        var hub = await ConnectAsync(world);
        var msg1 = Msg1(world);
        var opened = await OpenOnAsync(hub, world, urgent, msg1);
        return new RawSeeker(hub, new Guid(msg1.AsSpan(19, 16), bigEndian: true), opened);
    }

    public static Task<OpenSessionResult> OpenOnAsync(HubConnection hub, World world, bool urgent = false, byte[]? msg1 = null) =>
        hub.InvokeAsync<OpenSessionResult>(SeekerHubMethods.OpenSession,
            new OpenSessionRequest { Msg1 = msg1 ?? Msg1(world), Language = "nl", Urgent = urgent }).WaitAsync(TimeSpan.FromSeconds(10));

    public static async Task<HubConnection> ConnectAsync(World world, int node = 0)
    {
        var hub = new HubConnectionBuilder()
            .WithUrl(new Uri(world.Nodes[node].BaseAddress, Routes.SeekerHub), HttpTransportType.WebSockets, o => o.SkipNegotiation = true)
            .AddMessagePackProtocol()
            .Build();
        await hub.StartAsync().WaitAsync(TimeSpan.FromSeconds(10));
        return hub;
    }

    public Task DropAsync() => hub.DisposeAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10));

    public Task CloseAsync() => hub.InvokeAsync(SeekerHubMethods.Close).WaitAsync(TimeSpan.FromSeconds(10));

    public async Task<ResumeSessionResult> ResumeAsync(World world)
    {
        hub = await ConnectAsync(world);
        return await hub.InvokeAsync<ResumeSessionResult>(SeekerHubMethods.ResumeSession, new ResumeSessionRequest
        {
            SessionId = Id.ToByteArray(bigEndian: true),
            ResumeToken = Opened.ResumeToken,
        }).WaitAsync(TimeSpan.FromSeconds(10));
    }

    private static byte[] Msg1(World world)
    {
        using var handshake = SeekerHandshake.Start(world.Org.Pin);
        return handshake.Msg1.ToArray();
    }
}

internal static class QueueWorld
{
    public static ISessionStore Store(this World world) => world.Nodes[0].Services.GetRequiredService<ISessionStore>();

    public static SessionReaper Reaper(this World world) =>
        world.Nodes[0].Services.GetServices<Microsoft.Extensions.Hosting.IHostedService>().OfType<SessionReaper>().Single();
}
