using TrustLine.Server.Tests.Infrastructure;

namespace TrustLine.Server.Tests.Cli;

/// <summary>
/// The chat commands as real processes against a Development server with the demo organisation: what a peer
/// or the user does to end or overload a chat ends that one chat cleanly, never the whole console.
/// </summary>
[NonParallelizable]
public sealed class ChatEndingTests
{
    private const string DemoOrg = "11111111111111111111111111111111";

    [Test]
    public async Task SeekersCloseEndsOnlyThatChatAndTheConsoleAnswersTheOthers()
    {
        await using var node = await TrustLineNode.StartAsync(NodeSettings.Embedded() with { Environment = "Development" });
        await using var respond = CliProcess.Start("respond", "--server", node.BaseAddress.ToString(), "--demo");
        await respond.WaitForOutputAsync("Nobody is waiting.");
        await using var first = await SeekerAsync(node);
        await respond.WriteLineAsync("/take");
        await first.WaitForOutputAsync("[connected]");
        await using var second = await SeekerAsync(node);
        await respond.WriteLineAsync("/take");
        await second.WaitForOutputAsync("[connected]");

        await first.WriteLineAsync("/quit");
        await respond.WaitForOutputAsync("[session 1] ended: the seeker ended the chat.");
        await respond.WriteLineAsync("still here for you");
        await second.WaitForOutputAsync("counsellor: still here for you");
        await second.WriteLineAsync("thank you");
        await respond.WaitForOutputAsync("[session 2] seeker: thank you");

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(await first.WaitForExitAsync(), Is.Zero, first.Errors);
            Assert.That(respond.Errors, Is.Empty);
        });
    }

    [Test]
    public async Task QuittingWithOpenChatsWarnsAndEndsThemSoSeekersAreTold()
    {
        await using var node = await TrustLineNode.StartAsync(NodeSettings.Embedded() with { Environment = "Development" });
        await using var respond = CliProcess.Start("respond", "--server", node.BaseAddress.ToString(), "--demo");
        await respond.WaitForOutputAsync("Nobody is waiting.");
        await using var seek = await SeekerAsync(node);
        await respond.WriteLineAsync("/take");
        await seek.WaitForOutputAsync("[connected]");

        await respond.WriteLineAsync("/quit");

        await respond.WaitForOutputAsync("You have 1 open chat; ending it so the seeker is told.");
        await seek.WaitForOutputAsync("[ended] The counsellor ended the chat.");
        await Assert.MultipleAsync(async () =>
        {
            Assert.That(await respond.WaitForExitAsync(), Is.Zero, respond.Errors);
            Assert.That(await seek.WaitForExitAsync(), Is.Zero, seek.Errors);
        });
    }

    [Test]
    public async Task LineTooLongForOneMessageIsRefusedWithOneSentenceAndTheChatGoesOn()
    {
        await using var node = await TrustLineNode.StartAsync(NodeSettings.Embedded() with { Environment = "Development" });
        await using var respond = CliProcess.Start("respond", "--server", node.BaseAddress.ToString(), "--demo");
        await respond.WaitForOutputAsync("Nobody is waiting.");
        await using var seek = await SeekerAsync(node);
        await respond.WriteLineAsync("/take");
        await seek.WaitForOutputAsync("[connected]");

        await seek.WriteLineAsync(new string('x', 16382));
        await seek.WaitForOutputAsync("That message is too long to send (16382 bytes; at most 16381)");
        await seek.WriteLineAsync(new string('y', 16381));
        await respond.WaitForOutputAsync("[session 1] seeker:");
        Assert.That(respond.Output, Does.Contain(new string('y', 200)), "the longest message that fits arrives");
        await respond.WriteLineAsync(new string('z', 16382));
        await respond.WaitForOutputAsync("That message is too long to send (16382 bytes; at most 16381)");
        await seek.WriteLineAsync("/quit");

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(await seek.WaitForExitAsync(), Is.Zero, seek.Errors);
            Assert.That(seek.Errors, Is.Empty);
        });
    }

    [Test]
    public async Task UnknownCommandIsNamedBeforeTheCommandsAreListed()
    {
        await using var node = await TrustLineNode.StartAsync(NodeSettings.Embedded() with { Environment = "Development" });
        await using var respond = CliProcess.Start("respond", "--server", node.BaseAddress.ToString(), "--demo");
        await respond.WaitForOutputAsync("Nobody is waiting.");

        await respond.WriteLineAsync("/tkae");

        await respond.WaitForOutputAsync("Unknown command /tkae. Commands: /queue");
        await respond.WriteLineAsync("/quit");
        Assert.That(await respond.WaitForExitAsync(), Is.Zero, respond.Errors);
    }

    private static async Task<CliProcess> SeekerAsync(TrustLineNode node)
    {
        var seek = CliProcess.Start("seek", "--server", node.BaseAddress.ToString(), "--org", DemoOrg);
        await seek.WaitForOutputAsync("[waiting]");
        return seek;
    }
}
