using System.Reflection;

// The `trustline` command. Its subcommands (organisation keys, seeker chat, responder console, demo)
// arrive with the command-line issue; until then it answers --version and --help only.
var version = Assembly.GetExecutingAssembly().GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";

switch (args)
{
    case ["--version"]:
        Console.WriteLine($"trustline {version}");
        return 0;
    case [] or ["--help"] or ["-h"]:
        Console.WriteLine("trustline: the TrustLine command line.");
        Console.WriteLine("Usage: trustline --version | --help");
        return 0;
    default:
        Console.Error.WriteLine($"trustline: unknown command '{string.Join(' ', args)}'. Run 'trustline --help' for the commands.");
        return 2;
}
