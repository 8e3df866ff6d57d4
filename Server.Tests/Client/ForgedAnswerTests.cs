using Microsoft.AspNetCore.SignalR.Client;
using TrustLine.Client;
using TrustLine.Protocol.Contracts;
using TrustLine.Protocol.Crypto;
using TrustLine.Server.Tests.Infrastructure;

namespace TrustLine.Server.Tests.Client;

/// <summary>
/// A msg2 that does not verify can only come from the relay, and the server takes one answer per session:
/// the seeker's SDK ends the session at once and closes it on the server (docs/protocol.md, handshake step 3).
/// </summary>
public sealed class ForgedAnswerTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    [Test]
    public async Task AnswerThatDoesNotVerifyEndsTheSeekersSessionAndClosesItOnTheServer()
    {
        await using var world = await World.StartAsync(StoreUnderTest.Embedded);
        var seeker = world.Seeker();
        var ended = new TaskCompletionSource<string?>(TaskCreationOptions.RunContinuationsAsynchronously);
        seeker.StateChanged += state =>
        {
            if (state == SeekerState.Ended)
            {
                ended.TrySetResult(seeker.EndReason);
            }
        };
        await seeker.OpenAsync("nl").WaitAsync(Timeout);
        using var credentials = world.Org.Credentials();
        var token = await ResponderClient.RequestTokenAsync(world.Nodes[0].BaseAddress, credentials).WaitAsync(Timeout);
        await using var hub = HubCalls.Build(world.Nodes[0].BaseAddress, Routes.ResponderHub, () => Task.FromResult<string?>(token));
        var toldOfTheEnd = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        hub.On<SessionEnd>(nameof(IResponderClient.SessionEnded), end => toldOfTheEnd.TrySetResult(end.Reason));
        await hub.StartAsync().WaitAsync(Timeout);
        var responder = hub.Responder();
        var taken = await responder.TakeNext().WaitAsync(Timeout);
        Assert.That(taken, Is.Not.Null);
        var accepted = ResponderHandshake.Accept(taken!.Msg1, credentials, TimeProvider.System);
        using var channel = accepted.Channel!;
        var forged = (byte[])accepted.Msg2!.Clone();
        forged[^1] ^= 0x01; // the handshake signature

        await responder.Answer(taken.SessionId, forged).WaitAsync(Timeout);

        Assert.That(await ended.Task.WaitAsync(Timeout), Does.StartWith(SessionEndReasons.HandshakeFailed + ":"));
        Assert.That(await toldOfTheEnd.Task.WaitAsync(Timeout), Is.EqualTo(EndReasons.SeekerClosed), "closed on the server, not left to time out");
        var genuine = Assert.ThrowsAsync<TrustLineException>(() => responder.Answer(taken.SessionId, accepted.Msg2!).WaitAsync(Timeout));
        Assert.That(genuine!.Code, Is.EqualTo(ErrorCodes.NoSuchSession), "the genuine answer cannot follow a forged one");
    }
}
