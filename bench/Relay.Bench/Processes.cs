using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using NSec.Cryptography;
using StackExchange.Redis;
using TrustLine.Protocol.Crypto;

namespace TrustLine.Relay.Bench;

/// <summary>A server under test as its own process: CPU time from /proc, memory and allocations from its diagnostics endpoint.</summary>
internal sealed class Node : IAsyncDisposable
{
    private readonly Process process;

    private Node(Process process, Uri baseAddress)
    {
        this.process = process;
        BaseAddress = baseAddress;
    }

    public Uri BaseAddress { get; }

    public int ProcessId => process.Id;

    /// <summary>A TrustLine node from the server build beside the harness.</summary>
    public static Task<Node> TrustLineAsync(Dictionary<string, string> settings)
    {
        var args = new List<string> { Path.Combine(AppContext.BaseDirectory, "TrustLine.Server.dll") };
        args.AddRange(settings.Select(s => $"--{s.Key}={s.Value}"));
        args.Add("--Operations:RuntimeDiagnostics=true");
        args.Add("--Logging:LogLevel:Default=Warning");
        // The relay workloads measure the relay at full speed: the per-connection call rate, the admission
        // puzzle and the per-address caps on places and connections are off unless a workload sets them (the flood workload does).
        foreach (var (key, value) in new Dictionary<string, string>
        {
            ["Limits:CallBurst"] = "100000",
            ["Limits:CallsPerSecond"] = "100000",
            ["Admission:OpenRateThreshold"] = "10000",
            ["Admission:QueueFillThreshold"] = "1",
            ["Limits:PlacesPerAddress"] = "0",
            ["Limits:ConnectionsPerAddress"] = "0",
        })
        {
            if (!settings.ContainsKey(key))
            {
                args.Add($"--{key}={value}");
            }
        }

        return StartAsync(args);
    }

    /// <summary>A baseline server: this harness in serve mode.</summary>
    public static Task<Node> BaselineAsync(string kind, string? redis)
    {
        var args = new List<string> { Path.Combine(AppContext.BaseDirectory, "Relay.Bench.dll"), "--serve", kind };
        if (redis is not null)
        {
            args.AddRange(["--redis", redis]);
        }

        return StartAsync(args);
    }

    private static async Task<Node> StartAsync(List<string> args)
    {
        var port = FreePort();
        var start = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = AppContext.BaseDirectory };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        start.ArgumentList.Add("--urls");
        start.ArgumentList.Add($"http://127.0.0.1:{port}");
        start.ArgumentList.Add("--port");
        start.ArgumentList.Add(port.ToString(CultureInfo.InvariantCulture));
        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        var process = Process.Start(start) ?? throw new InvalidOperationException("A server process did not start.");
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var node = new Node(process, new Uri($"http://127.0.0.1:{port}"));
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

            if (process.HasExited)
            {
                throw new InvalidOperationException($"A server process exited with code {process.ExitCode}.");
            }

            await Task.Delay(100);
        }

        throw new TimeoutException("A server did not become ready.");
    }

    public TimeSpan CpuTime()
    {
        process.Refresh();
        return process.TotalProcessorTime;
    }

    public async Task<(long Allocated, long WorkingSet, long? RedisOperations, long JitCompiledMethods)> RuntimeAsync()
    {
        using var http = new HttpClient();
        var figures = await http.GetFromJsonAsync<RuntimeFigures>(new Uri(BaseAddress, "/debug/runtime"));
        return (figures!.AllocatedBytes, figures.WorkingSetBytes, figures.RedisOperations, figures.JitCompiledMethods);
    }

    public long ResidentBytes()
    {
        // VmRSS from /proc: what the process really holds, independent of the runtime's own view.
        foreach (var line in File.ReadLines($"/proc/{process.Id}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
            }
        }

        return 0;
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

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private sealed record RuntimeFigures(long AllocatedBytes, long WorkingSetBytes, long? RedisOperations, long JitCompiledMethods);
}

/// <summary>A private redis-server with persistence off, and its command statistics.</summary>
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
        var port = Node.FreePort();
        var start = new ProcessStartInfo("redis-server") { UseShellExecute = false, RedirectStandardOutput = true };
        foreach (var arg in new[] { "--port", port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no" })
        {
            start.ArgumentList.Add(arg);
        }

        Process process;
        try
        {
            process = Process.Start(start)!;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            throw new InvalidOperationException("redis-server is not installed; run ./scripts/test.sh once, or apt-get install redis-server.");
        }

        process.OutputDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        var connection = await ConnectionMultiplexer.ConnectAsync($"127.0.0.1:{port},allowAdmin=true,abortConnect=false");
        for (var i = 0; i < 100 && !connection.IsConnected; i++)
        {
            await Task.Delay(50);
        }

        return new RedisProcess(process, connection, $"127.0.0.1:{port}");
    }

    /// <summary>redis-server's CPU time (user and system) so far.</summary>
    public TimeSpan CpuTime()
    {
        process.Refresh();
        return process.TotalProcessorTime;
    }

    public async Task<Dictionary<string, long>> CommandStatsAsync()
    {
        var server = connection.GetServer(connection.GetEndPoints()[0]);
        var stats = new Dictionary<string, long>();
        foreach (var pair in (await server.InfoAsync("commandstats")).SelectMany(g => g))
        {
            var calls = pair.Value.Split(',').First(p => p.StartsWith("calls=", StringComparison.Ordinal))["calls=".Length..];
            stats[pair.Key.Replace("cmdstat_", "", StringComparison.Ordinal)] = long.Parse(calls, CultureInfo.InvariantCulture);
        }

        return stats;
    }

    public static Dictionary<string, long> Delta(Dictionary<string, long> before, Dictionary<string, long> after) =>
        after.Select(a => (a.Key, Value: a.Value - before.GetValueOrDefault(a.Key)))
            .Where(c => c.Value > 0 && c.Key is not ("info" or "ping"))
            .ToDictionary(c => c.Key, c => c.Value);

    public async ValueTask DisposeAsync()
    {
        await connection.DisposeAsync();
        process.Kill();
        await process.WaitForExitAsync();
        process.Dispose();
    }
}

/// <summary>An organisation with fresh keys for the run.</summary>
internal sealed class BenchOrganisation : IDisposable
{
    private readonly Key root = Key.Create(SignatureAlgorithm.Ed25519);
    private readonly Key issuer = Key.Create(SignatureAlgorithm.Ed25519);
    private readonly byte[] responderSeed = System.Security.Cryptography.RandomNumberGenerator.GetBytes(32);
    private readonly byte[] orgId = System.Security.Cryptography.RandomNumberGenerator.GetBytes(16);
    private readonly Certificate issuerCertificate;
    private readonly Certificate responderCertificate;

    public BenchOrganisation()
    {
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        using var responder = Key.Import(SignatureAlgorithm.Ed25519, responderSeed, KeyBlobFormat.RawPrivateKey);
        issuerCertificate = Certificate.Issue(root, CertificateRole.Issuer, orgId, issuer.PublicKey.Export(KeyBlobFormat.RawPublicKey), now - 60, now + (80 * 86400));
        responderCertificate = Certificate.Issue(issuer, CertificateRole.Responder, orgId, responder.PublicKey.Export(KeyBlobFormat.RawPublicKey), now - 60, now + (10 * 86400));
        Pin = new OrganisationPin(orgId, [root.PublicKey.Export(KeyBlobFormat.RawPublicKey)]);
    }

    public OrganisationPin Pin { get; }

    public ResponderCredentials Credentials() =>
        new(Key.Import(SignatureAlgorithm.Ed25519, responderSeed, KeyBlobFormat.RawPrivateKey), issuerCertificate, responderCertificate);

    public Dictionary<string, string> Settings(string? redis) => new()
    {
        ["Organisations:bench:Id"] = Convert.ToHexStringLower(orgId),
        ["Organisations:bench:Name"] = "Bench",
        ["Organisations:bench:Languages:0"] = "nl",
        ["Organisations:bench:Roots:0"] = Convert.ToHexStringLower(root.PublicKey.Export(KeyBlobFormat.RawPublicKey)),
        ["Organisations:bench:QueueCapacity"] = "100000",
        ["Redis:Configuration"] = redis ?? "",
        ["Redis:KeyPrefix"] = "bench" + Guid.NewGuid().ToString("N")[..8],
    };

    public void Dispose()
    {
        root.Dispose();
        issuer.Dispose();
    }
}
