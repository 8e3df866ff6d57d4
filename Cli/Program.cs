using System.CommandLine;
using TrustLine.Cli;
using TrustLine.Cli.Commands;

var root = new RootCommand("trustline: organisation keys, a seeker chat, a responder console and a demo for TrustLine.")
{
    OrgCommands.Create(),
    ResponderCommands.Create(),
    SeekCommand.Create(),
    RespondCommand.Create(),
    DemoCommand.Create(),
};

return await Shell.RunAsync(root, args);
