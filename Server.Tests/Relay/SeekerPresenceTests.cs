using Microsoft.AspNetCore.SignalR.Client;
using TrustLine.Protocol.Contracts;
using TrustLine.Server.Tests.Infrastructure;

namespace TrustLine.Server.Tests.Relay;

/// <summary>The counsellor sees a seeker's reconnecting state as such: away when its connection drops, back when it resumes.</summary>
[TestFixture(StoreUnderTest.Redis)]
[TestFixture(StoreUnderTest.Embedded)]
public sealed class SeekerPresenceTests(StoreUnderTest store)
{
    [Test]
    public async Task TheCounsellorIsToldWhenTheSeekersConnectionDropsAndWhenItIsBack()
    {
        await using var world = await World.StartAsync(store);
        await using var seeker = await ManualSeeker.ConnectAsync(world);
        var changes = new Inbox<bool>();
        seeker.Session.SeekerConnectionChanged += changes.Add;

        await seeker.Hub.StopAsync().WaitAsync(TimeSpan.FromSeconds(10));
        await changes.WaitForAsync(1, "the seeker is away");
        Assert.That(seeker.Session.SeekerConnected, Is.False);

        await using var back = await RawHub.SeekerAsync(world.Nodes[0]);
        await back.InvokeAsync<ResumeSessionResult>(SeekerHubMethods.ResumeSession, new ResumeSessionRequest
        {
            SessionId = seeker.SessionId.ToByteArray(bigEndian: true),
            ResumeToken = seeker.ResumeToken,
        }).WaitAsync(TimeSpan.FromSeconds(10));

        Assert.That(await changes.WaitForAsync(2, "the seeker is back"), Is.EqualTo(new[] { false, true }));
        Assert.That(seeker.Session.SeekerConnected, Is.True);
    }
}
