using System.Diagnostics;

namespace TrustLine.Server.Tests.Bench;

/// <summary>The load harness still runs end to end. Speed is never asserted here: figures live in BENCHMARKS.md.</summary>
public sealed class HarnessSmokeTests
{
    [Test]
    public async Task RelayHarnessRunsEveryTargetInSmokeMode()
    {
        var start = new ProcessStartInfo("dotnet")
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Relay.Bench.dll"));
        start.ArgumentList.Add("--smoke");
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(3));

        var text = await output;
        await Assert.MultipleAsync(async () =>
        {
            Assert.That(process.ExitCode, Is.Zero, await errors);
            foreach (var target in new[] { "B0 raw WebSocket relay", "B1 SignalR hub", "B2 SignalR + Redis, 2 nodes", "TrustLine embedded", "TrustLine Redis", "TrustLine Redis, 2 nodes" })
            {
                Assert.That(text, Does.Contain($"| {target}"), target);
            }

            Assert.That(text, Does.Contain("throughput TrustLine/B1:"));
            Assert.That(text, Does.Contain("CPU per envelope TrustLine/B1:"));
            Assert.That(text, Does.Contain("throughput two-node/one-node:"));
            Assert.That(text, Does.Contain("session opens"));
        });
    }

    [Test]
    public async Task FloodWorkloadRunsEveryPhaseInSmokeMode()
    {
        var start = new ProcessStartInfo("dotnet")
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Relay.Bench.dll"));
        start.ArgumentList.Add("--flood");
        start.ArgumentList.Add("--smoke");
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(3));

        var text = await output;
        await Assert.MultipleAsync(async () =>
        {
            Assert.That(process.ExitCode, Is.Zero, await errors);
            foreach (var phase in new[] { "calm", "flood, puzzles not solved", "flood, puzzles solved" })
            {
                Assert.That(text, Does.Contain($"| {phase} |"), phase);
            }

            Assert.That(text, Does.Contain("puzzle_required"), "the flood met the puzzle");
            Assert.That(text, Does.Contain("open p99 without the puzzle time / calm p99:"));
        });
    }
}
