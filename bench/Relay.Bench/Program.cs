using System.Diagnostics;
using System.Globalization;

namespace TrustLine.Relay.Bench;

internal static class BenchMain
{
    public static async Task<int> Main(string[] args)
    {
        // The relay load harness. `--serve b0|b1` runs a baseline server (the harness starts those itself).
        // Usage: dotnet run -c Release --project bench/Relay.Bench -- [--quick] [--pairs N] [--messages M] [--idle K] [--opens K] [--only TR,B1]
        //        dotnet run -c Release --project bench/Relay.Bench -- --flood [--quick] [--attackers N] [--attackers-inprocess]
        //        dotnet run -c Release --project bench/Relay.Bench -- --abuse
        //        dotnet run -c Release --project bench/Relay.Bench -- --queue-notices [--waiting N] [--takes K]
        if (args.Length > 1 && args[0] == "--serve")
        {
            var redisArg = Array.IndexOf(args, "--redis") is var r and >= 0 ? args[r + 1] : null;
            var port = int.Parse(args[Array.IndexOf(args, "--port") + 1], CultureInfo.InvariantCulture);
            return await Baselines.ServeAsync(args[1], port, redisArg);
        }

        if (args.Length > 5 && args[0] == "--flood-attacker")
        {
            return await AttackerProcess.RunChildAsync(args);
        }

        var smoke = args.Contains("--smoke"); // proves the harness works, in seconds; its figures mean nothing
        var quick = smoke || args.Contains("--quick");
        var options = new BenchOptions(
            Pairs: Option("--pairs", smoke ? 2 : quick ? 10 : 100),
            Messages: Option("--messages", smoke ? 20 : quick ? 300 : 500),
            Idle: Option("--idle", smoke ? 20 : quick ? 500 : 5000),
            Opens: Option("--opens", smoke ? 5 : quick ? 100 : 500),
            Sizes: quick ? [299] : [299, 1067, 4139],
            OpenLoopSeconds: smoke ? 1 : quick ? 3 : 10,
            // `--warmup N`: the unmeasured start of the closed loop, per pair, the same for every target, so the
            // figures are of code the JIT has finished tiering up: a long-running node's steady state, not its first
            // seconds (on 2 shared cores tiering TrustLine's code takes many seconds; BENCHMARKS.md, issue 15 third
            // pass). 20 before this session; `--warmup 20` gives the old figures.
            Warmup: Option("--warmup", smoke ? 20 : quick ? 300 : 200),
            // `--warm-opens K`: whole opens before the measured ones, the same for every target (0 before this session).
            WarmOpens: Option("--warm-opens", smoke ? 0 : quick ? 100 : 300),
            // Before a target's first closed loop and before its opens, unmeasured rounds run until its nodes' JIT has
            // finished tiering up (Workloads.SettleAsync); `--no-settle` measures right after the fixed warm-ups above.
            Settle: !smoke && !args.Contains("--no-settle"));
        if (args.Contains("--flood"))
        {
            // The flood workload alone (issue 10): calm, then attackers without and with solving puzzles.
            Console.WriteLine($"Machine: {Environment.ProcessorCount} cores, {Environment.OSVersion}, .NET {Environment.Version}. All processes share these cores.");
            var started = Stopwatch.StartNew();
            await using var floodRedis = await RedisProcess.StartAsync();
            using var floodOrg = new BenchOrganisation();
            await Flood.RunAsync(floodRedis, floodOrg, new Flood.Options(
                Attackers: Option("--attackers", smoke ? 10 : 200),
                PhaseSeconds: smoke ? 5 : quick ? 40 : 120,
                SeekerEvery: TimeSpan.FromSeconds(smoke ? 1 : 1.5),
                Settle: TimeSpan.FromSeconds(smoke ? 0 : 11),
                AttackersApart: !args.Contains("--attackers-inprocess")));
            Console.WriteLine($"Elapsed: {started.Elapsed.TotalSeconds:0} s.");
            return 0;
        }

        if (args.Contains("--abuse"))
        {
            // Abusive requests alone (issue 10): huge bodies, a challenge flood, connections that never speak.
            Console.WriteLine($"Machine: {Environment.ProcessorCount} cores, {Environment.OSVersion}, .NET {Environment.Version}. All processes share these cores.");
            var started = Stopwatch.StartNew();
            await using var abuseRedis = await RedisProcess.StartAsync();
            using var abuseOrg = new BenchOrganisation();
            await Abuse.RunAsync(abuseRedis, abuseOrg, smoke);
            Console.WriteLine($"Elapsed: {started.Elapsed.TotalSeconds:0} s.");
            return 0;
        }

        if (args.Contains("--queue-notices"))
        {
            // The queue-notice workload alone (issue 14): notices and Redis commands per take with many waiting.
            Console.WriteLine($"Machine: {Environment.ProcessorCount} cores, {Environment.OSVersion}, .NET {Environment.Version}. All processes share these cores.");
            await using var queueRedis = await RedisProcess.StartAsync();
            using var queueOrg = new BenchOrganisation();
            await QueueNotices.RunAsync(queueRedis, queueOrg, new QueueNotices.Options(Waiting: Option("--waiting", smoke ? 20 : 1000), Takes: Option("--takes", smoke ? 3 : 20)));
            return 0;
        }

        var clock = Stopwatch.StartNew();
        Console.WriteLine($"TrustLine relay bench ({(smoke ? "smoke" : quick ? "quick" : "full")}): {options.Pairs} pairs × {options.Messages} messages per size, closed loop; " +
            $"open loop at 25/50/75 % of TrustLine's saturation; {options.Idle} idle connections; {options.Opens} session opens.");
        Console.WriteLine($"Machine: {Environment.ProcessorCount} cores, {Environment.OSVersion}, .NET {Environment.Version}. All processes share these cores.");

        await using var redis = await RedisProcess.StartAsync();
        using var org = new BenchOrganisation();
        var rows = new List<Row>();
        var reference = 0.0;

        var plan = new (string Name, Func<Task<ITarget>> Start, bool OpenLoop, bool Idle)[]
        {
            ("B0", async () => new RawWebSocketTarget([await Node.BaselineAsync("b0", null)]), false, true),
            ("B1", async () => new SignalRTarget("B1 SignalR hub", [await Node.BaselineAsync("b1", null)], null, org), true, true),
            ("B2", async () => new SignalRTarget("B2 SignalR + Redis, 2 nodes", [await Node.BaselineAsync("b1", redis.Configuration), await Node.BaselineAsync("b1", redis.Configuration)], redis), false, false),
            // B3 only when named (`--only TR,B1,B3`): one bare hub node with the Redis backplane, for the idle workloads,
            // which splits what a TrustLine connection costs beyond B1 into the backplane's share and TrustLine's own.
            ("B3", async () => new SignalRTarget("B3 SignalR + Redis, 1 node", [await Node.BaselineAsync("b1", redis.Configuration)], redis, org), false, true),
            ("TE", async () => new TrustLineTarget("TrustLine embedded", [await Node.TrustLineAsync(org.Settings(null))], null, org), false, false),
            ("TR", async () => new TrustLineTarget("TrustLine Redis", [await Node.TrustLineAsync(org.Settings(redis.Configuration))], redis, org), true, true),
            ("T2", async () =>
            {
                var settings = org.Settings(redis.Configuration);
                return new TrustLineTarget("TrustLine Redis, 2 nodes", [await Node.TrustLineAsync(settings), await Node.TrustLineAsync(settings)], redis, org);
            }, false, false),
        };

        // TrustLine Redis first, to know the open-loop rates. `--only TR,B1` runs some targets alone (while profiling).
        var only = Array.IndexOf(args, "--only") is var o and >= 0 && o + 1 < args.Length ? args[o + 1].Split(',') : null;
        // `--workloads closed,open,opens,idle` runs some workloads alone; `--profile-wait S` prints each node's pid
        // and waits S seconds before and after the workloads, so a profiler (dotnet-trace) can attach to the node.
        var workloads = Array.IndexOf(args, "--workloads") is var w and >= 0 && w + 1 < args.Length ? args[w + 1].Split(',') : null;
        var profileWait = Option("--profile-wait", 0);
        bool Runs(string workload) => workloads is null || workloads.Contains(workload);
        foreach (var step in plan.Where(p => only is null ? p.Name != "B3" : only.Contains(p.Name)).OrderBy(p => p.Name == "TR" ? 0 : 1))
        {
            await using var target = await step.Start();
            if (profileWait > 0)
            {
                Console.WriteLine($"{step.Name} node pids: {string.Join(",", target.Nodes.Select(n => n.ProcessId))}");
                await Task.Delay(TimeSpan.FromSeconds(profileWait));
            }

            if (options.Settle && Runs("closed"))
            {
                await Workloads.SettleAsync(target, "closed loop", () => Workloads.ClosedLoopAsync(target, options, options.Sizes[0]), maxRounds: 10);
            }

            foreach (var size in Runs("closed") ? options.Sizes : [])
            {
                var row = await Workloads.ClosedLoopAsync(target, options, size);
                rows.Add(row);
                if (step.Name == "TR" && size == 299)
                {
                    reference = row.PerSecond;
                }
            }

            if (step.OpenLoop && reference > 0 && Runs("open"))
            {
                foreach (var share in new[] { 0.25, 0.50, 0.75 })
                {
                    rows.Add(await Workloads.OpenLoopAsync(target, options, 299, reference * share, $"{share:P0} of TrustLine saturation"));
                }
            }

            // Opens before the idle connections: those leave seekers waiting in the queue for the grace period.
            // B1 runs the same opens against its bare hub: the baseline the open's cost is a ratio of; TrustLine
            // embedded splits what TrustLine adds into its own work and the Redis store's.
            if (target is ISessionOpener opener && step.Name is "TR" or "B1" or "TE" && Runs("opens"))
            {
                rows.Add(await Workloads.SessionOpensAsync(opener, options));
            }

            if (step.Idle && Runs("idle"))
            {
                rows.Add(await Workloads.IdleMemoryAsync(target, options));
                if (target is IHubTarget)
                {
                    // On a fresh node of the same kind, so the waiting seekers' memory neither adds to nor is reused by it.
                    await using var fresh = await step.Start();
                    // The wait for TrustLine to close them (Limits:ClientTimeout, 30 s) is left out of the smoke run; a test covers it.
                    rows.Add(await Workloads.IdleHandshakedAsync((IHubTarget)fresh, options, awaitSilentClose: fresh is TrustLineTarget && !smoke));
                }
            }

            if (profileWait > 0)
            {
                // The node stays up while the profiler finishes writing its trace (a trace cut short has no method names).
                await Task.Delay(TimeSpan.FromSeconds(profileWait));
            }
        }

        Report.Print(rows);
        Console.WriteLine($"Elapsed: {clock.Elapsed.TotalSeconds:0} s.");
        return 0;

        int Option(string name, int fallback)
        {
            var i = Array.IndexOf(args, name);
            return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
        }
    }
}
