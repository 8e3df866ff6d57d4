using TrustLine.Protocol.Contracts;

namespace TrustLine.Server.Tests.Client;

/// <summary>
/// The place a seeker computes from a <see cref="QueueMoved"/> notice and its ticket (the .NET SDK's rule; the
/// TypeScript SDK's copy is held to the same cases in Web/sdk/test/seeker-client.test.ts).
/// </summary>
public sealed class QueuePlaceTests
{
    // Queue: urgent tickets 4, 5 waiting (1–3 served); other tickets 7, 8, 9, 10 waiting (1–6 served).
    private static readonly QueueMoved Moved = new() { UrgentWaiting = 2, UrgentServedThrough = 3, OtherWaiting = 4, OtherServedThrough = 6, SecondsPerTake = 60 };

    [TestCase(4L, true, 1)]
    [TestCase(5L, true, 2)]
    [TestCase(7L, false, 3)]
    [TestCase(10L, false, 6)]
    public void UrgentSessionsComeFirstThenTheClassInTicketOrder(long ticket, bool urgent, int place)
    {
        var status = Moved.StatusFor(ticket, urgent)!;
        Assert.Multiple(() =>
        {
            Assert.That(status.Position, Is.EqualTo(place));
            Assert.That(status.Waiting, Is.EqualTo(6));
            Assert.That((status.Ticket, status.UrgentTicket), Is.EqualTo((ticket, urgent)));
        });
    }

    [Test]
    public void ALeaveOutOfTurnIsBoundedByTheCountAndNeverGivesTooFewAhead()
    {
        // Other tickets 7, 9, 10 wait (8 left from the middle): 10 has two ahead, 9 has one.
        var moved = new QueueMoved { UrgentWaiting = 0, UrgentServedThrough = 0, OtherWaiting = 3, OtherServedThrough = 6 };
        Assert.Multiple(() =>
        {
            Assert.That(moved.StatusFor(10, false)!.Position, Is.EqualTo(3), "the count bounds it: exact");
            Assert.That(moved.StatusFor(9, false)!.Position, Is.EqualTo(3), "one too many (8 left out of turn), never too few");
            Assert.That(moved.StatusFor(7, false)!.Position, Is.EqualTo(1));
        });
    }

    [Test]
    public void ATicketServedThroughHasNoPlace()
    {
        Assert.Multiple(() =>
        {
            Assert.That(Moved.StatusFor(6, false), Is.Null);
            Assert.That(Moved.StatusFor(3, true), Is.Null);
            Assert.That(new QueueMoved().StatusFor(1, false), Is.Null, "nobody waits");
        });
    }

    [Test]
    public void TheWaitRangeFollowsTheTakeRateOrIsUnknown()
    {
        Assert.Multiple(() =>
        {
            Assert.That(QueueStatus.WaitRange(1, 60), Is.EqualTo((40, 161)));
            Assert.That(QueueStatus.WaitRange(4, 60), Is.EqualTo((220, 418)));
            Assert.That(QueueStatus.WaitRange(3, -1), Is.EqualTo((-1, -1)));
            Assert.That(Moved.StatusFor(7, false)!.WaitLowSeconds, Is.EqualTo(QueueStatus.WaitRange(3, 60).Low));
            Assert.That(new QueueMoved { OtherWaiting = 1 }.StatusFor(1, false)!.WaitHighSeconds, Is.EqualTo(-1), "no estimate without takes");
        });
    }
}
