using Mediator;
using Microsoft.AspNetCore.SignalR;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using TrustLine.Server.Relay;

namespace TrustLine.Server.Operations.Metrics;

public static class MetricsSetup
{
    // ASP.NET Core's, Kestrel's and SignalR's own meters.
    private static readonly string[] FrameworkMeters =
    [
        "Microsoft.AspNetCore.Hosting",
        "Microsoft.AspNetCore.Server.Kestrel",
        "Microsoft.AspNetCore.Http.Connections",
        "Microsoft.AspNetCore.SignalR",
    ];

    /// <summary>
    /// Label keys kept from the framework's meters. Every other key is dropped before export, whatever a
    /// library adds later: a Kestrel <c>server.address</c>, say, never reaches a scrape.
    /// </summary>
    internal static readonly IReadOnlySet<string> FrameworkLabelKeys = new HashSet<string>(StringComparer.Ordinal)
    {
        "http.request.method", "http.response.status_code", "http.route", "url.scheme", "network.protocol.name",
        "network.protocol.version", "network.transport", "network.type", "error.type", "tls.protocol.version",
        "signalr.connection.status", "signalr.transport", "aspnetcore.routing.is_fallback", "aspnetcore.routing.match_status",
        "gc.heap.generation", "dotnet.gc.heap.generation", "dotnet.gc.heap.segment", "cpu.mode", "dotnet.assembly.name", "exception.type",
    };

    /// <summary>
    /// The TrustLine meter and the Mediator behaviour that feeds it; with <c>Operations:Metrics</c> on, also the
    /// presence filter, the store sampler, and OpenTelemetry's Prometheus exporter for the management listener.
    /// </summary>
    public static IHostApplicationBuilder AddMetrics(this IHostApplicationBuilder builder, OperationsOptions options)
    {
        builder.Services.AddSingleton(ManagementListener.Configure(builder, options));

        // The meter and the behaviour are always there: with no exporter listening, recording costs next to nothing.
        builder.Services.AddSingleton<TrustLineMetrics>();
        // First of all behaviours, so the outermost: the refusals of the admission and per-address checks, which
        // are behaviours too, are timed and counted like the handlers' own.
        builder.Services.Insert(0, ServiceDescriptor.Singleton(typeof(IPipelineBehavior<,>), typeof(MetricsBehaviour<,>)));
        if (!options.Metrics)
        {
            return builder;
        }

        var keep = TrustLineMetrics.LabelKeys.Concat(FrameworkLabelKeys).ToArray();
        builder.Services.Configure<HubOptions>(o => o.AddSingletonFilter<PresenceFilter>());
        builder.Services.AddSingleton<PresenceFilter>();
        builder.Services.AddHostedService<MetricsSampler>();
        builder.Services.AddOpenTelemetry()
            // No random instance id: Prometheus names the target itself.
            .ConfigureResource(resource => resource.AddService("trustline", autoGenerateServiceInstanceId: false))
            .WithMetrics(metrics => metrics
            .AddMeter(TrustLineMetrics.MeterName)
            .AddMeter(FrameworkMeters)
            .AddRuntimeInstrumentation()
            .AddView(instrument => new MetricStreamConfiguration { TagKeys = keep })
            .AddPrometheusExporter());
        return builder;
    }

    /// <summary>
    /// On the management port: <c>/metrics</c>, and the health endpoints; anything else there is 404. The
    /// public port has no <c>/metrics</c> at all.
    /// </summary>
    public static IApplicationBuilder UseManagementListener(this IApplicationBuilder app)
    {
        var listener = app.ApplicationServices.GetRequiredService<ManagementListener>();
        if (listener.Ports.Count == 0)
        {
            return app;
        }

        app.UseOpenTelemetryPrometheusScrapingEndpoint(
            meterProvider: null,
            predicate: context => listener.IsManagement(context) && context.Request.Path == "/metrics",
            path: null,
            configureBranchedPipeline: null,
            optionsName: null);
        app.Use((context, next) =>
        {
            if (listener.IsManagement(context) && !context.Request.Path.StartsWithSegments("/health", StringComparison.Ordinal))
            {
                context.Response.StatusCode = StatusCodes.Status404NotFound;
                return Task.CompletedTask;
            }

            return next(context);
        });
        return app;
    }
}
