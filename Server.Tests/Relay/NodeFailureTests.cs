using TrustLine.Client;
using TrustLine.Server.Tests.Crypto;
using TrustLine.Server.Tests.Infrastructure;

namespace TrustLine.Server.Tests.Relay;

public sealed class NodeFailureTests
{
    [Test]
    public async Task KilledNodeMidConversationBothSidesResumeOnTheSurvivorWithNothingLost()
    {
        using var org = new TestOrganisation(orgId: System.Security.Cryptography.RandomNumberGenerator.GetBytes(16),
            issuerNotBefore: World.Now - 3600, issuerNotAfter: World.Now + (80 * 86400),
            responderNotBefore: World.Now - 3600, responderNotAfter: World.Now + (10 * 86400), fresh: true);
        var settings = World.OrganisationSettings(org);
        settings["Redis:Configuration"] = TestRedis.Server.Configuration;
        settings["Redis:KeyPrefix"] = TestRedis.NewPrefix();
        await using var doomed = await ServerProcess.StartAsync(settings);
        await using var survivor = await ServerProcess.StartAsync(settings);
        var options = new ClientOptions
        {
            FallbackServers = [survivor.BaseAddress],
            ReconnectDelays = [TimeSpan.Zero, TimeSpan.FromMilliseconds(200), TimeSpan.FromMilliseconds(500), TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2)],
        };

        await using var seeker = new SeekerClient(doomed.BaseAddress, org.Pin, options: options);
        var seekerInbox = new Inbox<string>();
        seeker.MessageReceived += seekerInbox.Add;
        var seekerStates = new Inbox<SeekerState>();
        seeker.StateChanged += seekerStates.Add;
        await seeker.OpenAsync("nl").WaitAsync(TimeSpan.FromSeconds(15));
        using var credentials = org.Credentials();
        await using var responder = await ResponderClient.SignInAsync(doomed.BaseAddress, credentials, options).WaitAsync(TimeSpan.FromSeconds(15));
        var responderStatus = new Inbox<ConnectionStatus>();
        responder.StatusChanged += responderStatus.Add;
        var session = (await responder.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(15)))!;
        var responderInbox = new Inbox<string>();
        session.MessageReceived += responderInbox.Add;
        await seekerStates.WaitForAsync(2, "the seeker connected");
        await seeker.SendTextAsync("voor de crash");
        await session.SendTextAsync("ook voor de crash");
        await responderInbox.WaitForAsync(1, "text before the crash");
        await seekerInbox.WaitForAsync(1, "text before the crash");

        await doomed.KillAsync();
        await seeker.SendTextAsync("tijdens de storing");
        await session.SendTextAsync("ook tijdens de storing");
        await responderStatus.WaitForAsync(2, "the responder reconnecting and connected again", seconds: 20);
        await Eventually.TrueAsync(() => Task.FromResult(seeker.State == SeekerState.Connected && seekerStates.Items.Contains(SeekerState.Reconnecting)),
            TimeSpan.FromSeconds(20), "the seeker is connected again");
        await seeker.SendTextAsync("na de storing");

        Assert.That(await responderInbox.WaitForAsync(3, "texts at the responder", seconds: 20),
            Is.EqualTo(new[] { "voor de crash", "tijdens de storing", "na de storing" }));
        Assert.That(await seekerInbox.WaitForAsync(2, "texts at the seeker", seconds: 20),
            Is.EqualTo(new[] { "ook voor de crash", "ook tijdens de storing" }));
    }
}
