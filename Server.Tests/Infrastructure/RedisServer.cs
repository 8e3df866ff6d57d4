using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace TrustLine.Server.Tests.Infrastructure;

/// <summary>
/// A private <c>redis-server</c> process on a loopback port with persistence off. It can be stopped and
/// started again on the same port, to test how nodes ride out a Redis outage.
/// </summary>
public sealed class RedisServer : IAsyncDisposable
{
    private Process? process;
    private readonly string directory;
    private readonly string[] extraArguments;
    private readonly string? configFile;

    private RedisServer(int port, string[] extraArguments, string? configFile)
    {
        Port = port;
        directory = Directory.CreateTempSubdirectory("trustline-redis-").FullName;
        this.extraArguments = extraArguments;
        if (configFile is not null)
        {
            // A sentinel rewrites its configuration file, so it gets a writable one of its own.
            this.configFile = Path.Combine(directory, "redis.conf");
            File.WriteAllText(this.configFile, configFile);
        }
    }

    public int Port { get; }

    /// <summary>The StackExchange.Redis configuration string for this server.</summary>
    public string Configuration => $"127.0.0.1:{Port}";

    public static Task<RedisServer> StartAsync() => StartAsync([]);

    /// <summary>
    /// Starts a redis-server with more arguments (e.g. <c>--replicaof</c>, <c>--cluster-enabled yes</c>), or a
    /// sentinel when <paramref name="sentinelConfig"/> is given (its <c>port</c> line is added here).
    /// </summary>
    public static async Task<RedisServer> StartAsync(string[] extraArguments, string? sentinelConfig = null)
    {
        var port = FreePort.Next();
        var config = sentinelConfig is null ? null : $"port {port.ToString(System.Globalization.CultureInfo.InvariantCulture)}\nbind 127.0.0.1\n{sentinelConfig}";
        var server = new RedisServer(port, extraArguments, config);
        try
        {
            await server.StartAgainAsync();
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }

        return server;
    }

    /// <summary>Whether redis-server runs in <paramref name="mode"/> here ("sentinel" or "cluster"); null when it does, else why not.</summary>
    public static async Task<string?> CannotRunAsync(string mode)
    {
        try
        {
            await using var probe = mode == "sentinel"
                ? await StartAsync([], "sentinel monitor probe 127.0.0.1 1 2\n")
                : await StartAsync(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]);
            return null;
        }
        catch (Exception e) when (e is InvalidOperationException or TimeoutException or OperationCanceledException or System.ComponentModel.Win32Exception)
        {
            return $"redis-server cannot run in {mode} mode here: {e.Message}";
        }
    }

    public async Task StartAgainAsync()
    {
        if (process is { HasExited: false })
        {
            throw new InvalidOperationException("This redis-server is already running.");
        }

        var start = new ProcessStartInfo(FindRedisServer())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = directory,
        };
        string[] arguments = configFile is not null
            ? [configFile, "--sentinel", "--daemonize", "no", "--dir", directory, "--loglevel", "warning"]
            :
            [
                "--port", Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
                "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no",
                "--daemonize", "no", "--protected-mode", "yes",
                "--dir", directory, "--loglevel", "warning",
                .. extraArguments,
            ];
        foreach (var arg in arguments)
        {
            start.ArgumentList.Add(arg);
        }

        process = Process.Start(start) ?? throw new InvalidOperationException("redis-server did not start.");
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        while (!await AnswersPingAsync(deadline.Token))
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"redis-server exited with code {process.ExitCode} on port {Port}.");
            }

            await Task.Delay(50, deadline.Token);
        }
    }

    /// <summary>Kills the process, as a crash would; data is gone (persistence is off).</summary>
    public async Task StopAsync()
    {
        if (process is null || process.HasExited)
        {
            return;
        }

        process.Kill(entireProcessTree: true);
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        process?.Dispose();
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (IOException)
        {
            // A leftover empty temp folder is harmless.
        }
    }

    private async Task<bool> AnswersPingAsync(CancellationToken cancellationToken)
    {
        try
        {
            using var client = new TcpClient();
            await client.ConnectAsync(IPAddress.Loopback, Port, cancellationToken);
            var stream = client.GetStream();
            await stream.WriteAsync("PING\r\n"u8.ToArray(), cancellationToken);
            var buffer = new byte[16];
            var read = await stream.ReadAsync(buffer, cancellationToken);
            return Encoding.ASCII.GetString(buffer, 0, read).StartsWith("+PONG", StringComparison.Ordinal);
        }
        catch (SocketException)
        {
            return false;
        }
        catch (IOException)
        {
            return false;
        }
    }

    private static string FindRedisServer()
    {
        var path = Environment.GetEnvironmentVariable("PATH") ?? "";
        foreach (var dir in path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries).Append("/usr/bin").Append("/usr/sbin"))
        {
            var candidate = Path.Combine(dir, "redis-server");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new InvalidOperationException(
            "redis-server was not found on PATH. The tests run against a real Redis: install it with " +
            "'sudo apt-get install redis-server' (the README's test command does this for you).");
    }
}

internal static class FreePort
{
    public static int Next()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}
