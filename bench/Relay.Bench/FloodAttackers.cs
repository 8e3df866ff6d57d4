using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;

namespace TrustLine.Relay.Bench;

/// <summary>What the attackers did in one phase; the fields are updated with <see cref="Interlocked"/>.</summary>
internal sealed class Counters
{
    public long Attempts;
    public long Admitted;
    public long QueueFullAt = -1; // ms into the phase when an attacker first met a full queue
    public ConcurrentDictionary<string, long> Refusals { get; } = new();
}

/// <summary>
/// Where the attackers run. By default in a process of their own at the lowest CPU priority (nice 19): on this
/// two-core machine the attacking host shares the cores with the server and the real seekers, and at equal
/// priority the harness measured its own contention (attackers retrying refused connections in a tight loop)
/// rather than what the server does to real seekers under a flood. At nice 19 the attackers still get every
/// cycle the server and the real seekers leave idle, so the server still answers every call they make; the
/// attack rate is reported beside the figures. <c>--attackers-inprocess</c> keeps them in the harness's process.
/// </summary>
internal sealed class AttackerProcess : IAsyncDisposable
{
    private readonly Process? process;
    private readonly Task? inProcess;

    private AttackerProcess(Process? process, Task? inProcess)
    {
        this.process = process;
        this.inProcess = inProcess;
    }

    public static AttackerProcess InProcess(Task attack) => new(null, attack);

    public static Task<AttackerProcess> StartAsync(Uri baseAddress, byte[] template, byte[] orgId, Flood.Attack attack, int count)
    {
        var start = new ProcessStartInfo("nice")
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        foreach (var arg in new[]
                 {
                     "-n", "19", "dotnet", typeof(AttackerProcess).Assembly.Location, "--flood-attacker", baseAddress.ToString(),
                     Convert.ToHexString(template), Convert.ToHexString(orgId), attack.ToString(), count.ToString(CultureInfo.InvariantCulture),
                 })
        {
            start.ArgumentList.Add(arg);
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("The attacker process did not start.");
        return Task.FromResult(new AttackerProcess(process, null));
    }

    /// <summary>Stops the attackers and adds what they did to <paramref name="into"/>.</summary>
    public async Task StopAsync(Counters into)
    {
        if (inProcess is not null)
        {
            await inProcess.WaitAsync(TimeSpan.FromSeconds(60));
            return;
        }

        await process!.StandardInput.WriteLineAsync("stop");
        process.StandardInput.Close();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        while (await process.StandardOutput.ReadLineAsync(timeout.Token) is { } line)
        {
            var parts = line.Split(' ');
            var value = long.Parse(parts[^1], CultureInfo.InvariantCulture);
            switch (parts[0])
            {
                case "attempts": into.Attempts += value; break;
                case "admitted": into.Admitted += value; break;
                case "queuefull": into.QueueFullAt = value; break;
                case "refused": into.Refusals.AddOrUpdate(string.Join(' ', parts[1..^1]), value, (_, n) => n + value); break;
            }
        }

        await process.WaitForExitAsync(timeout.Token);
    }

    public async ValueTask DisposeAsync()
    {
        if (process is not null)
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync();
            }

            process.Dispose();
        }
    }

    /// <summary>The child's side (<c>--flood-attacker url msg1 org mode count</c>): attacks until a line or EOF on stdin, then reports.</summary>
    public static async Task<int> RunChildAsync(string[] args)
    {
        var baseAddress = new Uri(args[1]);
        var template = Convert.FromHexString(args[2]);
        var orgId = Convert.FromHexString(args[3]);
        var attack = Enum.Parse<Flood.Attack>(args[4]);
        var count = int.Parse(args[5], CultureInfo.InvariantCulture);
        var counters = new Counters();
        using var stop = new CancellationTokenSource();
        var clock = Stopwatch.StartNew();
        var attackers = Flood.AttackAsync(baseAddress, template, orgId, attack, count, counters, clock, stop.Token);
        await Console.In.ReadLineAsync();
        await stop.CancelAsync();
        await attackers.WaitAsync(TimeSpan.FromSeconds(60));
        Console.WriteLine($"attempts {counters.Attempts}");
        Console.WriteLine($"admitted {counters.Admitted}");
        Console.WriteLine($"queuefull {counters.QueueFullAt}");
        foreach (var (code, n) in counters.Refusals)
        {
            Console.WriteLine($"refused {code} {n}");
        }

        return 0;
    }
}
