using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using TrustLine.Client;
using TrustLine.Protocol.Contracts;
using TrustLine.Protocol.Crypto;
using TrustLine.Server.Tests.Infrastructure;
using TrustLine.Server.Tests.Relay;

namespace TrustLine.Server.Tests.Client;

/// <summary>What one seeker sends can end its own session at most, never the counsellor's console or its other sessions.</summary>
public sealed class PeerContentTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    [Test]
    public async Task SeekersCloseEndsOnlyItsSessionAndTheConsoleGoesOn()
    {
        await using var world = await World.StartAsync(StoreUnderTest.Embedded);
        var crafted = await ManualSeeker.ConnectAsync(world);
        await using var _ = crafted;
        var ended = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        crafted.Session.Ended += reason => ended.TrySetResult(reason);
        var seeker = world.Seeker();
        var inbox = new Inbox<string>();
        seeker.MessageReceived += inbox.Add;
        await seeker.OpenAsync("nl").WaitAsync(Timeout);
        var other = await crafted.Responder.TakeNextAsync().WaitAsync(Timeout);
        await other!.WhenEstablished.WaitAsync(Timeout);

        await SendAsync(crafted, crafted.Channel.SealPaddedForTests(Padded(0x7f)));
        await SendAsync(crafted, crafted.Channel.SealClose());
        try
        {
            await SendAsync(crafted, crafted.Channel.SealPaddedForTests(Padded((byte)ContentType.Text)));
        }
        catch (HubException)
        {
            // The server may already have forgotten the session: then the envelope after CLOSE never arrives.
        }

        Assert.That(await ended.Task.WaitAsync(Timeout), Is.EqualTo(SessionEndReasons.PeerClosed));
        await other.SendTextAsync("still here").WaitAsync(Timeout);
        await Assert.MultipleAsync(async () =>
        {
            Assert.That(await inbox.WaitForAsync(1, "a text on the console's other session"), Is.EqualTo(new[] { "still here" }));
            Assert.That(crafted.Session.UnknownEnvelopesDropped, Is.EqualTo(1));
            Assert.That(crafted.Responder.Sessions.Select(s => s.Id), Is.EqualTo(new[] { other.Id }));
        });
    }

    private static Task<SendResult> SendAsync(ManualSeeker seeker, byte[] envelope) =>
        seeker.Hub.InvokeAsync<SendResult>(SeekerHubMethods.Send, envelope).WaitAsync(Timeout);

    private static byte[] Padded(byte type)
    {
        var padded = new byte[256];
        padded[0] = type;
        return padded;
    }
}
