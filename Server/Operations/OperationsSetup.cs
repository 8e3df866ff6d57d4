using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using StackExchange.Redis;
using TrustLine.Server.Operations.Metrics;
using TrustLine.Server.Storage;

namespace TrustLine.Server.Operations;

public static class OperationsSetup
{
    private const string ReadyTag = "ready";

    /// <summary>Health checks, and with <c>Operations:Metrics</c> on, metrics on the management listener.</summary>
    public static IHostApplicationBuilder AddOperations(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<OperationsOptions>().BindConfiguration(OperationsOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddSingleton<IValidateOptions<OperationsOptions>, OperationsOptionsValidator>();
        builder.AddMetrics(builder.Configuration.GetSection(OperationsOptions.Section).Get<OperationsOptions>() ?? new OperationsOptions());

        var checks = builder.Services.AddHealthChecks();
        var redis = builder.Configuration.GetSection(RedisOptions.Section).Get<RedisOptions>() ?? new RedisOptions();
        if (redis.IsConfigured)
        {
            checks.AddCheck<RedisHealthCheck>("redis", HealthStatus.Unhealthy, [ReadyTag]);
        }

        return builder;
    }

    public static IEndpointRouteBuilder MapOperations(this IEndpointRouteBuilder app)
    {
        // Off by default: process figures for the load harness (bench/Relay.Bench), never per-session data.
        if (app.ServiceProvider.GetRequiredService<IOptions<OperationsOptions>>().Value.RuntimeDiagnostics)
        {
            // Commands this node sent to Redis (a script counts once, whatever it runs): the harness's round-trip figure.
            var redis = app.ServiceProvider.GetService<IConnectionMultiplexer>();
            app.MapGet("/debug/runtime", () => Results.Ok(new
            {
                allocatedBytes = GC.GetTotalAllocatedBytes(precise: true),
                workingSetBytes = Environment.WorkingSet,
                gen0 = GC.CollectionCount(0),
                gen2 = GC.CollectionCount(2),
                redisOperations = redis?.OperationCount,
                jitCompiledMethods = System.Runtime.JitInfo.GetCompiledMethodCount(),
            }));
        }

        // Live: the process answers. Ready: it can serve sessions (its store answers).
        app.MapHealthChecks("/health/live", new HealthCheckOptions { Predicate = _ => false });
        app.MapHealthChecks("/health/ready", new HealthCheckOptions { Predicate = c => c.Tags.Contains(ReadyTag) });
        return app;
    }
}

/// <summary>
/// Ready only while a Redis primary answers a PING on the shared connection within the probe timeout: a replica
/// that answers while the primary is down cannot take writes, so the node cannot serve sessions.
/// </summary>
internal sealed class RedisHealthCheck(IConnectionMultiplexer redis, IOptions<RedisOptions> options) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (!redis.IsConnected)
        {
            return HealthCheckResult.Unhealthy("Redis is not connected.");
        }

        try
        {
            await redis.GetDatabase().PingAsync(CommandFlags.DemandMaster).WaitAsync(options.Value.ProbeTimeout, cancellationToken);
            return HealthCheckResult.Healthy();
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            return HealthCheckResult.Unhealthy("No Redis primary answered.");
        }
    }
}
