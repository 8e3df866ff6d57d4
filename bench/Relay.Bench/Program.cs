using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using NSec.Cryptography;
using StackExchange.Redis;
using TrustLine.Protocol.Client;
using TrustLine.Protocol.Crypto;

// Relay load harness: real server processes on loopback, a private redis-server, the real client SDK.
// Usage: dotnet run -c Release --project bench/Relay.Bench -- [--quick] [--pairs N] [--envelopes M]
var quick = args.Contains("--quick");
var pairs = Option("--pairs", quick ? 10 : 50);
var perPair = Option("--envelopes", quick ? 200 : 1000);

Console.WriteLine($"TrustLine relay bench: {pairs} pairs × {perPair} envelopes of 299 bytes, closed loop; machine: {Environment.ProcessorCount} cores, {Environment.OSVersion}.");
await using var redis = await RedisProcess.StartAsync();
var results = new List<Result>();
foreach (var variant in new[] { ("embedded, 1 node", false, 1), ("redis, 1 node", true, 1), ("redis, 2 nodes (pairs split)", true, 2) })
{
    results.Add(await RunAsync(variant.Item1, variant.Item2 ? redis : null, variant.Item3, pairs, perPair));
}

Console.WriteLine();
Console.WriteLine($"{"variant",-30} {"env/s",10} {"server CPU µs/env",18} {"Redis cmds/env",15} {"p50 ms",8} {"p99 ms",8}");
foreach (var r in results)
{
    Console.WriteLine($"{r.Name,-30} {r.PerSecond,10:0} {r.CpuMicrosPerEnvelope,18:0.0} {(r.CommandsPerEnvelope is { } c ? c.ToString("0.00", CultureInfo.InvariantCulture) : "-"),15} {r.P50,8:0.00} {r.P99,8:0.00}");
}

foreach (var r in results.Where(r => r.Commands is not null))
{
    Console.WriteLine($"{r.Name}: Redis commands over the measured run: {string.Join(", ", r.Commands!.OrderByDescending(c => c.Value).Select(c => $"{c.Key}={c.Value}"))}");
}

Console.WriteLine($"two-node/one-node throughput (redis): {results[2].PerSecond / results[1].PerSecond:0.00}");
return 0;

int Option(string name, int fallback)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
}

static async Task<Result> RunAsync(string name, RedisProcess? redis, int nodeCount, int pairs, int perPair)
{
    using var org = BenchOrganisation.Create();
    var settings = org.Settings();
    settings["Redis:Configuration"] = redis?.Configuration ?? "";
    settings["Redis:KeyPrefix"] = "bench" + Guid.NewGuid().ToString("N")[..8];
    var nodes = new List<ServerNode>();
    for (var i = 0; i < nodeCount; i++)
    {
        nodes.Add(await ServerNode.StartAsync(settings));
    }

    try
    {
        var sessions = new List<(SeekerClient Seeker, ResponderSession Session, ResponderClient Responder, Counter Received)>();
        for (var i = 0; i < pairs; i++)
        {
            var seeker = new SeekerClient(nodes[i % nodeCount].BaseAddress, org.Pin);
            var connected = new TaskCompletionSource();
            seeker.StateChanged += s => { if (s == SeekerState.Connected) { connected.TrySetResult(); } };
            await seeker.OpenAsync("nl");
            var responder = await ResponderClient.SignInAsync(nodes[(i + 1) % nodeCount].BaseAddress, org.Credentials());
            var session = (await responder.TakeNextAsync())!;
            var counter = new Counter();
            session.MessageReceived += _ => counter.Increment();
            await connected.Task.WaitAsync(TimeSpan.FromSeconds(30));
            sessions.Add((seeker, session, responder, counter));
        }

        // Warm-up, then the measured run.
        await Task.WhenAll(sessions.Select(s => SendAsync(s.Seeker, 20, null)));
        await WaitAsync(() => sessions.All(s => s.Received.Value >= 20));
        var before = redis is null ? null : await redis.CommandStatsAsync();
        var cpuBefore = nodes.Aggregate(TimeSpan.Zero, (sum, n) => sum + n.CpuTime());
        var latencies = new List<double>[pairs];
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(sessions.Select((s, i) => SendAsync(s.Seeker, perPair, latencies[i] = [])));
        await WaitAsync(() => sessions.All(s => s.Received.Value >= 20 + perPair));
        clock.Stop();
        var cpu = nodes.Aggregate(TimeSpan.Zero, (sum, n) => sum + n.CpuTime()) - cpuBefore;
        var after = redis is null ? null : await redis.CommandStatsAsync();
        var total = pairs * perPair;
        Dictionary<string, long>? commands = null;
        if (before is not null && after is not null)
        {
            commands = after.ToDictionary(a => a.Key, a => a.Value - before.GetValueOrDefault(a.Key))
                .Where(c => c.Value > 0 && c.Key != "info").ToDictionary(c => c.Key, c => c.Value);
        }

        foreach (var s in sessions)
        {
            await s.Seeker.DisposeAsync();
            await s.Responder.DisposeAsync();
        }

        var all = latencies.SelectMany(l => l).Order().ToList();
        return new Result(name, total / clock.Elapsed.TotalSeconds, cpu.TotalMicroseconds / total,
            commands is null ? null : commands.Values.Sum() / (double)total, commands,
            all[(int)(all.Count * 0.50)], all[(int)(all.Count * 0.99)]);
    }
    finally
    {
        foreach (var node in nodes)
        {
            await node.DisposeAsync();
        }
    }
}

// Each send awaits the server's answer (stored and forwarded): latency here is the seeker's send round trip.
static async Task SendAsync(SeekerClient seeker, int count, List<double>? latencies)
{
    for (var i = 0; i < count; i++)
    {
        var start = Stopwatch.GetTimestamp();
        await seeker.SendTextAsync("bench");
        latencies?.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
    }
}

static async Task WaitAsync(Func<bool> condition)
{
    var deadline = Stopwatch.StartNew();
    while (!condition())
    {
        if (deadline.Elapsed > TimeSpan.FromMinutes(2))
        {
            throw new TimeoutException("The relay did not deliver every envelope within two minutes.");
        }

        await Task.Delay(10);
    }
}

internal sealed record Result(string Name, double PerSecond, double CpuMicrosPerEnvelope, double? CommandsPerEnvelope, Dictionary<string, long>? Commands, double P50, double P99);

internal sealed class Counter
{
    private int value;

    public int Value => Volatile.Read(ref value);

    public void Increment() => Interlocked.Increment(ref value);
}

/// <summary>An organisation with fresh keys for the run.</summary>
internal sealed class BenchOrganisation : IDisposable
{
    private readonly Key root = Key.Create(SignatureAlgorithm.Ed25519);
    private readonly Key issuer = Key.Create(SignatureAlgorithm.Ed25519);
    private readonly byte[] responderSeed = System.Security.Cryptography.RandomNumberGenerator.GetBytes(32);
    private readonly byte[] orgId = System.Security.Cryptography.RandomNumberGenerator.GetBytes(16);
    private Certificate issuerCertificate = null!;
    private Certificate responderCertificate = null!;

    public OrganisationPin Pin => new(orgId, [root.PublicKey.Export(KeyBlobFormat.RawPublicKey)]);

    public static BenchOrganisation Create()
    {
        var org = new BenchOrganisation();
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        using var responder = Key.Import(SignatureAlgorithm.Ed25519, org.responderSeed, KeyBlobFormat.RawPrivateKey);
        org.issuerCertificate = Certificate.Issue(org.root, CertificateRole.Issuer, org.orgId, org.issuer.PublicKey.Export(KeyBlobFormat.RawPublicKey), now - 60, now + (80 * 86400));
        org.responderCertificate = Certificate.Issue(org.issuer, CertificateRole.Responder, org.orgId, responder.PublicKey.Export(KeyBlobFormat.RawPublicKey), now - 60, now + (10 * 86400));
        return org;
    }

    public ResponderCredentials Credentials() =>
        new(Key.Import(SignatureAlgorithm.Ed25519, responderSeed, KeyBlobFormat.RawPrivateKey), issuerCertificate, responderCertificate);

    public Dictionary<string, string> Settings() => new()
    {
        ["Organisations:bench:Id"] = Convert.ToHexStringLower(orgId),
        ["Organisations:bench:Name"] = "Bench",
        ["Organisations:bench:Languages:0"] = "nl",
        ["Organisations:bench:Roots:0"] = Convert.ToHexStringLower(root.PublicKey.Export(KeyBlobFormat.RawPublicKey)),
        ["Organisations:bench:QueueCapacity"] = "10000",
        ["Logging:LogLevel:Default"] = "Warning",
    };

    public void Dispose()
    {
        root.Dispose();
        issuer.Dispose();
    }
}

/// <summary>A TrustLine node as its own process, with its CPU time read from /proc.</summary>
internal sealed class ServerNode : IAsyncDisposable
{
    private readonly Process process;

    private ServerNode(Process process, Uri baseAddress)
    {
        this.process = process;
        BaseAddress = baseAddress;
    }

    public Uri BaseAddress { get; }

    public static async Task<ServerNode> StartAsync(Dictionary<string, string> settings)
    {
        var port = FreePort();
        var start = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = AppContext.BaseDirectory };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "TrustLine.Server.dll"));
        start.ArgumentList.Add("--urls");
        start.ArgumentList.Add($"http://127.0.0.1:{port}");
        foreach (var (key, value) in settings)
        {
            start.ArgumentList.Add($"--{key}={value}");
        }

        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        var process = Process.Start(start)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var node = new ServerNode(process, new Uri($"http://127.0.0.1:{port}"));
        using var http = new HttpClient();
        for (var i = 0; i < 300; i++)
        {
            try
            {
                using var ready = await http.GetAsync(new Uri(node.BaseAddress, "/health/ready"));
                if (ready.IsSuccessStatusCode)
                {
                    return node;
                }
            }
            catch (HttpRequestException)
            {
            }

            await Task.Delay(100);
        }

        throw new TimeoutException("A server node did not become ready.");
    }

    public TimeSpan CpuTime()
    {
        process.Refresh();
        return process.TotalProcessorTime;
    }

    public async ValueTask DisposeAsync()
    {
        process.Kill(entireProcessTree: true);
        await process.WaitForExitAsync();
        process.Dispose();
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

/// <summary>A private redis-server with persistence off.</summary>
internal sealed class RedisProcess : IAsyncDisposable
{
    private readonly Process process;
    private readonly ConnectionMultiplexer connection;

    private RedisProcess(Process process, ConnectionMultiplexer connection, string configuration)
    {
        this.process = process;
        this.connection = connection;
        Configuration = configuration;
    }

    public string Configuration { get; }

    public static async Task<RedisProcess> StartAsync()
    {
        var port = ServerNode.FreePort();
        var start = new ProcessStartInfo("redis-server") { UseShellExecute = false, RedirectStandardOutput = true };
        foreach (var arg in new[] { "--port", port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no" })
        {
            start.ArgumentList.Add(arg);
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("redis-server did not start; install it (apt-get install redis-server).");
        process.OutputDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        var configuration = $"127.0.0.1:{port},allowAdmin=true,abortConnect=false";
        var connection = await ConnectionMultiplexer.ConnectAsync(configuration);
        for (var i = 0; i < 100 && !connection.IsConnected; i++)
        {
            await Task.Delay(50);
        }

        return new RedisProcess(process, connection, $"127.0.0.1:{port}");
    }

    public async Task<Dictionary<string, long>> CommandStatsAsync()
    {
        var server = connection.GetServer(connection.GetEndPoints()[0]);
        var info = await server.InfoAsync("commandstats");
        var stats = new Dictionary<string, long>();
        foreach (var pair in info.SelectMany(g => g))
        {
            // cmdstat_set -> calls=123,usec=...
            var calls = pair.Value.Split(',').First(p => p.StartsWith("calls=", StringComparison.Ordinal))["calls=".Length..];
            stats[pair.Key.Replace("cmdstat_", "", StringComparison.Ordinal)] = long.Parse(calls, CultureInfo.InvariantCulture);
        }

        return stats;
    }

    public async ValueTask DisposeAsync()
    {
        await connection.DisposeAsync();
        process.Kill();
        await process.WaitForExitAsync();
        process.Dispose();
    }
}
