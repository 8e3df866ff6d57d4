using Microsoft.Extensions.Options;
using Microsoft.Extensions.DependencyInjection.Extensions;
using StackExchange.Redis;

namespace TrustLine.Server.Storage;

public static class StoreSetup
{
    /// <summary>
    /// Chooses the session store: Redis when <c>Redis:Configuration</c> is set, otherwise the embedded
    /// single-node store. Registers the one shared <see cref="IConnectionMultiplexer"/> when Redis is used.
    /// </summary>
    public static IHostApplicationBuilder AddStore(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<RedisOptions>()
            .BindConfiguration(RedisOptions.Section)
            .ValidateDataAnnotations()
            .ValidateOnStart();
        builder.Services.AddSingleton<IValidateOptions<RedisOptions>, RedisOptionsValidator>();

        var redis = builder.Configuration.GetSection(RedisOptions.Section).Get<RedisOptions>() ?? new RedisOptions();
        if (redis.IsConfigured)
        {
            builder.Services.AddSingleton<IConnectionMultiplexer>(sp =>
            {
                var options = sp.GetRequiredService<IOptions<RedisOptions>>().Value;
                var configuration = ConfigurationOptions.Parse(options.Configuration!);
                // Boot even while Redis is down: readiness reports it, and the multiplexer reconnects by itself.
                configuration.AbortOnConnectFail = false;
                // Exception texts must never carry key names (they contain session ids) into logs.
                configuration.IncludeDetailInExceptions = false;
                // While no connection to a key's primary is up (a failover, a restart), fail at once with
                // `unavailable`, which clients retry, rather than hold the command for the whole timeout: a
                // failover then costs its own length, not that plus the timeout.
                configuration.BacklogPolicy = BacklogPolicy.FailFast;
                // The client's replies are read on the .NET thread pool, where the awaiting handler then runs, rather
                // than on the client's own reader threads, which hand every reply over to the pool: that hand-over
                // cost 50–90 µs of CPU per command at low concurrency (BENCHMARKS.md). Every path here is async, so
                // the pool is never blocked waiting for Redis; `Redis:DedicatedSocketThreads` restores the client's default.
                if (!options.DedicatedSocketThreads)
                {
                    configuration.SocketManager = SocketManager.ThreadPool;
                }
                return ConnectionMultiplexer.Connect(configuration);
            });
            builder.Services.AddSingleton(new StoreMode(StoreKind.Redis));
            builder.Services.AddSingleton<RedisSessionStore>();
            builder.Services.AddSingleton<ISessionStore>(sp => sp.GetRequiredService<RedisSessionStore>());
            builder.Services.AddSingleton<IAccessStore>(sp => sp.GetRequiredService<RedisSessionStore>());
        }
        else
        {
            builder.Services.AddSingleton(new StoreMode(StoreKind.Embedded));
            builder.Services.AddSingleton<EmbeddedSessionStore>();
            builder.Services.AddSingleton<ISessionStore>(sp => sp.GetRequiredService<EmbeddedSessionStore>());
            builder.Services.AddSingleton<IAccessStore>(sp => sp.GetRequiredService<EmbeddedSessionStore>());
        }

        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.AddSingleton(sp => new RedisKeys(sp.GetRequiredService<IOptions<RedisOptions>>().Value.KeyPrefix));

        builder.Services.AddHostedService<StoreAnnouncer>();
        return builder;
    }
}

public enum StoreKind
{
    Embedded,
    Redis,
}

/// <summary>Which store this node runs on; fixed at start-up.</summary>
public sealed record StoreMode(StoreKind Kind);

/// <summary>Says once, at start, which store the node uses, so an operator never mistakes a single node for a cluster.</summary>
internal sealed class StoreAnnouncer(StoreMode mode, ILogger<StoreAnnouncer> logger, IServiceProvider services) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (mode.Kind == StoreKind.Redis)
        {
            // Resolve now so the connection starts at boot rather than at the first request.
            _ = services.GetRequiredService<IConnectionMultiplexer>();
            StoreLog.UsingRedis(logger);
        }
        else
        {
            StoreLog.UsingEmbedded(logger);
        }

        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

internal static partial class StoreLog
{
    [LoggerMessage(EventId = 100, Level = LogLevel.Information,
        Message = "Store: embedded single-node in-process store (no Redis:Configuration set); state is lost on restart and this node cannot scale out.")]
    public static partial void UsingEmbedded(ILogger logger);

    [LoggerMessage(EventId = 101, Level = LogLevel.Information,
        Message = "Store: Redis (shared by all nodes; node channels on the same connection).")]
    public static partial void UsingRedis(ILogger logger);
}
