using TrustLine.Client;
using TrustLine.Server.Tests.Infrastructure;
using TrustLine.Server.Tests.Transfers;

namespace TrustLine.Server.Tests.Web;

/// <summary>The console's transfer action, in a real Chromium through a real server, with a .NET SDK seeker.</summary>
public sealed partial class ConsolePageTests
{
    [Test]
    public async Task TheCounsellorProposesATransferToAPartnerAndSeesThePersonAcceptIt()
    {
        await using var scene = await Scene.StartAsync(StoreUnderTest.Embedded, extra: ConsoleOn());
        var world = scene.World;
        var (key, cert, _) = await CounsellorFilesAsync(world);
        await using var browser = NodeScript.Start(Driver, null, "--url", world.Nodes[0].BaseAddress.ToString(), "--shots", Screenshots);
        await browser.WaitForAsync("launched", 60);
        await browser.SendAsync(new { cmd = "open" });
        await browser.WaitForAsync("ready", 30);
        await browser.SendAsync(new { cmd = "sign-in", key, cert, passphrase = Passphrase });
        await browser.WaitForAsync("signed-in", 40);

        var seeker = scene.Seeker();
        var proposals = new Inbox<TransferOffer>();
        seeker.TransferProposed += proposals.Add;
        await seeker.OpenAsync("nl").WaitAsync(TimeSpan.FromSeconds(15));
        await browser.SendAsync(new { cmd = "queue", count = 1 });
        await browser.WaitForAsync("queue");
        await browser.SendAsync(new { cmd = "take-next" });
        await browser.WaitForAsync("taken");
        await browser.SendAsync(new { cmd = "established" });
        await browser.WaitForAsync("established");

        await browser.SendAsync(new { cmd = "transfer", org = Convert.ToHexStringLower(scene.Partner.OrgId) });
        var proposed = await browser.WaitForAsync("transfer");
        var offer = (await proposals.WaitForAsync(1, "the proposal at the seeker"))[0];
        await seeker.AcceptTransferAsync().WaitAsync(TimeSpan.FromSeconds(10));
        await browser.SendAsync(new { cmd = "ended" });
        var ended = await browser.WaitForAsync("ended");
        await browser.SendAsync(new { cmd = "notes", count = 2 });
        var notes = await browser.WaitForAsync("notes");

        Assert.Multiple(() =>
        {
            Assert.That(Strings(proposed, "options"), Is.EqualTo(new[] { "A colleague (Test organisation)", "Partner organisation" }));
            Assert.That(Strings(proposed, "notes").Last(), Does.StartWith("Transfer to Partner organisation proposed"));
            Assert.That(offer.Target.Name, Is.EqualTo("Partner"), "the seeker's app names it from its own pins");
            Assert.That(ended.GetProperty("reason").GetString(), Does.Contain("accepted the transfer"));
            Assert.That(Strings(notes, "notes").Last(), Is.EqualTo("The person accepted the transfer."));
        });
    }
}
