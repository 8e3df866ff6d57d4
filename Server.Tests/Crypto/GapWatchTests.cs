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
        Assert.That(pair.Responder.TryOpen(pair.Seeker.SealText("arrived")).Status, Is.EqualTo(OpenStatus.Buffered));
        using var gate = new SemaphoreSlim(1, 1);
        var expired = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var watch = new GapWatch(gate, () => pair.Responder, () =>
        {
            expired.TrySetResult();
            return Task.CompletedTask;
        }, clock);

        watch.Start();
        watch.Start(); // one timer at a time
        clock.Advance(TimeSpan.FromSeconds(20));
        Assert.That(expired.Task.IsCompleted, Is.False, "not before the hold time");
        clock.Advance(TimeSpan.FromSeconds(12));

        await expired.Task.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.That(pair.Responder.EndReason, Is.EqualTo(ChannelEndReason.MessagesMissing));
    }
}
