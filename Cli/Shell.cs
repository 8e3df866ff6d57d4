using System.CommandLine;
using Spectre.Console;
using TrustLine.Client;
using TrustLine.Protocol.Crypto;

namespace TrustLine.Cli;

/// <summary>A failure the user can act on: one sentence, a non-zero exit code, never a stack trace.</summary>
internal sealed class CliException(string message, int exitCode = ExitCodes.BadInput) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}

internal static class ExitCodes
{
    public const int Ok = 0;
    public const int BadInput = 2;
    public const int Unreachable = 3;
    public const int Refused = 4;
    public const int Unexpected = 70;
}

/// <summary>Runs a command, turns every expected failure into one sentence, and owns the terminal.</summary>
internal static class Shell
{
    public static IAnsiConsole Out { get; } = CreateConsole();

    private static IAnsiConsole CreateConsole()
    {
        // Scripts and tests read plain, unwrapped lines; people at a terminal get colour.
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = Console.IsOutputRedirected ? AnsiSupport.No : AnsiSupport.Detect,
            ColorSystem = Console.IsOutputRedirected ? ColorSystemSupport.NoColors : ColorSystemSupport.Detect,
            Interactive = Console.IsInputRedirected ? InteractionSupport.No : InteractionSupport.Detect,
        });
        if (Console.IsOutputRedirected)
        {
            console.Profile.Width = 240;
        }

        return console;
    }

    public static async Task<int> RunAsync(RootCommand root, string[] args)
    {
        try
        {
            if (CryptoSelfTest.Run() is { } problem)
            {
                throw new CliException(problem, ExitCodes.Unexpected);
            }

            // Our own handler below turns failures into one sentence; the library's would print a stack trace.
            return await root.Parse(args).InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (CliException e)
        {
            Console.Error.WriteLine($"trustline: {e.Message}");
            return e.ExitCode;
        }
        catch (TrustLineException e)
        {
            Console.Error.WriteLine($"trustline: the server refused: {e.Message} ({e.Code})");
            return ExitCodes.Refused;
        }
        catch (HttpRequestException e)
        {
            Console.Error.WriteLine($"trustline: the server cannot be reached: {e.Message}");
            return ExitCodes.Unreachable;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"trustline: {e.Message}");
            return ExitCodes.BadInput;
        }
    }

    public static void Say(string text) => Out.MarkupLine(Markup.Escape(text));

    public static void Say(string style, string text) => Out.MarkupLine($"[{style}]{Markup.Escape(text)}[/]");

    /// <summary>Reads a passphrase: hidden at a terminal, one line from standard input in scripts.</summary>
    public static string Passphrase(string prompt, bool confirm = false)
    {
        string passphrase;
        if (Console.IsInputRedirected)
        {
            Console.Error.Write(prompt + ": ");
            passphrase = Console.In.ReadLine() ?? throw new CliException("No passphrase was given on standard input.");
            Console.Error.WriteLine();
        }
        else
        {
            passphrase = Out.Prompt(new TextPrompt<string>(prompt + ":").Secret());
            if (confirm && Out.Prompt(new TextPrompt<string>("Again, to confirm:").Secret()) != passphrase)
            {
                throw new CliException("The two passphrases differ.");
            }
        }

        if (passphrase.Length < 8)
        {
            throw new CliException("A passphrase has at least 8 characters.");
        }

        return passphrase;
    }

    public static Uri ServerUri(string text) =>
        Uri.TryCreate(text, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https"
            ? uri
            : throw new CliException($"'{text}' is not a server address; give one like http://127.0.0.1:5080.");
}
