using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace TrustLine.Server.Tests.Infrastructure;

/// <summary>How to start one server node for a test.</summary>
public sealed record NodeSettings
{
    /// <summary>Redis configuration string, or null for the embedded store.</summary>
    public string? Redis { get; init; }

    /// <summary>Key prefix; several nodes of one scenario share it.</summary>
    public string KeyPrefix { get; init; } = TestRedis.NewPrefix();

    public string Environment { get; init; } = "Production";

    /// <summary>Extra configuration, in <c>Section:Key</c> form.</summary>
    public IReadOnlyDictionary<string, string?> Settings { get; init; } = new Dictionary<string, string?>();

    /// <summary>Receives every log entry of the node, at every level.</summary>
    public LogCapture? Logs { get; init; }

    /// <summary>The node's clock (a FakeTimeProvider drives its timers), or null for the system clock.</summary>
    public TimeProvider? Time { get; init; }

    /// <summary>Last changes to the node's services, after its own (e.g. a store that fails on cue).</summary>
    public Action<IServiceCollection>? Services { get; init; }

    public static NodeSettings WithRedis(string? keyPrefix = null) => new()
    {
        Redis = TestRedis.Server.Configuration,
        KeyPrefix = keyPrefix ?? TestRedis.NewPrefix(),
    };

    public static NodeSettings Embedded() => new();
}

/// <summary>
/// The real server (Kestrel on a free loopback port) inside the test process. Start several against one
/// Redis to test scale-out.
/// </summary>
public sealed class TrustLineNode : IAsyncDisposable
{
    private readonly NodeFactory factory;

    private TrustLineNode(NodeFactory factory, Uri baseAddress)
    {
        this.factory = factory;
        BaseAddress = baseAddress;
        Http = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(10) };
    }

    public Uri BaseAddress { get; }

    public HttpClient Http { get; }

    public IServiceProvider Services => factory.Services;

    public static async Task<TrustLineNode> StartAsync(NodeSettings settings)
    {
        var factory = new NodeFactory(settings);
        try
        {
            // StartServer blocks while the host starts; keep it off the test's thread and bounded.
            await Task.Run(factory.StartServer).WaitAsync(TimeSpan.FromSeconds(30));
            var address = factory.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            return new TrustLineNode(factory, new Uri(address));
        }
        catch
        {
            await factory.DisposeAsync();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await factory.DisposeAsync();
    }

    private sealed class NodeFactory : WebApplicationFactory<Program>
    {
        private readonly NodeSettings settings;

        public NodeFactory(NodeSettings settings)
        {
            this.settings = settings;
            UseKestrel(0);
        }

        protected override void ConfigureWebHost(IWebHostBuilder builder)
        {
            var values = new Dictionary<string, string?>
            {
                ["Redis:Configuration"] = settings.Redis ?? "",
                ["Redis:KeyPrefix"] = settings.KeyPrefix,
            };
            foreach (var (key, value) in settings.Settings)
            {
                values[key] = value;
            }

            // UseSetting, not ConfigureAppConfiguration: the server reads some settings while it is being
            // built (which store, whether the nodes share Redis), before deferred configuration applies.
            builder.UseEnvironment(settings.Environment);
            foreach (var (key, value) in values)
            {
                builder.UseSetting(key, value);
            }
            builder.ConfigureTestServices(services =>
            {
                if (settings.Time is { } time)
                {
                    services.AddSingleton(time);
                }

                settings.Services?.Invoke(services);
            });
            if (settings.Logs is { } logs)
            {
                builder.ConfigureLogging(logging =>
                {
                    logging.AddProvider(logs);
                    logging.SetMinimumLevel(LogLevel.Trace);
                });
            }
        }
    }
}
