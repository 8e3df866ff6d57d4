using TrustLine.Server.Tests.Infrastructure;

namespace TrustLine.Server.Tests.Cli;

/// <summary>The console's offers as real processes against a Development server whose demo organisation makes offers.</summary>
[NonParallelizable]
public sealed class OfferCommandTests
{
    private const string DemoOrg = "11111111111111111111111111111111";

    [Test]
    public async Task RespondShowsCapacityAndAnOfferAndAcceptsIt()
    {
        await using var node = await TrustLineNode.StartAsync(NodeSettings.Embedded() with
        {
            Environment = "Development",
            Settings = new Dictionary<string, string?> { ["Organisations:demo:Offers"] = "true", ["Organisations:demo:Capacity"] = "3" },
        });
        await using var respond = CliProcess.Start("respond", "--server", node.BaseAddress.ToString(), "--demo");
        await respond.WaitForOutputAsync("Away: no offers (you may still /take). 0 open chats of at most 3.");
        await respond.WaitForOutputAsync("Nobody is waiting.");
        await respond.WriteLineAsync("/available");
        await respond.WaitForOutputAsync("Available: waiting seekers are offered to you. 0 open chats of at most 3.");

        await using var seek = CliProcess.Start("seek", "--server", node.BaseAddress.ToString(), "--org", DemoOrg);
        await respond.WaitForOutputAsync("[offer] nl");
        await respond.WriteLineAsync("/accept");
        await seek.WaitForOutputAsync("[connected]");
        await respond.WriteLineAsync("/status");
        await respond.WaitForOutputAsync("Available: waiting seekers are offered to you. 1 open chat of at most 3.");
        await respond.WriteLineAsync("/away");
        await respond.WaitForOutputAsync("Away: no offers");
        await respond.WriteLineAsync("/decline");
        await respond.WaitForOutputAsync("No offer is waiting for an answer.");

        await respond.WriteLineAsync("/quit");
        Assert.That(await respond.WaitForExitAsync(), Is.Zero, respond.Errors);
    }
}
