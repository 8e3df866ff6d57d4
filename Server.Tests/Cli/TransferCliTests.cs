using TrustLine.Server.Tests.Infrastructure;

namespace TrustLine.Server.Tests.Cli;

/// <summary>Transfer in the chat commands, as real processes against a Development server with the demo organisation.</summary>
[NonParallelizable]
public sealed class TransferCliTests
{
    private const string DemoOrg = "11111111111111111111111111111111";

    [Test]
    public async Task RespondTransfersToAColleagueAndSeekAsksFirstThenTalksToTheNextCounsellor()
    {
        await using var node = await TrustLineNode.StartAsync(NodeSettings.Embedded() with { Environment = "Development" });
        await using var respond = CliProcess.Start("respond", "--server", node.BaseAddress.ToString(), "--demo");
        await respond.WaitForOutputAsync("Nobody is waiting.");
        await using var seek = CliProcess.Start("seek", "--server", node.BaseAddress.ToString(), "--org", DemoOrg);
        await seek.WaitForOutputAsync("[waiting]");
        await respond.WriteLineAsync("/take");
        await seek.WaitForOutputAsync("[connected]");

        await respond.WriteLineAsync("/transfer " + "nonsense");
        await respond.WaitForOutputAsync("Give /transfer colleague");
        await respond.WriteLineAsync("/transfer 0123456789abcdef0123456789abcdef");
        await respond.WaitForOutputAsync("(not_a_partner)");
        await respond.WriteLineAsync("/transfer colleague");
        await respond.WaitForOutputAsync("[session 1] transfer proposed to a colleague");
        await seek.WaitForOutputAsync("[transfer] Your counsellor proposes to hand this chat to a colleague at");
        await seek.WriteLineAsync("y");

        await seek.WaitForOutputAsync("[transferred]");
        await respond.WaitForOutputAsync("[session 1] the seeker accepted the transfer.");
        await respond.WaitForOutputAsync("[session 1] ended: the seeker accepted the transfer");
        await respond.WriteLineAsync("/take");
        await respond.WaitForOutputAsync("[session 2] connected");
        await respond.WriteLineAsync("welcome, I take over from here");
        await seek.WaitForOutputAsync("counsellor: welcome, I take over from here");
        await seek.WriteLineAsync("/quit");

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(await seek.WaitForExitAsync(), Is.Zero, seek.Errors);
            Assert.That(respond.Errors, Is.Empty);
        });
    }
}
