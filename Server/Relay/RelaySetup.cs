using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Protocol;
using Microsoft.Extensions.DependencyInjection.Extensions;
using TrustLine.Protocol.Contracts;
using TrustLine.Server.Limits;
using TrustLine.Server.Responders;
using TrustLine.Server.Sessions;

namespace TrustLine.Server.Relay;

public static class RelaySetup
{
    /// <summary>
    /// The hubs, the relay and its collaborators: SignalR with MessagePack (with TrustLine's own lifetime manager,
    /// which reaches connections on other nodes through <see cref="NodeBus"/>), the mediator, responder sign-in and token
    /// authentication, and the session reaper.
    /// </summary>
    public static IHostApplicationBuilder AddRelay(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<SessionLimits>().BindConfiguration(SessionLimits.Section).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddOptions<ResponderOptions>().BindConfiguration(ResponderOptions.Section).ValidateDataAnnotations().ValidateOnStart();

        var signalR = builder.Services
            .AddSignalR(o =>
            {
                o.AddSingletonFilter<RefusalFilter>();
                o.EnableDetailedErrors = false;
                // MessagePack only: the JSON protocol is not offered (every client speaks MessagePack).
                o.SupportedProtocols = [RefusingHubProtocol.ProtocolName];
                // Frame size, timeouts and call limits: Server/Limits.
            });
        // The MessagePack protocol, registered as ours so a refusal is written as "code: sentence".
        builder.Services.AddOptions<MessagePackHubProtocolOptions>();
        builder.Services.AddSingleton<IHubProtocol, RefusingHubProtocol>();
        // Messages to connections on other nodes, and group messages, go through TrustLine's own node channels
        // (NodeBus) rather than the SignalR Redis backplane, which subscribed a channel for every connection.
        builder.Services.AddSingleton<ThisNode>();
        builder.Services.AddSingleton<NodeBus>();
        builder.Services.AddSingleton(typeof(HubLifetimeManager<>), typeof(NodeHubLifetimeManager<>));

        builder.Services.AddSingleton<RefusalFilter>();
        builder.Services.AddSingleton<RefusalLog>();
        builder.Services.AddSingleton<ResponderGuard>();
        builder.Services.AddSingleton<ResponderGrantFilter>();
        builder.Services.AddHostedService<ResponderGuardSweeper>();
        builder.Services.Configure<HubOptions<ResponderHub>>(o => o.AddSingletonFilter<ResponderGrantFilter>());
        builder.Services.AddMediator(o => o.ServiceLifetime = ServiceLifetime.Singleton);
        builder.Services.TryAddSingleton<SendEnvelopeHandler>(); // the hubs call it directly: the hot path
        builder.Services.AddSingleton<RouteChannel>();
        builder.Services.AddSingleton<PeerRoutes>();
        builder.Services.AddSingleton<QueueNotifier>();
        builder.Services.AddSingleton<SessionEnding>();
        builder.Services.AddSingleton<Departures>();
        builder.Services.AddHostedService<RouteSubscription>();
        builder.Services.AddSingleton<StoreWatch>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<StoreWatch>());
        builder.Services.AddHostedService<SessionReaper>();

        builder.Services.AddAuthentication().AddScheme<Microsoft.AspNetCore.Authentication.AuthenticationSchemeOptions, ResponderToken>(ResponderToken.SchemeName, null);
        builder.Services.AddSingleton<Microsoft.AspNetCore.Authentication.IAuthenticationSchemeProvider, NamedSchemeOnly>();
        builder.Services.AddAuthorization();
        return builder;
    }

    public static IEndpointRouteBuilder MapRelay(this IEndpointRouteBuilder app)
    {
        // WebSockets only: no negotiation round trip and no sticky sessions between nodes.
        // A peer that does not answer the server's close frame is cut after CloseTimeout, not SignalR's 5 s: a
        // connection closed for silence, or for never finishing the handshake, holds its memory no longer.
        app.MapHub<SeekerHub>(Routes.SeekerHub, o =>
        {
            o.Transports = HttpTransportType.WebSockets;
            o.WebSockets.CloseTimeout = LimitOptions.CloseTimeout;
        });
        app.MapHub<ResponderHub>(Routes.ResponderHub, o =>
        {
            o.Transports = HttpTransportType.WebSockets;
            o.WebSockets.CloseTimeout = LimitOptions.CloseTimeout;
            o.CloseOnAuthenticationExpiration = true;
        });
        app.MapSignIn();
        return app;
    }
}
