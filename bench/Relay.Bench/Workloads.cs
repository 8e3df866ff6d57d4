using System.Collections.Concurrent;
using System.Diagnostics;

namespace TrustLine.Relay.Bench;

// Warmup: messages per pair sent before the closed loop's clock starts (not measured); WarmOpens: whole opens run
// before the measured ones (0: a node as it comes).
internal sealed record BenchOptions(int Pairs, int Messages, int Idle, int Opens, int[] Sizes, int OpenLoopSeconds, int Warmup = 20, int WarmOpens = 0, bool Settle = false);

/// <summary>One line of the report.</summary>
internal sealed record Row(string Target, string Workload, int Size)
{
    public double PerSecond { get; init; }
    public double? CpuMicros { get; init; }

    /// <summary>
    /// CPU beside the server's, per operation: the harness's own process (the clients) and redis-server. All share the
    /// same cores, so a target's throughput in a saturated closed loop follows the sum.
    /// </summary>
    public double? HarnessCpuMicros { get; init; }

    public double? RedisCpuMicros { get; init; }
    public double? P50 { get; init; }
    public double? P99 { get; init; }
    public double? P999 { get; init; }
    public double? RedisPerUnit { get; init; }

    /// <summary>Commands the server nodes sent (a script once): what the network carries, pipelined or not.</summary>
    public double? RedisSentPerUnit { get; init; }
    public double? AllocatedPerUnit { get; init; }
    public double? BytesPerConnection { get; init; }

    /// <summary>Growth of resident memory per connection over the later half of the idle connections.</summary>
    public double? MarginalBytesPerConnection { get; init; }
    public string? RedisDetail { get; init; }

    /// <summary>Idle handshaked connections the node had already closed when memory was read (the figure is then low).</summary>
    public int? ClosedBeforeMeasured { get; init; }

    /// <summary>The longest a silent handshaked connection stayed open before the node closed it (infinity: not within 60 s).</summary>
    public double? SilentOpenSeconds { get; init; }
}

internal static class Workloads
{
    /// <summary>Two warm-up rounds running in which the nodes compile fewer methods a second than this find the JIT done tiering up.</summary>
    private const double SettledMethodsPerSecond = 150;

    /// <summary>
    /// Runs unmeasured <paramref name="round"/>s until the JIT has finished tiering the target's code up: two rounds
    /// running in which its nodes compiled fewer than <see cref="SettledMethodsPerSecond"/> methods a second (a settled
    /// node still compiles a few, for timers and rare paths; at most <paramref name="maxRounds"/> rounds). On 2 shared cores a TrustLine node compiles some 12,000 methods over its first
    /// ~15 s of opens; a figure taken before that measures the JIT, not the node (BENCHMARKS.md, fourth pass).
    /// </summary>
    public static async Task SettleAsync(ITarget target, string what, Func<Task> round, int maxRounds)
    {
        var quiet = 0;
        var rounds = 0;
        var last = await JitCompiledAsync(target);
        while (quiet < 2 && rounds < maxRounds)
        {
            var clock = Stopwatch.StartNew();
            await round();
            rounds++;
            var now = await JitCompiledAsync(target);
            quiet = (now - last) / clock.Elapsed.TotalSeconds < SettledMethodsPerSecond ? quiet + 1 : 0;
            last = now;
        }

        Console.WriteLine($"warm-up: {target.Name}, {what}: {rounds} rounds{(quiet < 2 ? " (the JIT was still compiling)" : "")}");
    }

    private static async Task<long> JitCompiledAsync(ITarget target)
    {
        long compiled = 0;
        foreach (var node in target.Nodes)
        {
            compiled += (await node.RuntimeAsync()).JitCompiledMethods;
        }

        return compiled;
    }

    /// <summary>Saturation: every pair sends its next message as soon as the previous one arrived at the peer.</summary>
    public static async Task<Row> ClosedLoopAsync(ITarget target, BenchOptions options, int size)
    {
        var arrivals = new SemaphoreSlim[options.Pairs];
        var links = new IPairLink[options.Pairs];
        var warm = options.Warmup;
        for (var i = 0; i < options.Pairs; i++)
        {
            var signal = arrivals[i] = new SemaphoreSlim(0);
            links[i] = await target.ConnectAsync(i, size, warm + options.Messages, _ => signal.Release());
        }

        try
        {
            await Task.WhenAll(links.Select((link, i) => RunAsync(link, arrivals[i], 0, warm, null)));
            var before = await SnapshotAsync(target);
            var latencies = new ConcurrentBag<double>();
            var clock = Stopwatch.StartNew();
            await Task.WhenAll(links.Select((link, i) => RunAsync(link, arrivals[i], warm, options.Messages, latencies)));
            clock.Stop();
            var after = await SnapshotAsync(target);
            var total = options.Pairs * options.Messages;
            return Measure(target, $"closed loop, {options.Pairs} pairs", size, total, clock.Elapsed, before, after, latencies);
        }
        finally
        {
            foreach (var link in links)
            {
                await link.DisposeAsync();
            }
        }

        static async Task RunAsync(IPairLink link, SemaphoreSlim arrived, int from, int count, ConcurrentBag<double>? latencies)
        {
            for (var i = from; i < from + count; i++)
            {
                var start = Stopwatch.GetTimestamp();
                await link.SendAsync(i);
                if (!await arrived.WaitAsync(TimeSpan.FromSeconds(30)))
                {
                    throw new TimeoutException($"Message {i} of a pair did not arrive within 30 s (target {link.GetType().DeclaringType?.Name}).");
                }

                latencies?.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            }
        }
    }

    /// <summary>A fixed total rate; latency counts from each message's scheduled send time (no coordinated omission).</summary>
    public static async Task<Row> OpenLoopAsync(ITarget target, BenchOptions options, int size, double rate, string label)
    {
        var perPair = Math.Max(1, (int)(rate * options.OpenLoopSeconds / options.Pairs));
        var interval = TimeSpan.FromSeconds(options.Pairs / rate);
        var origin = Stopwatch.GetTimestamp() + Stopwatch.Frequency; // a second to connect
        var latencies = new ConcurrentBag<double>();
        var received = 0;
        var links = new IPairLink[options.Pairs];
        var offsets = new long[options.Pairs];
        for (var i = 0; i < options.Pairs; i++)
        {
            var pair = i;
            links[i] = await target.ConnectAsync(i, size, perPair, index =>
            {
                var scheduled = Volatile.Read(ref offsets[pair]) + (long)(index * interval.TotalSeconds * Stopwatch.Frequency);
                latencies.Add((Stopwatch.GetTimestamp() - scheduled) * 1000.0 / Stopwatch.Frequency);
                Interlocked.Increment(ref received);
            });
        }

        try
        {
            var before = await SnapshotAsync(target);
            var clock = Stopwatch.StartNew();
            origin = Stopwatch.GetTimestamp();
            await Task.WhenAll(links.Select((link, pair) => Task.Run(async () =>
            {
                // Pairs start spread over one interval, so the total rate is even.
                var start = origin + (long)(pair * interval.TotalSeconds * Stopwatch.Frequency / options.Pairs);
                Volatile.Write(ref offsets[pair], start);
                for (var i = 0; i < perPair; i++)
                {
                    var due = start + (long)(i * interval.TotalSeconds * Stopwatch.Frequency);
                    var wait = (due - Stopwatch.GetTimestamp()) * 1000.0 / Stopwatch.Frequency;
                    if (wait > 1)
                    {
                        await Task.Delay(TimeSpan.FromMilliseconds(wait));
                    }

                    await link.PostAsync(i);
                }
            })));
            var deadline = Stopwatch.StartNew();
            while (Volatile.Read(ref received) < perPair * options.Pairs && deadline.Elapsed < TimeSpan.FromSeconds(30))
            {
                await Task.Delay(10);
            }

            clock.Stop();
            var after = await SnapshotAsync(target);
            var row = Measure(target, $"open loop at {label} ({rate:0}/s)", size, Volatile.Read(ref received), clock.Elapsed, before, after, latencies);
            return row;
        }
        finally
        {
            foreach (var link in links)
            {
                await link.DisposeAsync();
            }
        }
    }

    /// <summary>Memory per idle connection: resident memory of the server before and after opening many.</summary>
    public static async Task<Row> IdleMemoryAsync(ITarget target, BenchOptions options)
    {
        var node = target.Nodes[0];
        await Task.Delay(500);
        var before = node.ResidentBytes();
        var idle = new List<IAsyncDisposable>();
        try
        {
            (long Bytes, int Opened)? half = null;
            for (var i = 0; i < options.Idle; i += 50)
            {
                half ??= await HalfwayAsync(node, i, options.Idle);
                idle.AddRange(await Task.WhenAll(Enumerable.Range(i, Math.Min(50, options.Idle - i)).Select(target.IdleAsync)));
            }

            await Task.Delay(1000);
            var after = node.ResidentBytes();
            return new Row(target.Name, $"{options.Idle} idle connections", 0)
            {
                BytesPerConnection = (after - before) / (double)options.Idle,
                MarginalBytesPerConnection = Marginal(half, after, options.Idle),
            };
        }
        finally
        {
            foreach (var connection in idle)
            {
                await connection.DisposeAsync();
            }
        }
    }

    /// <summary>
    /// Memory per idle handshaked connection (issue 10): resident memory of a fresh node before and after opening
    /// many hub connections that complete the SignalR handshake and call nothing. TrustLine closes such a silent
    /// seeker connection after <c>Limits:ClientTimeout</c>; with <paramref name="awaitSilentClose"/> the workload
    /// then waits for the node to close them all and reports the longest time a connection stayed open.
    /// </summary>
    public static async Task<Row> IdleHandshakedAsync(IHubTarget target, BenchOptions options, bool awaitSilentClose)
    {
        var node = target.Nodes[0];
        await Task.Delay(500);
        var before = node.ResidentBytes();
        var connections = new List<(Microsoft.AspNetCore.SignalR.Client.HubConnection Connection, long Open, TaskCompletionSource<long> Closed)>();
        try
        {
            (long Bytes, int Opened)? half = null;
            for (var i = 0; i < options.Idle; i += 50)
            {
                half ??= await HalfwayAsync(node, i, options.Idle);
                connections.AddRange(await Task.WhenAll(Enumerable.Range(i, Math.Min(50, options.Idle - i)).Select(async index =>
                {
                    var open = Stopwatch.GetTimestamp();
                    var connection = await target.HandshakedAsync(index);
                    var closed = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
                    connection.Closed += _ =>
                    {
                        closed.TrySetResult(Stopwatch.GetTimestamp());
                        return Task.CompletedTask;
                    };
                    return (connection, open, closed);
                })));
            }

            await Task.Delay(1000);
            var after = node.ResidentBytes();
            var early = connections.Count(c => c.Closed.Task.IsCompleted);
            double? openFor = null;
            if (awaitSilentClose)
            {
                var all = Task.WhenAll(connections.Select(c => c.Closed.Task));
                await Task.WhenAny(all, Task.Delay(TimeSpan.FromSeconds(60)));
                openFor = connections.Max(c => c.Closed.Task.IsCompleted
                    ? Stopwatch.GetElapsedTime(c.Open, c.Closed.Task.Result).TotalSeconds
                    : double.PositiveInfinity);
            }

            return new Row(target.Name, $"{options.Idle} idle handshaked connections (no call)", 0)
            {
                BytesPerConnection = (after - before) / (double)options.Idle,
                MarginalBytesPerConnection = Marginal(half, after, options.Idle),
                ClosedBeforeMeasured = early,
                SilentOpenSeconds = openFor,
            };
        }
        finally
        {
            foreach (var (connection, _, _) in connections)
            {
                await connection.DisposeAsync();
            }
        }
    }

    /// <summary>Resident memory once half the connections are open (null before that): the later half's growth is the marginal cost.</summary>
    private static async Task<(long Bytes, int Opened)?> HalfwayAsync(Node node, int opened, int total)
    {
        if (opened < total / 2)
        {
            return null;
        }

        await Task.Delay(1000);
        return (node.ResidentBytes(), opened);
    }

    /// <summary>
    /// Growth per connection over the later half only: what one more connection costs, without the node's one-off
    /// growth at its first connections (code paths loaded and compiled, thread-pool threads, the heap's first regions).
    /// </summary>
    private static double? Marginal((long Bytes, int Opened)? half, long after, int total) =>
        half is { } h && total > h.Opened ? (after - h.Bytes) / (double)(total - h.Opened) : null;

    /// <summary>
    /// Whole session opens with the real handshake, eight at a time; after <see cref="BenchOptions.WarmOpens"/> unmeasured
    /// ones when asked (`--warm-opens N`), so the figures are of a node whose JIT has tiered the open's code up.
    /// </summary>
    public static async Task<Row> SessionOpensAsync(ISessionOpener target, BenchOptions options)
    {
        await using var responder = await target.ResponderAsync(0);
        await RunAsync(0, options.WarmOpens);
        var warmed = options.WarmOpens;
        if (options.Settle)
        {
            await SettleAsync(target, "opens", async () =>
            {
                await RunAsync(warmed, 500);
                warmed += 500;
            }, maxRounds: 30);
        }

        var before = await SnapshotAsync(target);
        var clock = Stopwatch.StartNew();
        await RunAsync(warmed, options.Opens);
        clock.Stop();
        var after = await SnapshotAsync(target);
        var warm = options.Settle ? ", JIT settled" : options.WarmOpens > 0 ? $", after {options.WarmOpens} warm" : "";
        return Measure(target, $"session opens (handshake, HELLO, close{warm})", 0, options.Opens, clock.Elapsed, before, after, []);

        Task RunAsync(int from, int count)
        {
            var next = from - 1;
            return Task.WhenAll(Enumerable.Range(0, 8).Select(async _ =>
            {
                int i;
                while ((i = Interlocked.Increment(ref next)) < from + count)
                {
                    await target.OpenSessionAsync(i, responder);
                }
            }));
        }
    }

    private static async Task<Snapshot> SnapshotAsync(ITarget target)
    {
        var cpu = target.Nodes.Aggregate(TimeSpan.Zero, (sum, n) => sum + n.CpuTime());
        long allocated = 0;
        long? sent = null;
        foreach (var node in target.Nodes)
        {
            var runtime = await node.RuntimeAsync();
            allocated += runtime.Allocated;
            sent = runtime.RedisOperations is { } operations ? (sent ?? 0) + operations : sent;
        }

        return new Snapshot(cpu, allocated, target.Redis is null ? null : await target.Redis.CommandStatsAsync(), sent,
            Environment.CpuUsage.TotalTime, target.Redis?.CpuTime());
    }

    private static Row Measure(ITarget target, string workload, int size, int count, TimeSpan elapsed, Snapshot before, Snapshot after, IEnumerable<double> latencies)
    {
        var sorted = latencies.Order().ToArray();
        double? Percentile(double p) => sorted.Length == 0 ? null : sorted[Math.Min(sorted.Length - 1, (int)(sorted.Length * p))];
        var commands = before.Commands is null || after.Commands is null ? null : RedisProcess.Delta(before.Commands, after.Commands);
        return new Row(target.Name, workload, size)
        {
            PerSecond = count / elapsed.TotalSeconds,
            CpuMicros = (after.Cpu - before.Cpu).TotalMicroseconds / count,
            HarnessCpuMicros = (after.HarnessCpu - before.HarnessCpu).TotalMicroseconds / count,
            RedisCpuMicros = before.RedisCpu is { } redisBefore && after.RedisCpu is { } redisAfter ? (redisAfter - redisBefore).TotalMicroseconds / count : null,
            P50 = Percentile(0.50),
            P99 = Percentile(0.99),
            P999 = Percentile(0.999),
            RedisPerUnit = commands is null ? null : commands.Values.Sum() / (double)count,
            RedisSentPerUnit = before.RedisSent is { } sentBefore && after.RedisSent is { } sentAfter ? (sentAfter - sentBefore) / (double)count : null,
            AllocatedPerUnit = (after.Allocated - before.Allocated) / (double)count,
            RedisDetail = commands is null ? null : string.Join(" ", commands.OrderByDescending(c => c.Value).Select(c => $"{c.Key}={c.Value}")),
        };
    }

    private sealed record Snapshot(TimeSpan Cpu, long Allocated, Dictionary<string, long>? Commands, long? RedisSent, TimeSpan HarnessCpu, TimeSpan? RedisCpu);
}

internal static class Report
{
    public static void Print(List<Row> rows)
    {
        Console.WriteLine();
        Console.WriteLine($"| {"target",-28} | {"workload",-52} | {"bytes",5} | {"per s",8} | {"CPU µs",7} | {"p50 ms",7} | {"p99 ms",7} | {"p99.9",7} | {"Redis/op",8} | {"sent/op",7} | {"alloc B/op",10} | {"B/conn",7} | {"marginal",8} |");
        Console.WriteLine($"|{new string('-', 30)}|{new string('-', 54)}|{new string('-', 7)}|{new string('-', 10)}|{new string('-', 9)}|{new string('-', 9)}|{new string('-', 9)}|{new string('-', 9)}|{new string('-', 10)}|{new string('-', 9)}|{new string('-', 12)}|{new string('-', 9)}|{new string('-', 10)}|");
        foreach (var r in rows)
        {
            Console.WriteLine($"| {r.Target,-28} | {r.Workload,-52} | {(r.Size == 0 ? "" : r.Size.ToString()),5} | {F(r.PerSecond, "0"),8} | {F(r.CpuMicros, "0"),7} | {F(r.P50, "0.00"),7} | {F(r.P99, "0.00"),7} | {F(r.P999, "0.00"),7} | {F(r.RedisPerUnit, "0.00"),8} | {F(r.RedisSentPerUnit, "0.00"),7} | {F(r.AllocatedPerUnit, "0"),10} | {F(r.BytesPerConnection, "0"),7} | {F(r.MarginalBytesPerConnection, "0"),8} |");
        }

        Console.WriteLine();
        foreach (var r in rows.Where(r => r.RedisDetail is { Length: > 0 } && r.Workload.StartsWith("closed", StringComparison.Ordinal)))
        {
            Console.WriteLine($"Redis commands, {r.Target}, {r.Size} bytes: {r.RedisDetail}");
        }

        foreach (var r in rows.Where(r => r.RedisDetail is { Length: > 0 } && r.Workload.StartsWith("session opens", StringComparison.Ordinal)))
        {
            Console.WriteLine($"Redis commands, {r.Target}, session opens: {r.RedisDetail}");
        }

        // The server's CPU is the table's; the clients (this process) and redis-server share the same cores.
        foreach (var r in rows.Where(r => r.HarnessCpuMicros is not null && (r.Workload.StartsWith("closed", StringComparison.Ordinal) || r.Workload.StartsWith("session opens", StringComparison.Ordinal))))
        {
            Console.WriteLine($"CPU beside the server, {r.Target}, {(r.Size == 0 ? "session opens" : $"{r.Workload}, {r.Size} bytes")}: harness {F(r.HarnessCpuMicros, "0")} µs, redis-server {F(r.RedisCpuMicros, "0")} µs per operation");
        }

        Row? Closed(string target) => rows.FirstOrDefault(r => r.Target == target && r.Size == 299 && r.Workload.StartsWith("closed", StringComparison.Ordinal));
        Row? Idle(string target) => rows.FirstOrDefault(r => r.Target == target && r.BytesPerConnection is not null && r.ClosedBeforeMeasured is null);
        Row? Handshaked(string target) => rows.FirstOrDefault(r => r.Target == target && r.ClosedBeforeMeasured is not null);
        var b1 = Closed("B1 SignalR hub");
        var tl = Closed("TrustLine Redis");
        var two = Closed("TrustLine Redis, 2 nodes");
        Row? Opens(string target) => rows.FirstOrDefault(r => r.Target == target && r.Workload.StartsWith("session opens", StringComparison.Ordinal));
        var half = rows.FirstOrDefault(r => r.Target == "TrustLine Redis" && r.Workload.Contains("50 %", StringComparison.Ordinal));
        Console.WriteLine();
        if (half is not null)
        {
            Console.WriteLine($"TrustLine Redis p99 at 50 % load: {half.P99:0.00} ms (target ≤ 20 ms)");
        }

        if (Idle("TrustLine Redis") is { } idleTl && Idle("B1 SignalR hub") is { } idleB1)
        {
            Console.WriteLine($"memory per idle waiting seeker TrustLine/B1: {idleTl.BytesPerConnection / idleB1.BytesPerConnection:0.00} (target ≤ 1.2); marginal: {idleTl.MarginalBytesPerConnection / idleB1.MarginalBytesPerConnection:0.00}");
        }

        if (Idle("TrustLine Redis") is { } waiting && Idle("B3 SignalR + Redis, 1 node") is { } backplane)
        {
            Console.WriteLine($"memory per idle waiting seeker TrustLine/B3 (bare hub with the Redis backplane): {waiting.BytesPerConnection / backplane.BytesPerConnection:0.00}");
        }

        if (Handshaked("TrustLine Redis") is { } shakenTl)
        {
            var ratio = Handshaked("B1 SignalR hub") is { } shakenB1
                ? $", TrustLine/B1: {shakenTl.BytesPerConnection / shakenB1.BytesPerConnection:0.00}, marginal {shakenTl.MarginalBytesPerConnection / shakenB1.MarginalBytesPerConnection:0.00}"
                : "";
            if (Handshaked("B3 SignalR + Redis, 1 node") is { } shakenB3)
            {
                ratio += $", TrustLine/B3: {shakenTl.BytesPerConnection / shakenB3.BytesPerConnection:0.00}";
            }

            Console.WriteLine($"memory per idle handshaked connection TrustLine Redis: {shakenTl.BytesPerConnection:0} B, marginal {shakenTl.MarginalBytesPerConnection:0} B (target ≤ 20480){ratio}");
            foreach (var r in rows.Where(r => r.ClosedBeforeMeasured > 0))
            {
                Console.WriteLine($"  {r.Target}: {r.ClosedBeforeMeasured} handshaked connections were closed before memory was read; that figure is too low");
            }

            if (shakenTl.SilentOpenSeconds is { } open)
            {
                Console.WriteLine($"silent handshaked connections closed by TrustLine Redis: {(double.IsInfinity(open) ? "not all within 60 s" : $"all, the last {open:0.0} s after it connected")} (target ≤ 35 s)");
            }
        }

        if (b1 is not null && tl is not null)
        {
            Console.WriteLine($"throughput TrustLine/B1: {tl.PerSecond / b1.PerSecond:0.00} (target ≥ 0.7)");
            Console.WriteLine($"CPU per envelope TrustLine/B1: {tl.CpuMicros / b1.CpuMicros:0.00} (target ≤ 1.4)");
        }

        if (Opens("TrustLine Redis") is { } opens)
        {
            Console.WriteLine($"session opens TrustLine Redis: {opens.PerSecond:0} per s (target ≥ 400), {opens.RedisPerUnit:0.0} Redis commands per open (target ≤ 12)");
            if (Opens("B1 SignalR hub") is { } bare)
            {
                Console.WriteLine($"session open CPU TrustLine/B1: {opens.CpuMicros / bare.CpuMicros:0.00} (target ≤ 2), opens per s TrustLine/B1: {opens.PerSecond / bare.PerSecond:0.00}, allocation per open TrustLine/B1: {opens.AllocatedPerUnit / bare.AllocatedPerUnit:0.00}");
                if (Opens("TrustLine embedded") is { } embedded)
                {
                    Console.WriteLine($"session open CPU TrustLine embedded/B1: {embedded.CpuMicros / bare.CpuMicros:0.00} (TrustLine's own work, no store round trips)");
                }
            }
        }

        if (tl is not null && two is not null)
        {
            Console.WriteLine($"throughput two-node/one-node: {two.PerSecond / tl.PerSecond:0.00}");
        }
    }

    private static string F(double? value, string format) => value is { } v ? v.ToString(format, System.Globalization.CultureInfo.InvariantCulture) : "";
}
