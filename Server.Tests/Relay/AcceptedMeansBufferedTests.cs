using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using StackExchange.Redis;
using TrustLine.Protocol.Contracts;
using TrustLine.Protocol.Crypto;
using TrustLine.Server.Storage;
using TrustLine.Server.Tests.Infrastructure;

namespace TrustLine.Server.Tests.Relay;

/// <summary>A send is accepted only once its envelope is buffered; a send that failed uses up nothing.</summary>
public sealed class AcceptedMeansBufferedTests
{
    [TestCase(false, TestName = "ASendWhoseBufferWriteFailsIsRefusedUnavailableAndItsResendIsAcceptedAndRelayed")]
    [TestCase(true, TestName = "ASendWhoseBufferWriteLandedButWhoseAnswerWasLostIsAcceptedAndRelayedOnResend")]
    public async Task ASendWhoseBufferWriteFails(bool writeLands)
    {
        FailingAppends? failing = null;
        await using var world = await World.StartAsync(StoreUnderTest.Redis,
            services: s => s.AddSingleton<ISessionStore>(sp => failing = new FailingAppends(sp.GetRequiredService<RedisSessionStore>(), writeLands)));
        await using var scenario = await ManualSeeker.ConnectAsync(world);
        var first = scenario.Channel.SealText("eerste");
        var second = scenario.Channel.SealText("tweede");

        failing!.FailNext();
        var code = await RefusalTests.CodeOf(scenario.Hub.InvokeAsync<SendResult>(SeekerHubMethods.Send, first));
        Assert.That(code, Is.EqualTo(ErrorCodes.Unavailable), "a send whose buffer write failed is not accepted");
        Assert.That(await RefusalTests.CodeOf(scenario.Hub.InvokeAsync<SendResult>(SeekerHubMethods.Send, second)), Is.EqualTo(ErrorCodes.OutOfOrder),
            "its seq was not used up");

        var resent = await scenario.Hub.InvokeAsync<SendResult>(SeekerHubMethods.Send, first).WaitAsync(TimeSpan.FromSeconds(10));
        var next = await scenario.Hub.InvokeAsync<SendResult>(SeekerHubMethods.Send, second).WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Multiple(() =>
        {
            Assert.That(resent.Duplicate, Is.EqualTo(writeLands), "the buffer already held it only if the failed write landed");
            Assert.That(next.Sequence, Is.EqualTo(resent.Sequence + 1));
        });
        Assert.That(await scenario.ResponderInbox.WaitForAsync(2, "texts at the responder"), Is.EqualTo(new[] { "eerste", "tweede" }),
            "each delivered once, in order");
    }

    /// <summary>The real store, whose next envelope write fails the way Redis does when it drops the connection.</summary>
    private sealed class FailingAppends(ISessionStore inner, bool writeLands) : StoreDecorator(inner)
    {
        private int armed;

        public void FailNext() => Interlocked.Exchange(ref armed, 1);

        public override async Task<AppendOutcome> AppendEnvelopeAsync(Guid id, Direction direction, ulong sequence, byte[] envelope, DateTimeOffset expiresAt)
        {
            if (Interlocked.Exchange(ref armed, 0) == 1)
            {
                if (writeLands)
                {
                    await Inner.AppendEnvelopeAsync(id, direction, sequence, envelope, expiresAt);
                }

                throw new RedisConnectionException(ConnectionFailureType.SocketFailure, "failing on cue");
            }

            return await Inner.AppendEnvelopeAsync(id, direction, sequence, envelope, expiresAt);
        }
    }
}
