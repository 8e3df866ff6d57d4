using TrustLine.Protocol.Crypto;
using TrustLine.Server.Tests.Infrastructure;

namespace TrustLine.Server.Tests.Web;

/// <summary>A transfer as the seeker page shows it, in a real Chromium through a real server.</summary>
public sealed class SeekerPageTransferTests
{
    private const string Driver = "tests/seeker-page.mjs";

    private static string Screenshots => Path.Combine(Path.GetDirectoryName(NodeScript.WebDirectory)!, "artifacts", "web");

    [Test]
    public async Task ThePageAsksWithTheVerifiedNameThenWaitsAfreshAndTalksToTheColleague()
    {
        await using var world = await World.StartAsync(StoreUnderTest.Embedded, extra: new Dictionary<string, string?>
        {
            ["Web:Seeker"] = "true",
            ["Web:QuickExitUrl"] = "https://neutral.example/",
        });
        await using var browser = NodeScript.Start(Driver, null, "--url", world.Nodes[0].BaseAddress.ToString(), "--shots", Screenshots);
        await browser.WaitForAsync("launched", 60);
        await browser.SendAsync(new { cmd = "open" });
        await browser.WaitForAsync("ready", 30);
        await browser.SendAsync(new { cmd = "start", language = "nl", topic = "", urgent = false });
        await browser.WaitForAsync("waiting");

        var first = await world.ResponderAsync();
        var session = (await first.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(15)))!;
        await session.WhenEstablished.WaitAsync(TimeSpan.FromSeconds(15));
        await browser.SendAsync(new { cmd = "await-connected" });
        await browser.WaitForAsync("connected");
        await session.SendTextAsync("Ik geef je door aan een collega.").WaitAsync(TimeSpan.FromSeconds(10));
        await browser.SendAsync(new { cmd = "expect", count = 1 });
        await browser.WaitForAsync("received");
        var outcomes = new Inbox<string>();
        session.TransferOutcome += outcomes.Add;

        await session.TransferAsync(world.Org.OrgId).WaitAsync(TimeSpan.FromSeconds(10));
        await browser.SendAsync(new { cmd = "await-transfer" });
        var proposal = await browser.WaitForAsync("transfer");
        await browser.SendAsync(new { cmd = "accept-transfer" });
        var transferred = await browser.WaitForAsync("transferred");
        await outcomes.WaitForAsync(1, "the outcome");

        using var credentials = world.Org.AnotherResponder();
        var colleague = await world.ResponderAsync(credentials: credentials);
        var next = (await colleague.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(15)))!;
        await next.WhenEstablished.WaitAsync(TimeSpan.FromSeconds(15));
        await browser.SendAsync(new { cmd = "await-connected" });
        var connected = await browser.WaitForAsync("connected");
        await browser.SendAsync(new { cmd = "audit" });
        var audit = await browser.WaitForAsync("audit");

        Assert.Multiple(() =>
        {
            Assert.That(proposal.GetProperty("text").GetString(), Does.Contain("collega bij Test organisation"));
            Assert.That(transferred.GetProperty("note").GetString(), Does.Contain("Test organisation"));
            Assert.That(outcomes.Items, Is.EqualTo(new[] { Protocol.Contracts.TransferOutcomes.Accepted }));
            Assert.That(connected.GetProperty("fingerprint").GetString(), Is.EqualTo(Certificate.Fingerprint(credentials.Responder.SubjectPublicKey)), "the colleague, verified");
            Assert.That(audit.GetProperty("violations").GetArrayLength(), Is.Zero);
            Assert.That(audit.GetProperty("storage").GetArrayLength(), Is.Zero);
            Assert.That(audit.GetProperty("pageErrors").GetArrayLength(), Is.Zero);
        });
    }
}
