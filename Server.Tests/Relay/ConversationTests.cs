using TrustLine.Protocol.Client;
using TrustLine.Server.Tests.Infrastructure;

namespace TrustLine.Server.Tests.Relay;

public sealed class ConversationTests
{
    [TestCase(StoreUnderTest.Redis)]
    [TestCase(StoreUnderTest.Embedded)]
    public async Task FullConversationFlowsBothWaysEndToEnd(StoreUnderTest store)
    {
        await using var world = await World.StartAsync(store);
        var seeker = world.Seeker();
        var seekerInbox = new Inbox<string>();
        seeker.MessageReceived += seekerInbox.Add;
        var states = new Inbox<SeekerState>();
        seeker.StateChanged += states.Add;

        var queued = await seeker.OpenAsync("nl", "health", urgent: false).WaitAsync(TimeSpan.FromSeconds(15));
        Assert.That(queued.Position, Is.EqualTo(1));

        var responder = await world.ResponderAsync();
        var session = await responder.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(15));
        Assert.That(session, Is.Not.Null);
        var responderInbox = new Inbox<string>();
        session!.MessageReceived += responderInbox.Add;
        await states.WaitForAsync(2, "seeker states (waiting, connected)");

        await seeker.SendTextAsync("Hoi, ik heb een vraag.");
        await seeker.SendTextAsync("Is dit anoniem?");
        await responderInbox.WaitForAsync(2, "texts at the responder");
        await session.SendTextAsync("Ja. Vertel maar.");
        await seekerInbox.WaitForAsync(1, "texts at the seeker");

        Assert.Multiple(() =>
        {
            Assert.That(responderInbox.Items, Is.EqualTo(new[] { "Hoi, ik heb een vraag.", "Is dit anoniem?" }));
            Assert.That(seekerInbox.Items, Is.EqualTo(new[] { "Ja. Vertel maar." }));
            Assert.That(seeker.State, Is.EqualTo(SeekerState.Connected));
            Assert.That(session.Hello!.IsReturning, Is.False);
        });
    }
}
