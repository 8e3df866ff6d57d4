using System.Diagnostics;
using System.Globalization;

namespace TrustLine.Server.Tests.Infrastructure;

/// <summary>
/// Redis deployments of several processes on loopback, for failure tests: a primary with a replica watched by
/// three sentinels, or a cluster of three primaries with a replica each. Disposing stops every process, also
/// when the set-up failed half-way.
/// </summary>
public sealed class RedisSetup : IAsyncDisposable
{
    public const string SentinelService = "tl";

    private readonly List<RedisServer> servers = [];

    private RedisSetup()
    {
    }

    /// <summary>The StackExchange.Redis configuration string the server nodes use.</summary>
    public string Configuration { get; private set; } = "";

    public IReadOnlyList<RedisServer> Servers => servers;

    /// <summary>Primary, replica and three sentinels (quorum 2, a primary is down after 1 s): ready to fail over.</summary>
    public static async Task<RedisSetup> SentinelAsync()
    {
        var setup = new RedisSetup();
        try
        {
            var primary = await setup.AddAsync([]);
            var replica = await setup.AddAsync(["--replicaof", "127.0.0.1", Text(primary.Port)]);
            var config = $"sentinel monitor {SentinelService} 127.0.0.1 {Text(primary.Port)} 2\n" +
                         $"sentinel down-after-milliseconds {SentinelService} 1000\n" +
                         $"sentinel failover-timeout {SentinelService} 4000\n" +
                         $"sentinel parallel-syncs {SentinelService} 1\n";
            List<RedisServer> sentinels = [];
            for (var i = 0; i < 3; i++)
            {
                var sentinel = await RedisServer.StartAsync([], config);
                setup.servers.Add(sentinel);
                sentinels.Add(sentinel);
            }

            // A failover needs the replica in sync and every sentinel aware of the replica and of the others.
            await Eventually.TrueAsync(async () =>
                (await RedisCli.RunAsync(replica.Port, "INFO", "replication")).Contains("master_link_status:up", StringComparison.Ordinal),
                TimeSpan.FromSeconds(20), "the replica is in sync");
            foreach (var sentinel in sentinels)
            {
                await Eventually.TrueAsync(async () =>
                    (await RedisCli.RunAsync(sentinel.Port, "SENTINEL", "REPLICAS", SentinelService)).Contains(Text(replica.Port), StringComparison.Ordinal)
                    && CountLines(await RedisCli.RunAsync(sentinel.Port, "SENTINEL", "SENTINELS", SentinelService), "runid") >= 2,
                    TimeSpan.FromSeconds(30), "every sentinel knows the replica and the other sentinels");
            }

            setup.Configuration = string.Join(",", sentinels.Select(s => s.Configuration)) + $",serviceName={SentinelService}";
            return setup;
        }
        catch
        {
            await setup.DisposeAsync();
            throw;
        }
    }

    /// <summary>Three primaries with one replica each (node timeout 1 s), all slots covered.</summary>
    public static async Task<RedisSetup> ClusterAsync()
    {
        var setup = new RedisSetup();
        try
        {
            for (var i = 0; i < 6; i++)
            {
                await setup.AddAsync(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "1000"]);
            }

            await RedisCli.RunAsync(setup.servers[0].Port,
                ["--cluster", "create", .. setup.servers.Select(s => s.Configuration), "--cluster-replicas", "1", "--cluster-yes"]);
            foreach (var server in setup.servers)
            {
                await Eventually.TrueAsync(async () =>
                    (await RedisCli.RunAsync(server.Port, "CLUSTER", "INFO")).Contains("cluster_state:ok", StringComparison.Ordinal),
                    TimeSpan.FromSeconds(30), "every cluster node sees the cluster ok");
            }

            await Eventually.TrueAsync(async () => CountLines(await RedisCli.RunAsync(setup.servers[0].Port, "CLUSTER", "NODES"), "slave") == 3
                && (await Task.WhenAll(setup.servers.Select(s => RedisCli.RunAsync(s.Port, "INFO", "replication"))))
                    .Count(info => info.Contains("master_link_status:up", StringComparison.Ordinal)) == 3,
                TimeSpan.FromSeconds(30), "every primary has a replica in sync");
            setup.Configuration = string.Join(",", setup.servers.Select(s => s.Configuration));
            return setup;
        }
        catch
        {
            await setup.DisposeAsync();
            throw;
        }
    }

    /// <summary>The cluster primary that holds <paramref name="hashTag"/>'s slot.</summary>
    public async Task<RedisServer> ClusterPrimaryOfAsync(string hashTag)
    {
        var slot = int.Parse((await RedisCli.RunAsync(servers[0].Port, "CLUSTER", "KEYSLOT", hashTag)).Trim(), CultureInfo.InvariantCulture);
        foreach (var line in (await RedisCli.RunAsync(servers[0].Port, "CLUSTER", "NODES")).Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = line.Split(' ');
            if (!parts[2].Contains("master", StringComparison.Ordinal))
            {
                continue;
            }

            foreach (var range in parts.Skip(8))
            {
                var bounds = range.Split('-');
                var from = int.Parse(bounds[0], CultureInfo.InvariantCulture);
                var to = bounds.Length > 1 ? int.Parse(bounds[1], CultureInfo.InvariantCulture) : from;
                if (slot >= from && slot <= to)
                {
                    var port = parts[1].Split('@')[0].Split(':')[1];
                    return servers.Single(s => Text(s.Port) == port);
                }
            }
        }

        throw new InvalidOperationException("No cluster primary holds that slot.");
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var server in servers)
        {
            await server.DisposeAsync();
        }
    }

    private async Task<RedisServer> AddAsync(string[] arguments)
    {
        var server = await RedisServer.StartAsync(arguments);
        servers.Add(server);
        return server;
    }

    private static string Text(int port) => port.ToString(CultureInfo.InvariantCulture);

    private static int CountLines(string text, string word) =>
        text.Split('\n').Count(line => line.Contains(word, StringComparison.Ordinal));
}

/// <summary>Runs <c>redis-cli</c> against a loopback port, bounded in time.</summary>
public static class RedisCli
{
    public static async Task<string> RunAsync(int port, params string[] arguments)
    {
        var start = new ProcessStartInfo("redis-cli")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add("-h");
        start.ArgumentList.Add("127.0.0.1");
        start.ArgumentList.Add("-p");
        start.ArgumentList.Add(port.ToString(CultureInfo.InvariantCulture));
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException("redis-cli did not start.");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        try
        {
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(20));
        }
        catch (TimeoutException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }

        return await output + await error;
    }
}
