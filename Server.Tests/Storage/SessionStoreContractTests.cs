using System.Security.Cryptography;
using Microsoft.Extensions.Time.Testing;
using TrustLine.Protocol.Crypto;
using TrustLine.Server.Storage;
using TrustLine.Server.Tests.Infrastructure;

namespace TrustLine.Server.Tests.Storage;

/// <summary>One contract, two stores: what Redis does across nodes, the embedded store does in one process.</summary>
[TestFixture(StoreUnderTest.Redis)]
[TestFixture(StoreUnderTest.Embedded)]
public sealed class SessionStoreContractTests(StoreUnderTest kind)
{
    private const int Window = 16;
    private FakeTimeProvider time = null!;
    private ISessionStore store = null!;
    private IAccessStore access = null!;
    private readonly byte[] org = RandomNumberGenerator.GetBytes(16);
    private string prefix = "";

    [SetUp]
    public void SetUp()
    {
        time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        if (kind == StoreUnderTest.Redis)
        {
            prefix = TestRedis.NewPrefix();
            var redis = new RedisSessionStore(TestRedis.Connection, new RedisKeys(prefix), time);
            (store, access) = (redis, redis);
        }
        else
        {
            var embedded = new EmbeddedSessionStore(time);
            (store, access) = (embedded, embedded);
        }
    }

    [Test]
    public async Task CreateRefusesAnExistingIdAndAFullQueue()
    {
        var first = Session();

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(await store.CreateAsync(first, 2), Is.EqualTo(CreateOutcome.Created));
            Assert.That(await store.CreateAsync(first with { Language = "en" }, 2), Is.EqualTo(CreateOutcome.Exists));
            Assert.That(await store.CreateAsync(Session(), 2), Is.EqualTo(CreateOutcome.Created));
            Assert.That(await store.CreateAsync(Session(), 2), Is.EqualTo(CreateOutcome.QueueFull));
            Assert.That((await store.GetAsync(first.Id))!.Language, Is.EqualTo("nl"));
        });
    }

    [Test]
    public async Task TicketsCountPerClassInOrderAndTheCountsTellWhatIsServed()
    {
        var a = Session();
        var b = Session(urgent: true);
        var c = Session();
        var d = Session(urgent: true); // past the urgent cap of 1: a ticket of the other class
        var e = Session();
        foreach (var s in new[] { a, b, c, d, e })
        {
            await store.CreateAsync(s, 10, urgentCapacity: 1);
        }

        var places = new List<QueuePlace>();
        foreach (var s in new[] { a, b, c, d, e })
        {
            places.Add(await store.GetPlaceAsync(org, s.Id));
        }

        var initial = await store.GetQueueCountsAsync(org);
        await store.ClaimAsync(org, b.Id, "r", "c1");
        await store.ClaimAsync(org, a.Id, "r", "c1");
        await store.DeleteAsync(d.Id, Window); // from the middle
        var later = await store.GetQueueCountsAsync(org);
        await store.DeleteAsync(c.Id, Window);
        await store.DeleteAsync(e.Id, Window);
        var emptied = await store.GetQueueCountsAsync(org);
        var f = Session();
        await store.CreateAsync(f, 10);

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(places.Select(p => (p.Position, p.Ticket, p.Urgent)), Is.EqualTo(new[] { (2, T(1), false), (1, T(1), true), (3, T(2), false), (4, T(3), false), (5, T(4), false) }));
            Assert.That(places.All(p => p.Waiting == 5), Is.True);
            Assert.That(initial, Is.EqualTo(new QueueCounts(1, T(0), 4, T(0))));
            Assert.That(later, Is.EqualTo(new QueueCounts(0, T(1), 2, T(1))), "urgent: none waits, served through the last handed out; other: 3 and 5 wait");
            Assert.That(emptied, Is.EqualTo(new QueueCounts(0, 0, 0, 0)), "the counters go with the queue's last entry");
            Assert.That(await store.GetPlaceAsync(org, f.Id), Is.EqualTo(new QueuePlace(1, 1, T(1), false)), "tickets start again from the first");
            Assert.That(await store.GetPlaceAsync(org, a.Id), Is.EqualTo(new QueuePlace(0, 1, 0, false)), "not queued");
        });
    }

    [Test]
    public async Task AnOpenAnswersThePlaceTheQueueGaveItAsAReadRightAfterWouldAndSetsTheTimer()
    {
        // Every way into the queue: the other class at the end, urgent, past the urgent cap, transferred to the head
        // of each class, and the class that starts when the queue was empty; then both refusals.
        var arrivals = new[]
        {
            Session(), Session(urgent: true), Session(), Session(urgent: true), Session() with { QueuedSince = time.GetUtcNow() },
            Session(urgent: true) with { QueuedSince = time.GetUtcNow() }, Session(),
        };
        var answered = new List<Opening>();
        var read = new List<QueuePlace>();
        foreach (var s in arrivals)
        {
            answered.Add(await store.OpenAsync(s, Timer(s), 10, urgentCapacity: 2));
            read.Add(await store.GetPlaceAsync(org, s.Id));
        }

        var exists = await store.OpenAsync(arrivals[0] with { Deadline = time.GetUtcNow().AddMinutes(1) }, time.GetUtcNow().AddSeconds(1), 10);
        var refused = Session();
        var full = await store.OpenAsync(refused, time.GetUtcNow().AddSeconds(1), arrivals.Length);
        var due = await store.GetDueAsync(org, time.GetUtcNow().AddHours(2), 100);
        var early = await store.GetDueAsync(org, time.GetUtcNow().AddSeconds(2), 100);
        foreach (var s in arrivals)
        {
            await store.DeleteAsync(s.Id, Window);
        }

        var fresh = Session(urgent: true);
        var first = await store.OpenAsync(fresh, Timer(fresh), 10);

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(answered.Select(o => o.Place), Is.EqualTo(read), "as read right after each create");
            Assert.That(answered.Select(o => o.Outcome), Is.EqualTo(new[]
            {
                CreateOutcome.Created, CreateOutcome.Created, CreateOutcome.Created, CreateOutcome.Created, CreateOutcome.Created,
                CreateOutcome.CreatedNotUrgent, CreateOutcome.Created,
            }));
            Assert.That(read.Select(p => (p.Position, p.Waiting)), Is.EqualTo(new[] { (1, 1), (1, 2), (3, 3), (2, 4), (3, 5), (3, 6), (7, 7) }),
                "the transferred ones at the head of their class; the urgent one past the cap at the head of the other class");
            Assert.That(exists, Is.EqualTo(new Opening(CreateOutcome.Exists, QueuePlace.None)));
            Assert.That(full, Is.EqualTo(new Opening(CreateOutcome.QueueFull, QueuePlace.None)));
            Assert.That(first, Is.EqualTo(new Opening(CreateOutcome.Created, new QueuePlace(1, 1, T(1), true))), "an emptied queue starts again from the first ticket");
            Assert.That(await store.GetPlaceAsync(org, fresh.Id), Is.EqualTo(first.Place));
            Assert.That(due, Is.EquivalentTo(arrivals.Select(s => s.Id)), "each open set its timer; a refused one none");
            Assert.That(early, Is.Empty, "a refused open moves no timer, not even that of the session it collided with");
            Assert.That(await store.GetDueAsync(org, Timer(fresh).AddSeconds(-1), 100), Is.Empty, "at the time given");
            Assert.That(await store.GetDueAsync(org, Timer(fresh), 100), Is.EqualTo(new[] { fresh.Id }));
            Assert.That(await store.GetAsync(refused.Id), Is.Null, "a refused open leaves no record");
        });

        DateTimeOffset Timer(SessionRecord s) => s.Deadline.AddMinutes(-10);
    }

    /// <summary>The n-th ticket of a class since its queue was last empty (n = 0: the one before the first).</summary>
    private static long T(int n) => QueueTickets.First + n - 1;

    [Test]
    public async Task ConcurrentOpensNeverFillTheQueuePastItsCapacity()
    {
        var sessions = Enumerable.Range(0, 600).Select(_ => Session()).ToList();

        var outcomes = await Task.WhenAll(sessions.Select(s => store.CreateAsync(s, 200))).WaitAsync(TimeSpan.FromSeconds(30));

        var refused = sessions.Where((_, i) => outcomes[i] == CreateOutcome.QueueFull).ToList();
        await Assert.MultipleAsync(async () =>
        {
            Assert.That(outcomes.Count(o => o == CreateOutcome.Created), Is.EqualTo(200));
            Assert.That(refused, Has.Count.EqualTo(400));
            Assert.That((await store.GetQueuePositionAsync(org, Guid.Empty)).Waiting, Is.EqualTo(200));
            Assert.That(await store.GetAsync(refused[0].Id), Is.Null, "a refused open leaves nothing");
        });
    }

    [Test]
    public async Task QueueIsUrgentFirstThenOldest()
    {
        var old = Session();
        await store.CreateAsync(old, 10);
        time.Advance(TimeSpan.FromSeconds(1));
        var newer = Session();
        await store.CreateAsync(newer, 10);
        time.Advance(TimeSpan.FromSeconds(1));
        var urgent = Session(urgent: true);
        await store.CreateAsync(urgent, 10);

        var queue = await store.GetQueueAsync(org, 100);

        Assert.That(queue.Select(q => q.Id), Is.EqualTo(new[] { urgent.Id, old.Id, newer.Id }));
        Assert.That(await store.GetQueuePositionAsync(org, newer.Id), Is.EqualTo((3, 3)));
    }

    [Test]
    public async Task AnUrgentSessionPastTheUrgentCapacityJoinsAsNotUrgentAndItsRecordSaysSo()
    {
        var calm = Session();
        await store.CreateAsync(calm, 10, urgentCapacity: 1);
        time.Advance(TimeSpan.FromSeconds(1));
        var first = Session(urgent: true);
        var second = Session(urgent: true);

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(await store.CreateAsync(first, 10, urgentCapacity: 1), Is.EqualTo(CreateOutcome.Created));
            Assert.That(await store.CreateAsync(second, 10, urgentCapacity: 1), Is.EqualTo(CreateOutcome.CreatedNotUrgent));
            Assert.That((await store.GetQueueAsync(org, 10)).Select(q => (q.Id, q.Urgent)), Is.EqualTo(new[] { (first.Id, true), (calm.Id, false), (second.Id, false) }));
            Assert.That((await store.GetAsync(second.Id))!.Urgent, Is.False);
        });

        // The urgent place frees when its session leaves the queue.
        await store.ClaimAsync(org, first.Id, "r", "c");
        Assert.That(await store.CreateAsync(Session(urgent: true), 10, urgentCapacity: 1), Is.EqualTo(CreateOutcome.Created));
    }

    [Test]
    public async Task ConcurrentUrgentOpensNeverHoldMoreThanTheUrgentCapacity()
    {
        var sessions = Enumerable.Range(0, 300).Select(_ => Session(urgent: true)).ToList();

        var outcomes = await Task.WhenAll(sessions.Select(s => store.CreateAsync(s, 1000, urgentCapacity: 20))).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Multiple(() =>
        {
            Assert.That(outcomes.Count(o => o == CreateOutcome.Created), Is.EqualTo(20));
            Assert.That(outcomes.Count(o => o == CreateOutcome.CreatedNotUrgent), Is.EqualTo(280));
        });
        Assert.That((await store.GetQueueAsync(org, 1000)).Count(q => q.Urgent), Is.EqualTo(20));
    }

    [Test]
    public async Task AClaimForAnotherOrganisationTakesNothingAndMovesNothing()
    {
        var session = Session();
        await store.CreateAsync(session, 10);
        var other = RandomNumberGenerator.GetBytes(16);

        var foreign = await store.ClaimAsync(other, session.Id, "stranger", "c0");
        var queued = await store.GetQueueAsync(org, 10);
        var record = await store.GetAsync(session.Id);
        var own = await store.ClaimAsync(org, session.Id, "holder", "c1");

        Assert.Multiple(() =>
        {
            Assert.That(foreign, Is.Null);
            Assert.That(queued.Select(q => q.Id), Is.EqualTo(new[] { session.Id }), "still waiting in its own queue");
            Assert.That((record!.State, record.ResponderId), Is.EqualTo((SessionState.Queued, (string?)null)));
            Assert.That(own?.ResponderId, Is.EqualTo("holder"), "its own organisation still takes it");
        });
    }

    [Test]
    public async Task OnlyOneClaimWins()
    {
        var session = Session();
        await store.CreateAsync(session, 10);

        var claims = await Task.WhenAll(Enumerable.Range(0, 8).Select(i => store.ClaimAsync(org, session.Id, $"r{i}", $"c{i}")));

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(claims.Count(c => c is not null), Is.EqualTo(1));
            Assert.That(await store.GetQueueAsync(org, 100), Is.Empty);
            Assert.That((await store.GetAsync(session.Id))!.State, Is.EqualTo(SessionState.Active));
        });
    }

    [Test]
    public async Task AnswerIsStoredOnceAndOnlyForTheHolder()
    {
        var session = Session();
        await store.CreateAsync(session, 10);
        await store.ClaimAsync(org, session.Id, "holder", "c");

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(await store.SetAnswerAsync(session.Id, "someone-else", new byte[364]), Is.False);
            Assert.That(await store.SetAnswerAsync(session.Id, "holder", new byte[364]), Is.True);
            Assert.That(await store.SetAnswerAsync(session.Id, "holder", new byte[364]), Is.False);
        });
    }

    [Test]
    public async Task EnvelopesAreKeptOnceUntilAcknowledged()
    {
        var session = Session();
        await store.CreateAsync(session, 10);
        var expires = time.GetUtcNow().AddMinutes(5);

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(await store.AppendEnvelopeAsync(session.Id, Direction.ClientToServer, 0, [1], expires), Is.EqualTo(AppendOutcome.Stored));
            Assert.That(await store.AppendEnvelopeAsync(session.Id, Direction.ClientToServer, 0, [9], expires), Is.EqualTo(AppendOutcome.Duplicate), "a resend is a duplicate");
            Assert.That(await store.AppendEnvelopeAsync(session.Id, Direction.ClientToServer, 1, [2], expires), Is.EqualTo(AppendOutcome.Stored));
            Assert.That(await store.AppendEnvelopeAsync(session.Id, Direction.ClientToServer, 2, [3], expires), Is.EqualTo(AppendOutcome.Stored));
        });

        Assert.That((await store.GetEnvelopesAsync(session.Id, Direction.ClientToServer, -1, Window)).Select(e => e.Envelope[0]), Is.EqualTo(new byte[] { 1, 2, 3 }));
        Assert.That(await store.AcknowledgeAsync(session.Id, Direction.ClientToServer, 1, Window), Is.EqualTo(1));
        await Assert.MultipleAsync(async () =>
        {
            Assert.That((await store.GetEnvelopesAsync(session.Id, Direction.ClientToServer, -1, Window)).Select(e => e.Sequence), Is.EqualTo(new ulong[] { 2 }));
            Assert.That((await store.GetAsync(session.Id))!.AckedClientToServer, Is.EqualTo(1));
            Assert.That(await store.AcknowledgeAsync(session.Id, Direction.ClientToServer, 0, Window), Is.EqualTo(1), "acks never go back");
            Assert.That(await store.GetEnvelopesAsync(session.Id, Direction.ServerToClient, -1, Window), Is.Empty, "directions are apart");
            Assert.That(await store.AcknowledgeAsync(session.Id, Direction.ClientToServer, 1 + Window + 1, Window), Is.EqualTo(-3), "nothing can have been sent that far ahead");
            Assert.That((await store.GetAsync(session.Id))!.AckedClientToServer, Is.EqualTo(1), "a refused ack changes nothing");
        });
    }

    [Test]
    public async Task AnAckReleasesOnlyWhatItAcknowledges()
    {
        var session = Session();
        await store.CreateAsync(session, 10);
        var expires = time.GetUtcNow().AddMinutes(5);
        for (var seq = 0UL; seq < 10; seq++)
        {
            await store.AppendEnvelopeAsync(session.Id, Direction.ClientToServer, seq, [(byte)seq], expires);
        }

        async Task<ulong[]> Buffered() => [.. (await store.GetEnvelopesAsync(session.Id, Direction.ClientToServer, -1, Window)).Select(e => e.Sequence)];

        Assert.That(await store.AcknowledgeAsync(session.Id, Direction.ClientToServer, 4, Window), Is.EqualTo(4));
        Assert.That(await Buffered(), Is.EqualTo(new ulong[] { 5, 6, 7, 8, 9 }), "seqs past the ack stay");
        Assert.That(await store.AcknowledgeAsync(session.Id, Direction.ClientToServer, 2, Window), Is.EqualTo(4), "a lower ack changes nothing");
        Assert.That(await Buffered(), Is.EqualTo(new ulong[] { 5, 6, 7, 8, 9 }), "a lower ack deletes nothing");
        Assert.That(await store.AcknowledgeAsync(session.Id, Direction.ClientToServer, 6, Window), Is.EqualTo(6));
        Assert.That(await Buffered(), Is.EqualTo(new ulong[] { 7, 8, 9 }));
        Assert.That(await store.AcknowledgeAsync(session.Id, Direction.ClientToServer, 9, Window), Is.EqualTo(9));
        Assert.That(await Buffered(), Is.Empty, "none after the last ack");
    }

    [Test]
    public async Task AnEnvelopeAtOrBelowTheAckIsADuplicateAndNotKept()
    {
        var session = Session();
        await store.CreateAsync(session, 10);
        var expires = time.GetUtcNow().AddMinutes(5);
        await store.AppendEnvelopeAsync(session.Id, Direction.ServerToClient, 0, [1], expires);
        await store.AppendEnvelopeAsync(session.Id, Direction.ServerToClient, 1, [2], expires);
        await store.AcknowledgeAsync(session.Id, Direction.ServerToClient, 1, Window);

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(await store.AppendEnvelopeAsync(session.Id, Direction.ServerToClient, 0, [9], expires), Is.EqualTo(AppendOutcome.Duplicate), "it was delivered");
            Assert.That(await store.AppendEnvelopeAsync(session.Id, Direction.ServerToClient, 1, [9], expires), Is.EqualTo(AppendOutcome.Duplicate));
            Assert.That(await store.GetEnvelopesAsync(session.Id, Direction.ServerToClient, -1, Window), Is.Empty);
            Assert.That(await store.AppendEnvelopeAsync(session.Id, Direction.ServerToClient, 2, [3], expires), Is.EqualTo(AppendOutcome.Stored));
        });
    }

    [Test]
    public async Task DeleteTakesEveryBufferedEnvelopeOfBothDirections()
    {
        var session = Session();
        await store.CreateAsync(session, 10);
        var expires = time.GetUtcNow().AddMinutes(5);
        for (var seq = 0UL; seq < 6; seq++)
        {
            await store.AppendEnvelopeAsync(session.Id, Direction.ClientToServer, seq, [1], expires);
            await store.AppendEnvelopeAsync(session.Id, Direction.ServerToClient, seq, [2], expires);
        }

        await store.AcknowledgeAsync(session.Id, Direction.ClientToServer, 2, Window);
        var deleted = await store.DeleteAsync(session.Id, Window);

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(deleted, Is.Not.Null);
            Assert.That(deleted!.HighestServerToClient, Is.EqualTo(5));
            Assert.That(deleted.AckedClientToServer, Is.EqualTo(2));
            Assert.That(await store.GetEnvelopesAsync(session.Id, Direction.ClientToServer, -1, Window), Is.Empty);
            Assert.That(await store.GetEnvelopesAsync(session.Id, Direction.ServerToClient, -1, Window), Is.Empty);
        });
        if (kind == StoreUnderTest.Redis)
        {
            var left = new List<string>();
            await foreach (var key in TestRedis.Connection.GetServer(TestRedis.Connection.GetEndPoints()[0]).KeysAsync(pattern: $"{prefix}:*{session.Id:N}*"))
            {
                left.Add(key.ToString());
            }

            Assert.That(left, Is.Empty, "no key of the session is left");
        }
    }

    [Test]
    public async Task AClaimAnswersWithTheRecordAsClaimed()
    {
        var session = Session();
        await store.CreateAsync(session, 10);
        await store.SetConnectionAsync(session.Id, Party.Seeker, "seeker-2", null);

        var claimed = await store.ClaimAsync(org, session.Id, "holder", "responder-1");

        Assert.That(claimed, Is.EqualTo(await store.GetAsync(session.Id)).Using<SessionRecord>(Same));
        Assert.Multiple(() =>
        {
            Assert.That(claimed!.State, Is.EqualTo(SessionState.Active));
            Assert.That(claimed.ResponderId, Is.EqualTo("holder"));
            Assert.That(claimed.ResponderConnection, Is.EqualTo("responder-1"));
            Assert.That(claimed.SeekerConnection, Is.EqualTo("seeker-2"));
            Assert.That(claimed.Epoch, Is.EqualTo(2), "the seeker's move, then the claim");
            Assert.That(claimed.Msg1, Is.EqualTo(session.Msg1));
        });

        static bool Same(SessionRecord a, SessionRecord b) =>
            a.Id == b.Id && a.State == b.State && a.ResponderId == b.ResponderId && a.ResponderConnection == b.ResponderConnection
            && a.SeekerConnection == b.SeekerConnection && a.Epoch == b.Epoch && a.LastActivity == b.LastActivity && a.Msg1.AsSpan().SequenceEqual(b.Msg1);
    }

    [Test]
    public async Task AnEnvelopeArrivingAfterTheSessionEndedIsNotKept()
    {
        var session = Session();
        await store.CreateAsync(session, 10);
        await store.DeleteAsync(session.Id, Window);
        var expires = time.GetUtcNow().AddMinutes(5);

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(await store.AppendEnvelopeAsync(session.Id, Direction.ClientToServer, 0, [1], expires), Is.EqualTo(AppendOutcome.SessionGone));
            Assert.That(await store.AppendEnvelopeAsync(session.Id, Direction.ServerToClient, 0, [2], expires), Is.EqualTo(AppendOutcome.SessionGone));
            Assert.That(await store.GetEnvelopesAsync(session.Id, Direction.ClientToServer, -1, Window), Is.Empty);
            Assert.That(await store.GetEnvelopesAsync(session.Id, Direction.ServerToClient, -1, Window), Is.Empty, "no key for a session without a record");
        });
    }

    [Test]
    public async Task AnAcknowledgementPastTheHighestBufferedSeqIsRefused()
    {
        var session = Session();
        await store.CreateAsync(session, 10);
        var expires = time.GetUtcNow().AddMinutes(5);

        Assert.That(await store.AcknowledgeAsync(session.Id, Direction.ServerToClient, 0, Window), Is.EqualTo(-3), "nothing was sent yet");
        await store.AppendEnvelopeAsync(session.Id, Direction.ServerToClient, 0, [1], expires);
        await store.AppendEnvelopeAsync(session.Id, Direction.ServerToClient, 1, [2], expires);

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(await store.AcknowledgeAsync(session.Id, Direction.ServerToClient, 2, Window), Is.EqualTo(-3), "seq 2 was never sent");
            Assert.That(await store.AcknowledgeAsync(session.Id, Direction.ClientToServer, 0, Window), Is.EqualTo(-3), "the other direction sent nothing");
            Assert.That(await store.AcknowledgeAsync(session.Id, Direction.ServerToClient, 1, Window), Is.EqualTo(1));
            Assert.That(await store.AcknowledgeAsync(session.Id, Direction.ServerToClient, 1, Window), Is.EqualTo(1), "a repeated ack is fine");
            Assert.That((await store.GetAsync(session.Id))!.AckedServerToClient, Is.EqualTo(1));
        });
    }

    [Test]
    public async Task DeleteRemovesEverythingAndOnlyOneCallerGetsTheRecord()
    {
        var session = Session();
        await store.CreateAsync(session, 10);
        await store.AppendEnvelopeAsync(session.Id, Direction.ClientToServer, 0, [1], time.GetUtcNow().AddMinutes(5));
        await store.ScheduleAsync(org, session.Id, time.GetUtcNow(), session.Deadline);

        var deletes = await Task.WhenAll(store.DeleteAsync(session.Id, Window), store.DeleteAsync(session.Id, Window));

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(deletes.Count(d => d is not null), Is.EqualTo(1));
            Assert.That(await store.GetAsync(session.Id), Is.Null);
            Assert.That(await store.GetQueueAsync(org, 100), Is.Empty);
            Assert.That(await store.GetEnvelopesAsync(session.Id, Direction.ClientToServer, -1, Window), Is.Empty);
            Assert.That(await store.GetDueAsync(org, time.GetUtcNow().AddDays(1), 10), Does.Not.Contain(session.Id));
        });
    }

    [Test]
    public async Task DueTimersAreHandledByOneCaller()
    {
        var session = Session();
        await store.CreateAsync(session, 10);
        await store.ScheduleAsync(org, session.Id, time.GetUtcNow().AddSeconds(10), session.Deadline);

        Assert.That(await store.GetDueAsync(org, time.GetUtcNow(), 10), Does.Not.Contain(session.Id));
        time.Advance(TimeSpan.FromSeconds(11));
        Assert.That(await store.GetDueAsync(org, time.GetUtcNow(), 10), Does.Contain(session.Id));
        var lease = time.GetUtcNow().AddSeconds(30);
        var takes = await Task.WhenAll(store.TryTakeTimerAsync(org, session.Id, time.GetUtcNow(), lease), store.TryTakeTimerAsync(org, session.Id, time.GetUtcNow(), lease));
        Assert.That(takes.Count(t => t), Is.EqualTo(1));
    }

    [Test]
    public async Task ATakenTimerComesDueAgainWhenItsLeaseRunsOut()
    {
        var session = Session();
        await store.CreateAsync(session, 10);
        await store.ScheduleAsync(org, session.Id, time.GetUtcNow(), session.Deadline);
        var lease = time.GetUtcNow().AddSeconds(30);

        Assert.That(await store.TryTakeTimerAsync(org, session.Id, time.GetUtcNow(), lease), Is.True);
        Assert.That(await store.GetDueAsync(org, time.GetUtcNow(), 10), Does.Not.Contain(session.Id), "hidden while leased");
        time.Advance(TimeSpan.FromSeconds(31));

        // The taker never finished (its node failed, or the store did): another sweep gets it.
        Assert.That(await store.GetDueAsync(org, time.GetUtcNow(), 10), Does.Contain(session.Id));
        Assert.That(await store.TryTakeTimerAsync(org, session.Id, time.GetUtcNow(), time.GetUtcNow().AddSeconds(30)), Is.True);
    }

    [Test]
    public async Task CompletingATakenTimerMovesItUnlessItWasScheduledAnew()
    {
        var moved = Session();
        var rescheduled = Session();
        var done = Session();
        foreach (var s in new[] { moved, rescheduled, done })
        {
            await store.CreateAsync(s, 10);
            await store.ScheduleAsync(org, s.Id, time.GetUtcNow(), s.Deadline);
        }

        var lease = time.GetUtcNow().AddSeconds(30);
        foreach (var s in new[] { moved, rescheduled, done })
        {
            Assert.That(await store.TryTakeTimerAsync(org, s.Id, time.GetUtcNow(), lease), Is.True);
        }

        // Meanwhile a party of one session dropped: its grace timer is fresher than what the taker read.
        await store.ScheduleAsync(org, rescheduled.Id, time.GetUtcNow().AddSeconds(5), rescheduled.Deadline);
        await store.CompleteTimerAsync(org, moved.Id, lease, time.GetUtcNow().AddMinutes(10));
        await store.CompleteTimerAsync(org, rescheduled.Id, lease, time.GetUtcNow().AddMinutes(10));
        await store.CompleteTimerAsync(org, done.Id, lease, null);

        time.Advance(TimeSpan.FromMinutes(1));
        var dueSoon = await store.GetDueAsync(org, time.GetUtcNow(), 10);
        time.Advance(TimeSpan.FromMinutes(10));
        var dueLater = await store.GetDueAsync(org, time.GetUtcNow(), 10);
        Assert.Multiple(() =>
        {
            Assert.That(dueSoon, Is.EqualTo(new[] { rescheduled.Id }), "only the fresh schedule is due after a minute");
            Assert.That(dueLater, Is.EquivalentTo(new[] { moved.Id, rescheduled.Id }), "the finished one is gone for good");
        });
    }

    [Test]
    public async Task AnEarlierDeadlineNeverShortensOtherSessionsTimers()
    {
        var later = Session();
        var earlier = Session();
        await store.CreateAsync(later, 10);
        await store.CreateAsync(earlier, 10);
        await store.ScheduleAsync(org, later.Id, time.GetUtcNow().AddSeconds(10), later.Deadline);

        // A session whose deadline has (just) passed is rescheduled after the others: its key expiry lies in the past.
        await store.ScheduleAsync(org, earlier.Id, time.GetUtcNow().AddSeconds(10), time.GetUtcNow().AddSeconds(-1));
        time.Advance(TimeSpan.FromSeconds(11));

        Assert.That(await store.GetDueAsync(org, time.GetUtcNow(), 10), Does.Contain(later.Id));
    }

    [Test]
    public async Task TheTimersKeyExpiresOnlyAfterTheLatestDeadlineScheduled()
    {
        var later = Session();
        var earlier = Session();
        await store.CreateAsync(later, 10);
        await store.CreateAsync(earlier, 10);
        await store.ScheduleAsync(org, later.Id, time.GetUtcNow().AddSeconds(10), time.GetUtcNow().AddHours(1));
        await store.ScheduleAsync(org, earlier.Id, time.GetUtcNow().AddSeconds(5), time.GetUtcNow().AddMinutes(10));

        Assert.That(await store.GetDueAsync(org, time.GetUtcNow().AddSeconds(10), 10), Is.EquivalentTo(new[] { later.Id, earlier.Id }));
        if (kind == StoreUnderTest.Redis)
        {
            var ttl = await TestRedis.Connection.GetDatabase().KeyTimeToLiveAsync(new RedisKeys(prefix).Timers(org));
            Assert.That(ttl, Is.GreaterThan(TimeSpan.FromMinutes(59)).And.LessThanOrEqualTo(TimeSpan.FromHours(1)),
                "created with a TTL, and an earlier deadline does not pull it back");
        }
    }

    [Test]
    public async Task ConnectionsAndAbsencesAreRecorded()
    {
        var session = Session();
        await store.CreateAsync(session, 10);
        var gone = time.GetUtcNow();

        await store.SetConnectionAsync(session.Id, Party.Seeker, null, gone);
        var away = await store.GetAsync(session.Id);
        await store.SetConnectionAsync(session.Id, Party.Seeker, "new-connection", null);
        var back = await store.GetAsync(session.Id);

        Assert.Multiple(() =>
        {
            Assert.That(away!.SeekerConnection, Is.Null);
            Assert.That(away.SeekerGoneAt!.Value.ToUnixTimeMilliseconds(), Is.EqualTo(gone.ToUnixTimeMilliseconds()));
            Assert.That(back!.SeekerConnection, Is.EqualTo("new-connection"));
            Assert.That(back.SeekerGoneAt, Is.Null);
        });
    }

    [Test]
    public async Task APartyIsMarkedAwayOnlyFromItsCurrentConnection()
    {
        var session = Session();
        await store.CreateAsync(session, 10);
        await store.SetConnectionAsync(session.Id, Party.Seeker, "current", null);
        var gone = time.GetUtcNow();

        Assert.That(await store.MarkGoneAsync(session.Id, Party.Seeker, "an-older-one", gone), Is.Null, "it resumed elsewhere meanwhile");
        Assert.That((await store.GetAsync(session.Id))!.SeekerConnection, Is.EqualTo("current"));
        Assert.That(await store.MarkGoneAsync(session.Id, Party.Seeker, "current", gone), Is.Not.Null);
        var away = await store.GetAsync(session.Id);
        Assert.Multiple(() =>
        {
            Assert.That(away!.SeekerConnection, Is.Null);
            Assert.That(away.SeekerGoneAt!.Value.ToUnixTimeMilliseconds(), Is.EqualTo(gone.ToUnixTimeMilliseconds()));
        });
    }

    [Test]
    public async Task EveryConnectionChangeAdvancesTheEpoch()
    {
        var session = Session();
        await store.CreateAsync(session, 10);
        var created = (await store.GetAsync(session.Id))!.Epoch;

        var claimed = (await store.ClaimAsync(org, session.Id, "responder", "r1"))!.Epoch;
        var resumed = await store.SetConnectionAsync(session.Id, Party.Seeker, "s2", null);
        var gone = await store.MarkGoneAsync(session.Id, Party.Responder, "r1", time.GetUtcNow());
        await store.DeleteAsync(session.Id, Window);

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(claimed, Is.GreaterThan(created));
            Assert.That(resumed, Is.GreaterThan(claimed));
            Assert.That(gone, Is.GreaterThan(resumed!.Value));
            Assert.That(await store.SetConnectionAsync(session.Id, Party.Seeker, "s3", null), Is.Null, "an ended session has no epoch");
        });
    }

    [Test]
    public async Task ASpentTokenIsSpentOnceAndForgottenWhenItExpires()
    {
        Admission.ISpentTokens spent = kind == StoreUnderTest.Redis
            ? new Admission.RedisSpentTokens(TestRedis.Connection, new RedisKeys(TestRedis.NewPrefix()), time)
            : new Admission.EmbeddedSpentTokens(time);
        var token = RandomNumberGenerator.GetBytes(16);
        var until = time.GetUtcNow().AddMinutes(1);

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(await spent.TrySpendAsync("pz", token, until), Is.True);
            Assert.That(await spent.TrySpendAsync("pz", token, until), Is.False, "spent once");
            Assert.That(await spent.TrySpendAsync("ch", token, until), Is.True, "kinds are apart");
        });

        if (kind == StoreUnderTest.Embedded)
        {
            time.Advance(TimeSpan.FromMinutes(2));
            Assert.That(await spent.TrySpendAsync("pz", token, time.GetUtcNow().AddMinutes(1)), Is.True, "an expired entry is forgotten");
        }
    }

    [Test]
    public async Task TokensAreFoundByTheirHash()
    {
        var hash = RandomNumberGenerator.GetBytes(32);
        var grant = new ResponderGrant(org, "abcd0123abcd0123", time.GetUtcNow().AddHours(1));
        await access.StoreTokenAsync(hash, grant, TimeSpan.FromHours(1));

        var found = await access.GetTokenAsync(hash);

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(found!.ResponderId, Is.EqualTo(grant.ResponderId));
            Assert.That(found.OrgId, Is.EqualTo(org));
            Assert.That(await access.GetTokenAsync(RandomNumberGenerator.GetBytes(32)), Is.Null);
        });
    }

    private SessionRecord Session(bool urgent = false) => TestSessions.Waiting(org, time.GetUtcNow(), TimeSpan.FromHours(1)) with { Urgent = urgent };
}
