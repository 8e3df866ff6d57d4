using TrustLine.Client;
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

public sealed class ResponderSessionsTests
{
    [Test]
    public async Task OneResponderHoldsSeveralSessionsAtOnceAndKeepsThemApart()
    {
        await using var world = await World.StartAsync(StoreUnderTest.Redis);
        var first = world.Seeker();
        var second = world.Seeker();
        var firstInbox = new Inbox<string>();
        var secondInbox = new Inbox<string>();
        first.MessageReceived += firstInbox.Add;
        second.MessageReceived += secondInbox.Add;
        await first.OpenAsync("nl").WaitAsync(TimeSpan.FromSeconds(10));
        await second.OpenAsync("en").WaitAsync(TimeSpan.FromSeconds(10));
        var responder = await world.ResponderAsync();

        var a = (await responder.TakeNextAsync())!;
        var b = (await responder.TakeNextAsync())!;
        var aInbox = new Inbox<string>();
        var bInbox = new Inbox<string>();
        a.MessageReceived += aInbox.Add;
        b.MessageReceived += bInbox.Add;
        await Eventually.TrueAsync(() => Task.FromResult(first.State == SeekerState.Connected && second.State == SeekerState.Connected),
            TimeSpan.FromSeconds(10), "both seekers are connected");
        await first.SendTextAsync("voor A");
        await second.SendTextAsync("for B");
        await a.SendTextAsync("van A");
        await b.SendTextAsync("from B");

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(responder.Sessions, Has.Count.EqualTo(2));
            Assert.That(await aInbox.WaitForAsync(1, "A's text"), Is.EqualTo(new[] { "voor A" }));
            Assert.That(await bInbox.WaitForAsync(1, "B's text"), Is.EqualTo(new[] { "for B" }));
            Assert.That(await firstInbox.WaitForAsync(1, "reply to the first seeker"), Is.EqualTo(new[] { "van A" }));
            Assert.That(await secondInbox.WaitForAsync(1, "reply to the second seeker"), Is.EqualTo(new[] { "from B" }));
        });

        await a.CloseAsync();
        await b.SendTextAsync("B gaat door");
        Assert.That(await secondInbox.WaitForAsync(2, "B after A closed"), Has.Member("B gaat door"));
        Assert.That(responder.Sessions, Has.Count.EqualTo(1));
    }

    [Test]
    public async Task ReturningSeekerIsRecognisedThroughTheRelayWithoutTheServerKnowing()
    {
        await using var world = await World.StartAsync(StoreUnderTest.Redis);
        using var pseudonym = TrustLine.Protocol.Crypto.Pseudonym.Create();
        var seeker = world.Seeker(pseudonym: pseudonym);
        await seeker.OpenAsync("nl").WaitAsync(TimeSpan.FromSeconds(10));
        var responder = await world.ResponderAsync();
        var session = (await responder.TakeNextAsync())!;
        var seen = await session.WhenEstablished.WaitAsync(TimeSpan.FromSeconds(10));

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(seen.IsReturning, Is.True);
            Assert.That(seen.PseudonymPublicKey, Is.EqualTo(pseudonym.PublicKey));
            var stored = await RedisInspection.KeysAsync(world.Prefix);
            var db = TestRedis.Connection.GetDatabase();
            foreach (var (key, _) in stored)
            {
                var type = await db.KeyTypeAsync(key);
                var dump = type == StackExchange.Redis.RedisType.Hash
                    ? string.Concat((await db.HashGetAllAsync(key)).Select(e => Convert.ToHexString((byte[])e.Value!)))
                    : type == StackExchange.Redis.RedisType.String ? Convert.ToHexString((byte[])(await db.StringGetAsync(key))!) : "";
                Assert.That(dump, Does.Not.Contain(Convert.ToHexString(pseudonym.PublicKey)), $"{key} holds the pseudonym");
            }
        });
    }
}
