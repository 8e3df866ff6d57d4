using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using TrustLine.Client;
using TrustLine.Protocol.Contracts;
using TrustLine.Protocol.Crypto;
using TrustLine.Server.Operations.Metrics;
using TrustLine.Server.Storage;
using TrustLine.Server.Tests.Infrastructure;

namespace TrustLine.Server.Tests.Sessions;

/// <summary>
/// Queue notices in O(1) (issue 14): each waiting seeker holds a ticket of its class; one <c>QueueMoved</c>
/// per change goes to the organisation's seekers, and each computes its own place. The hold of an away
/// seeker's place, and the outcome metrics.
/// </summary>
[TestFixture(StoreUnderTest.Redis)]
[TestFixture(StoreUnderTest.Embedded)]
public sealed class QueueTicketTests(StoreUnderTest store)
{
    [Test]
    public async Task PlacesComputedFromTicketsFollowAMixedQueueAsSessionsAreTakenLeaveAndGoAway()
    {
        await using var world = await World.StartAsync(store, extra: new Dictionary<string, string?>
        {
            ["Organisations:test:UrgentCapacity"] = "2",
            ["Sessions:QueueNoticeInterval"] = "00:00:00",
        });
        var n0 = await TicketSeeker.OpenAsync(world, urgent: false);
        var u1 = await TicketSeeker.OpenAsync(world, urgent: true);
        var n2 = await TicketSeeker.OpenAsync(world, urgent: false);
        var u3 = await TicketSeeker.OpenAsync(world, urgent: true);
        var u4 = await TicketSeeker.OpenAsync(world, urgent: true); // past the urgent cap: waits as not urgent
        var n5 = await TicketSeeker.OpenAsync(world, urgent: false);
        var all = new[] { n0, u1, n2, u3, u4, n5 };

        Assert.Multiple(() =>
        {
            Assert.That(all.Select(s => s.Opened.Queue.Position), Is.EqualTo(new[] { 1, 1, 3, 2, 5, 6 }), "exact places at open");
            Assert.That(all.Select(s => s.Opened.Queue.UrgentTicket), Is.EqualTo(new[] { false, true, false, true, false, false }));
            Assert.That(all.Select(s => s.Opened.Queue.Ticket), Is.EqualTo(new long[] { 1, 1, 2, 2, 3, 4 }.Select(n => QueueTickets.First + n - 1)), "tickets count per class, in order of arrival");
            Assert.That(all.All(s => s.Opened.Queue.HoldSeconds == 600), Is.True, "the hold is told at open: 10 minutes by default");
        });

        // The queue: u1 u3 | n0 n2 u4 n5. The last notice came with u3's urgent arrival (u4 and n5 joined at the
        // end: nobody moved, nobody was told); from it the places of those waiting then are the exact ones.
        await ExpectPlacesAsync(world, [u1, u3, n0, n2], outOfTurn: 0);

        var responder = await world.ResponderAsync();
        Assert.That((await responder.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(15)))?.Id, Is.EqualTo(u1.Id));
        await ExpectPlacesAsync(world, [u3, n0, n2, u4, n5], outOfTurn: 0);

        // n2 leaves from the middle: those behind it may be told one place too many (never too few) ...
        await n2.CloseAsync();
        await ExpectPlacesAsync(world, [u3, n0, u4, n5], outOfTurn: 1);

        // ... until they resume, which tells the exact place.
        await u4.DropAsync();
        var back = await u4.ResumeAsync(world);
        Assert.That(back.Queue.Position, Is.EqualTo(3), "u3 and n0 are ahead of u4");

        // n0's phone switches apps: it keeps its place; takes pass over it.
        await n0.DropAsync();
        await Eventually.TrueAsync(async () => await world.Store().GetAsync(n0.Id) is { SeekerConnection: null }, TimeSpan.FromSeconds(10), "n0 is away");
        Assert.That((await responder.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(15)))?.Id, Is.EqualTo(u3.Id));
        Assert.That((await responder.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(15)))?.Id, Is.EqualTo(u4.Id), "n0 is away: passed over");
        await ExpectPlacesAsync(world, [n5], outOfTurn: 0, away: [n0]);

        // n0 comes back and is told its place: still first.
        var returned = await n0.ResumeAsync(world);
        Assert.That((returned.Queue.Position, returned.Queue.Ticket, returned.Queue.UrgentTicket), Is.EqualTo((1, QueueTickets.First, false)));
        Assert.That((await responder.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(15)))?.Id, Is.EqualTo(n0.Id));
        await ExpectPlacesAsync(world, [n5], outOfTurn: 0);
    }

    [Test]
    public async Task EachChangeReachesEveryWaitingSeekerAsOneNoticeAndATakenSeekerHearsNoMore()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var world = await World.StartAsync(store, time: time);
        var seekers = new List<TicketSeeker>();
        for (var i = 0; i < 5; i++)
        {
            seekers.Add(await TicketSeeker.OpenAsync(world, urgent: false));
            time.Advance(TimeSpan.FromSeconds(1));
        }

        // Joining at the end moves nobody's place: the opens are told to the counsellors, not to the seekers.
        var counts = seekers.Select(s => s.Moved.Items.Count).ToArray();
        var responder = await world.ResponderAsync();

        // Three changes, each past the notice interval: a take, a leave from the middle, another take.
        time.Advance(TimeSpan.FromSeconds(1));
        var first = await responder.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(15));
        await Eventually.TrueAsync(() => Task.FromResult(seekers.Skip(1).All(s => s.Last?.OtherWaiting == 4)), TimeSpan.FromSeconds(10), "the take is told");
        time.Advance(TimeSpan.FromSeconds(1));
        await seekers[2].CloseAsync();
        await Eventually.TrueAsync(() => Task.FromResult(seekers.Skip(3).All(s => s.Last?.OtherWaiting == 3)), TimeSpan.FromSeconds(10), "the leave is told");
        time.Advance(TimeSpan.FromSeconds(1));
        await responder.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(15));
        await Eventually.TrueAsync(() => Task.FromResult(seekers.Skip(3).All(s => s.Last?.OtherWaiting == 2)), TimeSpan.FromSeconds(10), "the second take is told");
        time.Advance(TimeSpan.FromSeconds(1));
        await world.Reaper().SweepAsync().WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Multiple(() =>
        {
            Assert.That(first?.Id, Is.EqualTo(seekers[0].Id));
            Assert.That(counts, Is.All.Zero, "no seeker was told of the joins behind it");
            Assert.That(seekers[3].Moved.Items.Count - counts[3], Is.EqualTo(3), "one notice per change");
            Assert.That(seekers[4].Moved.Items.Count - counts[4], Is.EqualTo(3), "one notice per change");
            Assert.That(seekers[0].Moved.Items.Count - counts[0], Is.Zero, "the taken seeker left the group before the notice of its take");
            Assert.That(seekers[1].Moved.Items.Count - counts[1], Is.EqualTo(2), "taken by the third change: told the first two");
            Assert.That(seekers.Sum(s => s.Positions), Is.Zero, "no per-seeker place messages");
            Assert.That(seekers[4].Last!.StatusFor(seekers[4].Opened.Queue.Ticket, false)!.Position, Is.EqualTo(2));
        });
    }

    [Test]
    public async Task ASeekerAwayPastTheHoldLosesItsPlaceAndTheSdkSaysWhyWhenItComesBack()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var aborter = new ConnectionAborter();
        await using var world = await World.StartAsync(store, time: time, services: s => s.Configure<HubOptions>(o => o.AddFilter(aborter)));
        await using var seeker = new SeekerClient(world.Nodes[0].BaseAddress, world.Org.Pin, null, new ClientOptions
        {
            Time = time,
            ReconnectDelays = [TimeSpan.FromMinutes(11)], // the app is suspended: it tries again only when it wakes
        });
        var opened = await seeker.OpenAsync("nl").WaitAsync(TimeSpan.FromSeconds(15));
        var states = new Inbox<SeekerState>();
        seeker.StateChanged += states.Add;

        Assert.That(seeker.QueueHold, Is.EqualTo(TimeSpan.FromMinutes(10)), "the SDK knows the hold before it happens");
        aborter.Abort((await world.Store().GetAsync(seeker.SessionId))!.SeekerConnection!);
        await states.WaitForAsync(1, "the connection is lost");
        await Eventually.TrueAsync(async () => await world.Store().GetAsync(seeker.SessionId) is { SeekerGoneAt: not null }, TimeSpan.FromSeconds(10), "the server has the seeker away");
        time.Advance(TimeSpan.FromMinutes(9));
        await world.Reaper().SweepAsync().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.That(await world.Store().GetAsync(seeker.SessionId), Is.Not.Null, "within the hold: the place is kept");

        time.Advance(TimeSpan.FromMinutes(2));
        await Eventually.TrueAsync(() => Task.FromResult(seeker.State == SeekerState.Ended), TimeSpan.FromSeconds(15), "the SDK comes back and finds the place gone");
        await Assert.MultipleAsync(async () =>
        {
            Assert.That(opened.HoldSeconds, Is.EqualTo(600));
            Assert.That(seeker.EndReason, Is.EqualTo(EndReasons.QueueHoldExpired));
            Assert.That(await world.Store().GetAsync(seeker.SessionId), Is.Null);
        });
    }

    [Test]
    public async Task EachOutcomeIsCountedApartWithItsDuration()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var world = await World.StartAsync(store, time: time, extra: new Dictionary<string, string?>
        {
            ["Organisations:test:QueueCapacity"] = "3",
            ["Sessions:MaxQueueWait"] = "00:30:00",
            ["Admission:BaseDifficulty"] = "1", // a full queue asks for a puzzle first: the SDK solves it, then hears queue_full
        });
        using var meter = new OutcomeMeter(world.Nodes[0]);
        var served = world.Seeker();
        await served.OpenAsync("nl").WaitAsync(TimeSpan.FromSeconds(15));
        var leaves = await TicketSeeker.OpenAsync(world, urgent: false);
        var drops = await TicketSeeker.OpenAsync(world, urgent: false);
        var refused = await CodeOfAsync(world.Seeker().OpenAsync("nl"));

        var responder = await world.ResponderAsync();
        Assert.That((await responder.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(15)))?.Id, Is.EqualTo(served.SessionId));
        await Eventually.TrueAsync(() => Task.FromResult(served.State == SeekerState.Connected), TimeSpan.FromSeconds(15), "the chat is up");
        time.Advance(TimeSpan.FromSeconds(90));
        await served.CloseAsync().WaitAsync(TimeSpan.FromSeconds(15));
        await leaves.CloseAsync();
        await drops.DropAsync();
        await Eventually.TrueAsync(async () => await world.Store().GetAsync(drops.Id) is { SeekerGoneAt: not null }, TimeSpan.FromSeconds(10), "away");
        await Eventually.TrueAsync(async () => (await world.Store().GetDueAsync(world.Org.OrgId, time.GetUtcNow() + TimeSpan.FromMinutes(10), 100)).Contains(drops.Id),
            TimeSpan.FromSeconds(10), "the hold's timer is set");
        time.Advance(TimeSpan.FromMinutes(11));
        await Eventually.TrueAsync(async () => await SweptAsync(world) && await world.Store().GetAsync(drops.Id) is null, TimeSpan.FromSeconds(10), "the hold ran out");
        var waits = await TicketSeeker.OpenAsync(world, urgent: false);
        time.Advance(TimeSpan.FromMinutes(31));
        await Eventually.TrueAsync(async () => await SweptAsync(world) && await world.Store().GetAsync(waits.Id) is null, TimeSpan.FromSeconds(10), "the longest wait ran out");

        var org = Convert.ToHexStringLower(world.Org.OrgId);
        var outcomes = new[] { SessionOutcomes.Served, SessionOutcomes.Abandoned, SessionOutcomes.Dropped, SessionOutcomes.Refused, SessionOutcomes.TimedOut };
        // The end is counted just after the record's delete: wait for the last one to be counted.
        await Eventually.TrueAsync(() => Task.FromResult(outcomes.All(o => meter.Count("trustline.sessions.outcomes", org, o) > 0)), TimeSpan.FromSeconds(10), "every outcome is counted");
        Assert.Multiple(() =>
        {
            Assert.That(refused, Is.EqualTo(ErrorCodes.QueueFull));
            foreach (var outcome in outcomes)
            {
                Assert.That(meter.Count("trustline.sessions.outcomes", org, outcome), Is.EqualTo(1), outcome);
            }

            Assert.That(meter.Count("trustline.sessions.outcomes", org, SessionOutcomes.Transferred), Is.Zero);
            Assert.That(meter.Durations(org, SessionOutcomes.Served), Is.EqualTo(new[] { 90.0 }).Within(1), "open to end");
            Assert.That(meter.Durations(org, SessionOutcomes.Dropped), Is.EqualTo(new[] { 90.0 + 660 }).Within(1));
            Assert.That(meter.Durations(org, SessionOutcomes.TimedOut), Is.EqualTo(new[] { 31 * 60.0 }).Within(1));
            Assert.That(meter.Durations(org, SessionOutcomes.Refused), Is.Empty, "a refused open has no duration");
        });
    }

    /// <summary>One sweep of the reaper now (as its timer does), so a deadline the fake clock passed is kept.</summary>
    private static async Task<bool> SweptAsync(World world)
    {
        await world.Reaper().SweepAsync().WaitAsync(TimeSpan.FromSeconds(10));
        return true;
    }

    /// <summary>Waits until every waiting seeker's last notice matches the store, then compares places.</summary>
    private static async Task ExpectPlacesAsync(World world, TicketSeeker[] inOrder, int outOfTurn, TicketSeeker[]? away = null)
    {
        var waiting = inOrder.Length + (away?.Length ?? 0);
        await Eventually.TrueAsync(() => Task.FromResult(inOrder.All(s => s.Last is { } m && m.UrgentWaiting + m.OtherWaiting == waiting)),
            TimeSpan.FromSeconds(10), $"every waiting seeker heard the queue of {waiting}");
        var exact = new List<int>();
        foreach (var seeker in inOrder)
        {
            exact.Add((await world.Store().GetPlaceAsync(world.Org.OrgId, seeker.Id)).Position);
        }

        var computed = inOrder.Select(s => s.Last!.StatusFor(s.Ticket, s.UrgentTicket)?.Position ?? 0).ToList();
        Assert.Multiple(() =>
        {
            for (var i = 0; i < inOrder.Length; i++)
            {
                Assert.That(computed[i], Is.InRange(exact[i], exact[i] + outOfTurn), $"seeker {i} of the queue: computed {computed[i]}, exact {exact[i]}");
            }

            if (outOfTurn == 0)
            {
                Assert.That(computed, Is.EqualTo(exact), "no session left out of turn: exact");
            }
        });
    }

    private static async Task<string> CodeOfAsync(Task call)
    {
        try
        {
            await call.WaitAsync(TimeSpan.FromSeconds(15));
            return "accepted";
        }
        catch (TrustLineException e)
        {
            return e.Code;
        }
    }
}

/// <summary>The seeker group across two nodes on one Redis: joined and left wherever the change happens.</summary>
public sealed class QueueTicketNodeTests
{
    [Test]
    public async Task NoticesReachSeekersOnEveryNodeAndATakeOnAnotherNodeTakesTheSeekerOutOfTheGroup()
    {
        await using var world = await World.StartAsync(StoreUnderTest.Redis, nodes: 2, extra: new Dictionary<string, string?> { ["Sessions:QueueNoticeInterval"] = "00:00:00" });
        var first = await TicketSeeker.OpenAsync(world, urgent: false, node: 0);
        var second = await TicketSeeker.OpenAsync(world, urgent: false, node: 1);
        var third = await TicketSeeker.OpenAsync(world, urgent: false, node: 0);

        // A counsellor on node 1 takes the seeker connected to node 0: it leaves the group there.
        var responder = await world.ResponderAsync(node: 1);
        Assert.That((await responder.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(15)))?.Id, Is.EqualTo(first.Id));
        await Eventually.TrueAsync(() => Task.FromResult(second.Last?.OtherWaiting == 2 && third.Last?.OtherWaiting == 2), TimeSpan.FromSeconds(10), "the take is told on both nodes");
        var heardByFirst = first.Moved.Items.Count;

        // The second seeker comes back on the other node: it hears the queue there, and is told its place.
        await second.DropAsync();
        var resumed = await second.ResumeAsync(world, node: 0);
        var fourth = await TicketSeeker.OpenAsync(world, urgent: true, node: 1);
        await Eventually.TrueAsync(() => Task.FromResult(second.Last?.UrgentWaiting == 1 && third.Last?.UrgentWaiting == 1), TimeSpan.FromSeconds(10), "an urgent open on node 1 moves both, and both are told");

        Assert.Multiple(() =>
        {
            Assert.That(resumed.Queue.Position, Is.EqualTo(1));
            Assert.That(second.Last!.StatusFor(second.Ticket, false)!.Position, Is.EqualTo(2));
            Assert.That(third.Last!.StatusFor(third.Ticket, false)!.Position, Is.EqualTo(3));
            Assert.That(fourth.Opened.Queue.Position, Is.EqualTo(1));
            Assert.That(first.Moved.Items.Count, Is.EqualTo(heardByFirst), "the taken seeker hears the queue no more");
        });
    }
}

/// <summary>A waiting seeker on a bare hub connection that records the queue notices it hears.</summary>
internal sealed class TicketSeeker
{
    private readonly byte[] token;
    private HubConnection hub;
    private int positions;

    private TicketSeeker(HubConnection hub, Guid id, OpenSessionResult opened, Inbox<QueueMoved> moved)
    {
        this.hub = hub;
        Id = id;
        Opened = opened;
        Moved = moved;
        token = opened.ResumeToken;
        Ticket = opened.Queue.Ticket;
        UrgentTicket = opened.Queue.UrgentTicket;
        hub.On<QueueStatus>(nameof(ISeekerClient.QueuePosition), _ => Interlocked.Increment(ref positions));
    }

    public Guid Id { get; }

    public OpenSessionResult Opened { get; }

    public long Ticket { get; }

    public bool UrgentTicket { get; }

    public Inbox<QueueMoved> Moved { get; }

    public QueueMoved? Last => Moved.Items.LastOrDefault();

    /// <summary>How many exact per-seeker place messages (<c>QueuePosition</c>) arrived: none, with tickets.</summary>
    public int Positions => Volatile.Read(ref positions);

    public static async Task<TicketSeeker> OpenAsync(World world, bool urgent, int node = 0)
    {
        var moved = new Inbox<QueueMoved>();
        var hub = await RawSeeker.ConnectAsync(world, node);
        hub.On<QueueMoved>(nameof(ISeekerClient.QueueMoved), moved.Add);
        using var handshake = SeekerHandshake.Start(world.Org.Pin);
        var opened = await hub.InvokeAsync<OpenSessionResult>(SeekerHubMethods.OpenSession,
            new OpenSessionRequest { Msg1 = handshake.Msg1.ToArray(), Language = "nl", Urgent = urgent }).WaitAsync(TimeSpan.FromSeconds(10));
        return new TicketSeeker(hub, handshake.SessionGuid, opened, moved);
    }

    public Task CloseAsync() => hub.InvokeAsync(SeekerHubMethods.Close).WaitAsync(TimeSpan.FromSeconds(10));

    public Task DropAsync() => hub.DisposeAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10));

    public async Task<ResumeSessionResult> ResumeAsync(World world, int node = 0)
    {
        hub = await RawSeeker.ConnectAsync(world, node);
        hub.On<QueueMoved>(nameof(ISeekerClient.QueueMoved), Moved.Add);
        hub.On<QueueStatus>(nameof(ISeekerClient.QueuePosition), _ => Interlocked.Increment(ref positions));
        return await hub.InvokeAsync<ResumeSessionResult>(SeekerHubMethods.ResumeSession, new ResumeSessionRequest
        {
            SessionId = Id.ToByteArray(bigEndian: true),
            ResumeToken = token,
        }).WaitAsync(TimeSpan.FromSeconds(10));
    }
}

/// <summary>The outcome instruments of one in-process node's TrustLine meter.</summary>
internal sealed class OutcomeMeter : IDisposable
{
    private readonly System.Diagnostics.Metrics.MeterListener listener = new();
    private readonly System.Collections.Concurrent.ConcurrentQueue<(string Name, double Value, string? Org, string? Outcome)> measurements = new();

    public OutcomeMeter(TrustLineNode node)
    {
        var factory = node.Services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == TrustLineMetrics.MeterName && ReferenceEquals(instrument.Meter.Scope, factory) && instrument.Name.StartsWith("trustline.sessions.outcome", StringComparison.Ordinal))
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => Add(instrument.Name, value, tags));
        listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) => Add(instrument.Name, value, tags));
        listener.Start();
    }

    public double Count(string name, string org, string outcome) => measurements.Where(m => m.Name == name && m.Org == org && m.Outcome == outcome).Sum(m => m.Value);

    public double[] Durations(string org, string outcome) =>
        [.. measurements.Where(m => m.Name == "trustline.sessions.outcome_duration" && m.Org == org && m.Outcome == outcome).Select(m => m.Value)];

    public void Dispose() => listener.Dispose();

    private void Add(string name, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        string? org = null, outcome = null;
        foreach (var tag in tags)
        {
            org = tag.Key == "organisation" ? tag.Value as string : org;
            outcome = tag.Key == "outcome" ? tag.Value as string : outcome;
        }

        measurements.Enqueue((name, value, org, outcome));
    }
}

/// <summary>A hub filter that lets a test cut a connection from the server's side, as a phone's OS does to a suspended app.</summary>
internal sealed class ConnectionAborter : IHubFilter
{
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, HubCallerContext> connections = new();

    public Task OnConnectedAsync(HubLifetimeContext context, Func<HubLifetimeContext, Task> next)
    {
        connections[context.Context.ConnectionId] = context.Context;
        return next(context);
    }

    public Task OnDisconnectedAsync(HubLifetimeContext context, Exception? exception, Func<HubLifetimeContext, Exception?, Task> next)
    {
        connections.TryRemove(context.Context.ConnectionId, out _);
        return next(context, exception);
    }

    /// <summary>Cuts the connection at <paramref name="address"/> (as the store records it: <c>node.connection</c>).</summary>
    public void Abort(string address) => connections[TrustLine.Server.Relay.ThisNode.Split(address).ConnectionId].Abort();
}
