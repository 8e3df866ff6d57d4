using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using TrustLine.Protocol.Contracts;
using TrustLine.Protocol.Crypto;

namespace TrustLine.Relay.Bench;

/// <summary>
/// The flood workload (issue 10): real seekers open sessions at a steady pace, first on a calm line, then
/// while attackers on many connections open sessions as fast as they can, without solving puzzles and then
/// solving them. Each phase runs on a fresh TrustLine node on Redis with the puzzle, the call rate and the
/// per-address caps on places and connections as shipped (the other workloads turn them off). The attackers come from one host
/// (127.0.0.2), the real seekers from others (127.0.0.1). Real seekers behave like the SDKs: open, and when refused
/// <c>puzzle_required</c>, ask for a puzzle, solve it and open again; then they leave the queue.
/// </summary>
internal static class Flood
{
    // Settle: the pause after the warm-up, so its opens age out of the puzzle's window (10 s as shipped).
    public sealed record Options(int Attackers, int PhaseSeconds, TimeSpan SeekerEvery, TimeSpan Settle, bool AttackersApart);

    public sealed record Phase(string Name, int Seekers, int Succeeded, IReadOnlyDictionary<string, int> SeekerFailures,
        double[] Latencies, double[] OpenOnly, double[] PuzzleTimes, long Attempts, long Admitted, IReadOnlyDictionary<string, long> AttackRefusals,
        double CpuCores, double RssBeforeMiB, double RssPeakMiB, double Seconds, double? QueueFullAfter);

    internal enum Attack
    {
        None,
        Unsolved,
        Solved,
    }

    public static async Task RunAsync(RedisProcess redis, BenchOrganisation org, Options options)
    {
        Console.WriteLine($"Flood: {options.Attackers} attacking connections, {options.PhaseSeconds} s per phase, a real seeker every {options.SeekerEvery.TotalSeconds:0.#} s; " +
            "puzzle, call rate and per-address caps as shipped; the attackers come from one address of their own; attackers that solve share one core; " +
            (options.AttackersApart
                ? "the attackers run in a process of their own at the lowest CPU priority (nice 19), standing for a machine of their own."
                : "the attackers run in the harness's process, beside the real seekers."));
        var phases = new List<Phase>
        {
            await RunPhaseAsync("calm", Attack.None, redis, org, options),
            await RunPhaseAsync("flood, puzzles not solved", Attack.Unsolved, redis, org, options),
            await RunPhaseAsync("flood, puzzles solved", Attack.Solved, redis, org, options),
        };
        Print(phases);
    }

    private static async Task<Phase> RunPhaseAsync(string name, Attack attack, RedisProcess redis, BenchOrganisation org, Options options)
    {
        var settings = Abuse.Shipped(redis, org);
        settings["Organisations:bench:QueueCapacity"] = "200";
        await using var node = await Node.TrustLineAsync(settings);
        var template = Msg1Template(org);
        using var stop = new CancellationTokenSource();
        var counters = new Counters();

        // Warm the fresh node up (JIT, connections), then let those opens age out of the puzzle's window.
        for (var i = 0; i < 5; i++)
        {
            await RealSeekerAsync(node, template, org);
        }

        await Task.Delay(options.Settle);
        var rssBefore = node.ResidentBytes();
        var rssPeak = rssBefore;
        var cpuBefore = node.CpuTime();
        var clock = Stopwatch.StartNew();

        await using var attackers = attack == Attack.None ? null
            : options.AttackersApart ? await AttackerProcess.StartAsync(node.BaseAddress, template, org.Pin.OrgId, attack, options.Attackers)
            : AttackerProcess.InProcess(AttackAsync(node.BaseAddress, template, org.Pin.OrgId, attack, options.Attackers, counters, clock, stop.Token));

        // Real seekers on a schedule: latency counts from the scheduled start, so a slow server cannot hide.
        var seekers = new List<Task<SeekerResult>>();
        using var sampler = new PeriodicTimer(TimeSpan.FromMilliseconds(500));
        var next = TimeSpan.FromSeconds(2); // the flood gets going first
        while (clock.Elapsed < TimeSpan.FromSeconds(options.PhaseSeconds))
        {
            if (clock.Elapsed >= next)
            {
                seekers.Add(RealSeekerAsync(node, template, org));
                next += options.SeekerEvery;
            }

            await sampler.WaitForNextTickAsync();
            rssPeak = Math.Max(rssPeak, node.ResidentBytes());
        }

        var results = await Task.WhenAll(seekers);
        var seconds = clock.Elapsed.TotalSeconds;
        var cpu = (node.CpuTime() - cpuBefore).TotalSeconds / seconds;
        rssPeak = Math.Max(rssPeak, node.ResidentBytes());
        await stop.CancelAsync();
        if (attackers is not null)
        {
            await attackers.StopAsync(counters);
        }

        var ok = results.Where(r => r.Failure is null).ToList();
        return new Phase(name, results.Length, ok.Count,
            results.Where(r => r.Failure is not null).GroupBy(r => r.Failure!).ToDictionary(g => g.Key, g => g.Count()),
            [.. ok.Select(r => r.Milliseconds).Order()], [.. ok.Select(r => r.Milliseconds - r.PuzzleMilliseconds).Order()], [.. ok.Select(r => r.PuzzleMilliseconds).Order()],
            counters.Attempts, counters.Admitted, counters.Refusals, cpu, rssBefore / 1048576.0, rssPeak / 1048576.0, seconds, counters.QueueFullAt < 0 ? null : counters.QueueFullAt / 1000.0);
    }

    /// <summary>The attacking host's connections: each opens sessions as fast as it can, until stopped.</summary>
    internal static Task AttackAsync(Uri baseAddress, byte[] template, byte[] orgId, Attack attack, int count, Counters counters, Stopwatch clock, CancellationToken stop)
    {
        var attackerCore = new SemaphoreSlim(1);
        return Task.WhenAll(Enumerable.Range(0, count).Select(i => Task.Run(async () =>
        {
            var hold = i % 2 == 0; // half hold their place, half open and drop from fresh connections
            HubConnection? hub = null;
            try
            {
                while (!stop.IsCancellationRequested)
                {
                    if (hub is null)
                    {
                        hub = Connect(baseAddress, AttackerAddress);
                        try
                        {
                            await hub.StartAsync(stop);
                        }
                        catch (Exception e) when (!stop.IsCancellationRequested && e is HttpRequestException or WebSocketException or InvalidOperationException)
                        {
                            // Refused at the door (too many connections from this address): try again at once.
                            counters.Refusals.AddOrUpdate("connection refused", 1, (_, n) => n + 1);
                            await hub.DisposeAsync();
                            hub = null;
                            continue;
                        }
                    }

                    var msg1 = Msg1(template);
                    var request = new OpenSessionRequest { Msg1 = msg1, Language = "nl" };
                    try
                    {
                        Interlocked.Increment(ref counters.Attempts);
                        try
                        {
                            await hub.InvokeAsync<OpenSessionResult>(SeekerHubMethods.OpenSession, request, stop);
                        }
                        catch (HubException e) when (attack == Attack.Solved && Code(e) == ErrorCodes.PuzzleRequired)
                        {
                            counters.Refusals.AddOrUpdate(ErrorCodes.PuzzleRequired, 1, (_, n) => n + 1);
                            var puzzle = await hub.InvokeAsync<byte[]>(SeekerHubMethods.GetPuzzle, orgId, stop);
                            await attackerCore.WaitAsync(stop);
                            try
                            {
                                request.Puzzle = puzzle;
                                request.Solution = Solve(puzzle, msg1, stop);
                            }
                            finally
                            {
                                attackerCore.Release();
                            }

                            Interlocked.Increment(ref counters.Attempts);
                            await hub.InvokeAsync<OpenSessionResult>(SeekerHubMethods.OpenSession, request, stop);
                        }

                        Interlocked.Increment(ref counters.Admitted);
                        if (hold)
                        {
                            await Task.Delay(Timeout.Infinite, stop);
                        }

                        await hub.DisposeAsync();
                        hub = null;
                    }
                    catch (HubException e)
                    {
                        counters.Refusals.AddOrUpdate(Code(e), 1, (_, n) => n + 1);
                        if (Code(e) == ErrorCodes.QueueFull)
                        {
                            Interlocked.CompareExchange(ref counters.QueueFullAt, clock.ElapsedMilliseconds, -1);
                        }
                    }
                }
            }
            catch (Exception) when (stop.IsCancellationRequested)
            {
            }
            finally
            {
                if (hub is not null)
                {
                    await hub.DisposeAsync();
                }
            }
        })));
    }

    private sealed record SeekerResult(double Milliseconds, double PuzzleMilliseconds, string? Failure);

    /// <summary>A real seeker, as the SDKs behave: a fresh connection, open, solve when asked, open again; then leave the queue.</summary>
    private static async Task<SeekerResult> RealSeekerAsync(Node node, byte[] template, BenchOrganisation org)
    {
        var clock = Stopwatch.StartNew();
        var puzzleTime = TimeSpan.Zero;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await using var hub = Connect(node);
        try
        {
            await hub.StartAsync(timeout.Token);
            var msg1 = Msg1(template);
            var request = new OpenSessionRequest { Msg1 = msg1, Language = "nl" };
            for (var attempt = 0; ; attempt++)
            {
                try
                {
                    await hub.InvokeAsync<OpenSessionResult>(SeekerHubMethods.OpenSession, request, timeout.Token);
                    break;
                }
                catch (HubException e) when (attempt < 3 && Code(e) is ErrorCodes.PuzzleRequired or ErrorCodes.BadPuzzle)
                {
                    var puzzle = await hub.InvokeAsync<byte[]>(SeekerHubMethods.GetPuzzle, org.Pin.OrgId, timeout.Token);
                    var solving = Stopwatch.StartNew();
                    request.Puzzle = puzzle;
                    request.Solution = await Task.Run(() => Solve(puzzle, msg1, timeout.Token), timeout.Token);
                    puzzleTime += solving.Elapsed;
                }
            }

            var opened = clock.Elapsed;
            await hub.InvokeAsync(SeekerHubMethods.Close, timeout.Token);
            return new SeekerResult(opened.TotalMilliseconds, puzzleTime.TotalMilliseconds, null);
        }
        catch (HubException e)
        {
            return new SeekerResult(clock.Elapsed.TotalMilliseconds, puzzleTime.TotalMilliseconds, Code(e));
        }
        catch (OperationCanceledException)
        {
            return new SeekerResult(clock.Elapsed.TotalMilliseconds, puzzleTime.TotalMilliseconds, "timeout");
        }
        catch (Exception e) when (e is HttpRequestException or System.Net.WebSockets.WebSocketException or InvalidOperationException)
        {
            return new SeekerResult(clock.Elapsed.TotalMilliseconds, puzzleTime.TotalMilliseconds, "connection");
        }
    }

    private static byte[] Solve(byte[] puzzle, byte[] msg1, CancellationToken cancellationToken) =>
        AdmissionPuzzle.TryParse(puzzle, out var parsed, out var error)
            ? parsed.Solve(msg1.AsSpan(19, Wire.SessionIdSize), null, cancellationToken)
            : throw new InvalidOperationException($"The server's puzzle is malformed ({error}).");

    /// <summary>A real msg1 once; each open gets a fresh random session id in it (the server checks the fixed fields only).</summary>
    internal static byte[] Msg1Template(BenchOrganisation org)
    {
        using var handshake = SeekerHandshake.Start(org.Pin);
        return handshake.Msg1.ToArray();
    }

    private static byte[] Msg1(byte[] template)
    {
        var msg1 = (byte[])template.Clone();
        RandomNumberGenerator.Fill(msg1.AsSpan(19, Wire.SessionIdSize));
        return msg1;
    }

    private static string Code(HubException e) => e.Message.IndexOf(':', StringComparison.Ordinal) is var colon and > 0 ? e.Message[..colon] : "error";

    /// <summary>The attacking host: one address of its own (loopback 127.0.0.2), the real seekers another (127.0.0.1).</summary>
    private static readonly IPAddress AttackerAddress = IPAddress.Parse("127.0.0.2");

    private static HubConnection Connect(Node node) => Connect(node.BaseAddress);

    private static HubConnection Connect(Uri baseAddress, IPAddress? from = null) =>
        new HubConnectionBuilder()
            .WithUrl(new Uri(baseAddress, Routes.SeekerHub), HttpTransportType.WebSockets, o =>
            {
                o.SkipNegotiation = true;
                if (from is not null)
                {
                    o.WebSocketFactory = async (context, cancellation) =>
                    {
                        var webSocket = new ClientWebSocket();
                        var invoker = new HttpMessageInvoker(new SocketsHttpHandler { ConnectCallback = (c, token) => ConnectFromAsync(from, c.DnsEndPoint, token) });
                        await webSocket.ConnectAsync(context.Uri, invoker, cancellation);
                        return webSocket;
                    };
                }
            })
            .AddMessagePackProtocol()
            .Build();

    private static async ValueTask<Stream> ConnectFromAsync(IPAddress from, DnsEndPoint to, CancellationToken cancellationToken)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.Bind(new IPEndPoint(from, 0));
            await socket.ConnectAsync(to, cancellationToken);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static void Print(List<Phase> phases)
    {
        static string F(double value, string format = "0.0") => value.ToString(format, CultureInfo.InvariantCulture);
        static double P(double[] sorted, double p) => sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)(sorted.Length * p))];

        Console.WriteLine();
        Console.WriteLine("| phase | real seekers | succeeded | open p50 ms | open p99 ms | without puzzle p50 / p99 ms | puzzle p50 / p99 ms | attacker opens/s | admitted | attacker refusals | queue full after | server CPU (cores) | RSS before / peak MiB |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var p in phases)
        {
            var failures = p.SeekerFailures.Count == 0 ? "" : " (" + string.Join(", ", p.SeekerFailures.Select(f => $"{f.Key} {f.Value}")) + ")";
            var refused = string.Join(", ", p.AttackRefusals.OrderByDescending(r => r.Value).Select(r => $"{r.Key} {r.Value}"));
            Console.WriteLine($"| {p.Name} | {p.Seekers} | {F(100.0 * p.Succeeded / Math.Max(1, p.Seekers))} %{failures} | {F(P(p.Latencies, 0.5))} | {F(P(p.Latencies, 0.99))} | " +
                $"{F(P(p.OpenOnly, 0.5))} / {F(P(p.OpenOnly, 0.99))} | {F(P(p.PuzzleTimes, 0.5))} / {F(P(p.PuzzleTimes, 0.99))} | {F(p.Attempts / p.Seconds, "0")} | {p.Admitted} | {refused} | {(p.QueueFullAfter is { } full ? F(full) + " s" : "never")} | " +
                $"{F(p.CpuCores, "0.00")} | {F(p.RssBeforeMiB, "0")} / {F(p.RssPeakMiB, "0")} |");
        }

        var calm = phases[0];
        Console.WriteLine();
        foreach (var p in phases.Skip(1))
        {
            var ratio = P(p.OpenOnly, 0.99) / P(calm.Latencies, 0.99);
            Console.WriteLine($"{p.Name}: success {F(100.0 * p.Succeeded / Math.Max(1, p.Seekers))} % (target ≥ 99 %); open p99 without the puzzle time / calm p99: {F(ratio, "0.00")} (target ≤ 3); " +
                $"puzzle p99 {F(P(p.PuzzleTimes, 0.99), "0")} ms");
        }
    }
}
