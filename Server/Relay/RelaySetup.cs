using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.Options;
using StackExchange.Redis;
using TrustLine.Protocol.Contracts;
using TrustLine.Server.Responders;
using TrustLine.Server.Sessions;

namespace TrustLine.Server.Relay;

public static class RelaySetup
{
    /// <summary>
    /// The hubs, the relay and its collaborators: SignalR with MessagePack (and the Redis backplane on the
    /// shared connection when Redis is configured), the mediator, responder sign-in and token
    /// authentication, and the session reaper.
    /// </summary>
    public static IHostApplicationBuilder AddRelay(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<SessionLimits>().BindConfiguration(SessionLimits.Section).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddOptions<ResponderOptions>().BindConfiguration(ResponderOptions.Section).ValidateDataAnnotations().ValidateOnStart();

        var signalR = builder.Services
            .AddSignalR(o =>
            {
                o.AddFilter<OutcomeFilter>();
                o.EnableDetailedErrors = false;
                // The largest envelope is 16427 bytes; leave room for framing, refuse anything bigger.
                o.MaximumReceiveMessageSize = 20 * 1024;
            })
            .AddMessagePackProtocol();
        var redis = builder.Configuration.GetSection(Storage.RedisOptions.Section).Get<Storage.RedisOptions>() ?? new Storage.RedisOptions();
        if (redis.IsConfigured)
        {
            signalR.AddStackExchangeRedis();
            builder.Services.AddOptions<Microsoft.AspNetCore.SignalR.StackExchangeRedis.RedisOptions>()
                .Configure<IConnectionMultiplexer, IOptions<Storage.RedisOptions>>((o, multiplexer, ours) =>
                {
                    // One multiplexer for store, backplane and health; channels carry the deployment's prefix.
                    o.ConnectionFactory = _ => Task.FromResult(multiplexer);
                    o.Configuration.ChannelPrefix = RedisChannel.Literal(ours.Value.KeyPrefix + ":signalr");
                });
        }

        builder.Services.AddSingleton<OutcomeFilter>();
        builder.Services.AddMediator(o => o.ServiceLifetime = ServiceLifetime.Singleton);
        builder.Services.AddSingleton<RouteChannel>();
        builder.Services.AddSingleton<PeerRoutes>();
        builder.Services.AddSingleton<QueueNotifier>();
        builder.Services.AddSingleton<SessionEnding>();
        builder.Services.AddSingleton<Departures>();
        builder.Services.AddHostedService<RouteSubscription>();
        builder.Services.AddHostedService<SessionReaper>();

        builder.Services.AddAuthentication().AddScheme<Microsoft.AspNetCore.Authentication.AuthenticationSchemeOptions, ResponderToken>(ResponderToken.SchemeName, null);
        builder.Services.AddAuthorization();
        return builder;
    }

    public static IEndpointRouteBuilder MapRelay(this IEndpointRouteBuilder app)
    {
        // WebSockets only: no negotiation round trip and no sticky sessions between nodes.
        app.MapHub<SeekerHub>(Routes.SeekerHub, o => o.Transports = HttpTransportType.WebSockets);
        app.MapHub<ResponderHub>(Routes.ResponderHub, o => o.Transports = HttpTransportType.WebSockets);
        app.MapSignIn();
        return app;
    }
}
