using TrustLine.Client;
using TrustLine.Protocol.Crypto;

namespace TrustLine.Server.Tests.Crypto;

/// <summary>The SDK ends a session whose gap outlives the hold time, even when nothing else arrives.</summary>
public sealed class GapWatchTests
{
    [Test]
    public async Task GapOutlivingTheHoldTimeEndsTheSessionWithoutAnotherEnvelope()
    {
        var clock = Vectors.Clock();
        using var org = new TestOrganisation();
        using var pair = Pair.Create(org, clock);
        Assert.That(pair.Responder.TryOpen(pair.Seeker.SealHello()).Status, Is.EqualTo(OpenStatus.Delivered));
        _ = pair.Seeker.SealText("lost on the way");
        var sync = new Lock();
        var expired = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var watch = new GapWatch(sync, () => pair.Responder, () =>
        {
            expired.TrySetResult();
            return Task.CompletedTask;
        }, clock, CancellationToken.None);
        lock (sync)
        {
            Assert.That(pair.Responder.TryOpen(pair.Seeker.SealText("arrived")).Status, Is.EqualTo(OpenStatus.Buffered));
            watch.Start();
            watch.Start(); // one timer at a time
        }

        clock.Advance(TimeSpan.FromSeconds(20));
        Assert.That(expired.Task.IsCompleted, Is.False, "not before the hold time");
        clock.Advance(TimeSpan.FromSeconds(12));

        await expired.Task.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.That(pair.Responder.EndReason, Is.EqualTo(ChannelEndReason.MessagesMissing));
    }

    [Test]
    public async Task LaterGapOpenedBeforeTheTimerFiresIsStillDetected()
    {
        var clock = Vectors.Clock();
        using var org = new TestOrganisation();
        using var pair = Pair.Create(org, clock);
        Assert.That(pair.Responder.TryOpen(pair.Seeker.SealHello()).Status, Is.EqualTo(OpenStatus.Delivered));
        var sync = new Lock();
        var expired = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var watch = new GapWatch(sync, () => pair.Responder, () =>
        {
            expired.TrySetResult();
            return Task.CompletedTask;
        }, clock, CancellationToken.None);

        // Gap A opens at 0 s and arms the timer.
        var lateA = pair.Seeker.SealText("A, late");
        Open(pair.Seeker.SealText("after A"), OpenStatus.Buffered);

        // A fills at 10 s; gap B opens at 20 s, before the timer fires, and is then followed by silence.
        clock.Advance(TimeSpan.FromSeconds(10));
        Open(lateA, OpenStatus.Delivered);
        clock.Advance(TimeSpan.FromSeconds(10));
        _ = pair.Seeker.SealText("B, lost");
        Open(pair.Seeker.SealText("after B"), OpenStatus.Buffered);

        // The timer fires at 31 s and finds B only 11 s old: not yet, but it must look again.
        clock.Advance(TimeSpan.FromSeconds(11));
        Assert.That(expired.Task.IsCompleted, Is.False, "B has not outlived the hold time yet");
        Assert.That(watch.Running.IsCompleted, Is.False, "the watch re-arms while a gap remains");
        clock.Advance(TimeSpan.FromSeconds(21));

        await expired.Task.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.That(pair.Responder.EndReason, Is.EqualTo(ChannelEndReason.MessagesMissing));

        void Open(byte[] envelope, OpenStatus expected)
        {
            lock (sync)
            {
                Assert.That(pair.Responder.TryOpen(envelope).Status, Is.EqualTo(expected));
                if (expected == OpenStatus.Buffered)
                {
                    watch.Start();
                }
            }
        }
    }
}
