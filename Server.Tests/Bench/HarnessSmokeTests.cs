using System.Diagnostics;

namespace TrustLine.Server.Tests.Bench;

/// <summary>The load harness still runs end to end. Speed is never asserted here: figures live in BENCHMARKS.md.</summary>
public sealed class HarnessSmokeTests
{
    [Test]
    public async Task RelayHarnessRunsEveryTargetInSmokeMode()
    {
        var (exitCode, text, errors) = await RunHarnessAsync("--smoke");

        Assert.Multiple(() =>
        {
            Assert.That(exitCode, Is.Zero, errors);
            foreach (var target in new[] { "B0 raw WebSocket relay", "B1 SignalR hub", "B2 SignalR + Redis, 2 nodes", "TrustLine embedded", "TrustLine Redis", "TrustLine Redis, 2 nodes" })
            {
                Assert.That(text, Does.Contain($"| {target}"), target);
            }

            Assert.That(text, Does.Contain("throughput TrustLine/B1:"));
            Assert.That(text, Does.Contain("CPU per envelope TrustLine/B1:"));
            Assert.That(text, Does.Contain("throughput two-node/one-node:"));
            Assert.That(text, Does.Contain("session opens"));
            Assert.That(text, Does.Contain("idle handshaked connections (no call)"));
            Assert.That(text, Does.Contain("memory per idle waiting seeker TrustLine/B1:"));
            Assert.That(text, Does.Contain("memory per idle handshaked connection TrustLine Redis:"));
        });
    }

    [Test]
    public async Task AbuseWorkloadRunsEveryRequestInSmokeMode()
    {
        var (exitCode, text, errors) = await RunHarnessAsync("--abuse", "--smoke");

        Assert.Multiple(() =>
        {
            Assert.That(exitCode, Is.Zero, errors);
            Assert.That(text, Does.Contain("parallel sign-ins of 1 MiB | 413"), "a body over the limit is refused");
            Assert.That(text, Does.Contain("| 0 keys more |"), "challenges store nothing");
            foreach (var kind in new[] { "WebSocket upgrades that never send the SignalR handshake", "handshaked seeker connections that never call", "frames announcing 10 MiB" })
            {
                Assert.That(text, Does.Match($@"\| 20 {System.Text.RegularExpressions.Regex.Escape(kind)}[^\n]*20 of 20 closed"), kind);
            }
        });
    }

    [Test]
    public async Task FloodWorkloadRunsEveryPhaseInSmokeMode()
    {
        var (exitCode, text, errors) = await RunHarnessAsync("--flood", "--smoke");

        Assert.Multiple(() =>
        {
            Assert.That(exitCode, Is.Zero, errors);
            foreach (var phase in new[] { "calm", "flood, puzzles not solved", "flood, puzzles solved" })
            {
                Assert.That(text, Does.Contain($"| {phase} |"), phase);
            }

            Assert.That(text, Does.Contain("puzzle_required"), "the flood met the puzzle");
            Assert.That(text, Does.Contain("open p99 without the puzzle time / calm p99:"));
        });
    }

    /// <summary>The harness beside the tests as a process of its own, bounded to three minutes.</summary>
    private static async Task<(int ExitCode, string Output, string Errors)> RunHarnessAsync(params string[] args)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Relay.Bench.dll"));
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(3));
        return (process.ExitCode, await output, await errors);
    }
}
