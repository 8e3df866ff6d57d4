using System.Security.Cryptography;
using StackExchange.Redis;
using TrustLine.Server.Tests.Infrastructure;

namespace TrustLine.Server.Tests;

/// <summary>
/// One real <c>redis-server</c> for the whole test run, with one shared connection. Tests keep apart by
/// using their own key prefix (<see cref="NewPrefix"/>), so nothing needs flushing between them.
/// </summary>
[SetUpFixture]
public sealed class TestRedis
{
    private static RedisServer? server;
    private static ConnectionMultiplexer? connection;

    public static RedisServer Server => server ?? throw new InvalidOperationException("The test Redis has not started.");

    public static IConnectionMultiplexer Connection => connection ?? throw new InvalidOperationException("The test Redis has not started.");

    /// <summary>A key prefix no other test uses.</summary>
    public static string NewPrefix() => "t" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6));

    [OneTimeSetUp]
    public async Task StartAsync()
    {
        server = await RedisServer.StartAsync();
        var options = ConfigurationOptions.Parse(server.Configuration);
        options.AllowAdmin = true; // INFO, SCAN and CONFIG for the privacy and benchmark checks
        connection = await ConnectionMultiplexer.ConnectAsync(options);
    }

    [OneTimeTearDown]
    public async Task StopAsync()
    {
        if (connection is not null)
        {
            await connection.DisposeAsync();
        }

        if (server is not null)
        {
            await server.DisposeAsync();
        }
    }
}
