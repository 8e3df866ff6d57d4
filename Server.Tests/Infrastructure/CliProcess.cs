using System.Diagnostics;
using System.Text;

namespace TrustLine.Server.Tests.Infrastructure;

/// <summary>The <c>trustline</c> command as a real process, driven through standard input.</summary>
public sealed class CliProcess : IAsyncDisposable
{
    private readonly Process process;
    private readonly StringBuilder output = new();
    private readonly StringBuilder errors = new();
    private readonly SemaphoreSlim changed = new(0);

    private CliProcess(Process process)
    {
        this.process = process;
        process.OutputDataReceived += (_, e) => Append(output, e.Data);
        process.ErrorDataReceived += (_, e) => Append(errors, e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public string Output
    {
        get
        {
            lock (output)
            {
                return output.ToString();
            }
        }
    }

    public string Errors
    {
        get
        {
            lock (errors)
            {
                return errors.ToString();
            }
        }
    }

    public static CliProcess Start(params string[] args)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "trustline.dll"));
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        return new CliProcess(Process.Start(start) ?? throw new InvalidOperationException("trustline did not start."));
    }

    /// <summary>Runs a command to its end with the given input lines; returns the exit code.</summary>
    public static async Task<(int ExitCode, string Output, string Errors)> RunAsync(string[] input, params string[] args)
    {
        await using var cli = Start(args);
        foreach (var line in input)
        {
            await cli.WriteLineAsync(line);
        }

        cli.process.StandardInput.Close();
        var code = await cli.WaitForExitAsync();
        return (code, cli.Output, cli.Errors);
    }

    public async Task WriteLineAsync(string line)
    {
        await process.StandardInput.WriteLineAsync(line);
        await process.StandardInput.FlushAsync();
    }

    public async Task WaitForOutputAsync(string text, double seconds = 20)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));
        try
        {
            while (!Output.Contains(text, StringComparison.Ordinal))
            {
                await changed.WaitAsync(deadline.Token);
            }
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"trustline did not print '{text}' within {seconds} s.\nOutput:\n{Output}\nErrors:\n{Errors}");
        }
    }

    public async Task<int> WaitForExitAsync(double seconds = 60)
    {
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(seconds));
        process.WaitForExit(); // flushes the asynchronous readers
        return process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }

        process.Dispose();
    }

    private void Append(StringBuilder target, string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (target)
        {
            target.AppendLine(line);
        }

        changed.Release();
    }
}
