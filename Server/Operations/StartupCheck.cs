using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;

namespace TrustLine.Server.Operations;

/// <summary>
/// Checks every setting before the node starts. A bad one ends the process with one sentence per setting on
/// standard error and exit code 2: no stack trace, no abort.
/// </summary>
public static partial class StartupCheck
{
    public const int BadSettingExitCode = 2;

    /// <summary>
    /// True when every validated setting holds; otherwise says which do not. Only when the server is its own
    /// process: hosted inside another (the tests' WebApplicationFactory), the host's start reports them instead.
    /// </summary>
    public static bool SettingsAreValid(this WebApplication app)
    {
        if (System.Reflection.Assembly.GetEntryAssembly() != typeof(StartupCheck).Assembly)
        {
            return true;
        }

        try
        {
            app.Services.GetService<IStartupValidator>()?.Validate();
            return true;
        }
        catch (OptionsValidationException e)
        {
            Report([e]);
        }
        catch (AggregateException e) when (e.InnerExceptions.All(i => i is OptionsValidationException))
        {
            Report(e.InnerExceptions.Cast<OptionsValidationException>());
        }

        return false;
    }

    private static void Report(IEnumerable<OptionsValidationException> errors)
    {
        foreach (var failure in errors.SelectMany(e => e.Failures))
        {
            // DataAnnotations wrap our sentence: "... members: 'X' with the error: 'sentence'."
            var match = WrappedSentence().Match(failure);
            Console.Error.WriteLine($"trustline-server: bad setting: {(match.Success ? match.Groups[1].Value : failure)}");
        }
    }

    [GeneratedRegex("with the error: '(.*)'\\.?$")]
    private static partial Regex WrappedSentence();
}
