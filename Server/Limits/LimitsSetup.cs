using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.Options;
using TrustLine.Protocol.Contracts;
using TrustLine.Server.Relay;

namespace TrustLine.Server.Limits;

/// <summary>
/// Every way in has a limit: connections, request headers and bodies, silent and half-open connections, the
/// hub handshake, frames, parallel and repeated hub calls, and which web pages may call at all. None of them
/// keys on an address or any other trait of a person.
/// </summary>
public static class LimitsSetup
{
    /// <summary>The largest hub frame: the largest envelope (16427 bytes) and its MessagePack framing.</summary>
    public const int MaxHubMessageBytes = 16427 + 1024;

    public static IHostApplicationBuilder AddLimits(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<LimitOptions>().BindConfiguration(LimitOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddSingleton<IValidateOptions<LimitOptions>, LimitOptionsValidator>();
        builder.Services.AddOptions<KestrelServerOptions>().Configure<IOptions<LimitOptions>>((kestrel, options) =>
        {
            var limits = options.Value;
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxConcurrentConnections = limits.MaxConnections;
            kestrel.Limits.MaxConcurrentUpgradedConnections = limits.MaxConnections;
            kestrel.Limits.MaxRequestBodySize = limits.MaxRequestBodyBytes;
            kestrel.Limits.MaxRequestHeadersTotalSize = 16 * 1024;
            kestrel.Limits.MaxRequestHeaderCount = 50;
            kestrel.Limits.MaxRequestLineSize = 4 * 1024;
            // A connection that sends nothing (not even a first request line) is dropped quickly.
            kestrel.Limits.KeepAliveTimeout = TimeSpan.FromSeconds(20);
            kestrel.Limits.RequestHeadersTimeout = TimeSpan.FromSeconds(10);
        });
        builder.Services.AddOptions<HubOptions>().Configure<IOptions<LimitOptions>>((hub, options) =>
        {
            var limits = options.Value;
            hub.MaximumReceiveMessageSize = MaxHubMessageBytes;
            hub.MaximumParallelInvocationsPerClient = 1;
            hub.HandshakeTimeout = limits.HandshakeTimeout;
            hub.KeepAliveInterval = limits.KeepAliveInterval;
            hub.ClientTimeoutInterval = limits.ClientTimeout;
            hub.AddSingletonFilter<CallRateFilter>();
        });
        builder.Services.AddSingleton<CallRateFilter>();
        builder.Services.AddSingleton<SilentConnections>();
        builder.Services.AddSingleton<AddressTags>();
        builder.Services.AddSingleton<PlaceHolders>();
        builder.Services.AddSingleton<ConnectionsPerAddress>();
        builder.Services.AddHostedService<SilentConnectionSweeper>();
        return builder;
    }

    /// <summary>Before anything else: refuse foreign web origins and SignalR's negotiate (clients skip it).</summary>
    public static IApplicationBuilder UseLimits(this IApplicationBuilder app) => app.UseMiddleware<OriginAndTransportGate>();
}

internal sealed class LimitOptionsValidator : IValidateOptions<LimitOptions>
{
    public ValidateOptionsResult Validate(string? name, LimitOptions options)
    {
        if (options.KeepAliveInterval >= options.ClientTimeout)
        {
            return ValidateOptionsResult.Fail("Limits:KeepAliveInterval must be shorter than Limits:ClientTimeout.");
        }

        if (options.TrustedProxies.FirstOrDefault(p => AddressTags.ParseProxy(p) is null) is { } proxy)
        {
            return ValidateOptionsResult.Fail($"Limits:TrustedProxies holds '{proxy}', which is neither an IP address such as 127.0.0.1 nor a network such as 172.30.0.0/24.");
        }

        var bad = options.AllowedOrigins.FirstOrDefault(o => !OriginAndTransportGate.TryNormalise(o, out _));
        return bad is null
            ? ValidateOptionsResult.Success
            : ValidateOptionsResult.Fail($"Limits:AllowedOrigins holds '{bad}', which is not an origin such as https://help.example.org.");
    }
}

/// <summary>
/// A web page of another site must not be able to open sessions or sign in through its visitors' browsers:
/// a request that carries an <c>Origin</c> header is let through only from the server's own origin or an
/// allowed one. Negotiation is refused too: every client connects straight to the WebSocket.
/// </summary>
internal sealed class OriginAndTransportGate(RequestDelegate next, IOptionsMonitor<LimitOptions> options, AddressTags addresses, ConnectionsPerAddress connections)
{
    public async Task InvokeAsync(HttpContext context)
    {
        var path = context.Request.Path;
        var guarded = path.StartsWithSegments(Routes.SeekerHub) || path.StartsWithSegments(Routes.ResponderHub)
            || path.StartsWithSegments("/v1/responders");
        if (!guarded)
        {
            await next(context);
            return;
        }

        if (path.Value!.EndsWith("/negotiate", StringComparison.Ordinal))
        {
            await RefuseAsync(context, StatusCodes.Status404NotFound, ErrorCodes.BadRequest, "Connect with WebSockets directly; negotiation is off.");
            return;
        }

        var origin = context.Request.Headers.Origin.ToString();
        if (origin.Length > 0 && !IsAllowed(origin, context.Request))
        {
            await RefuseAsync(context, StatusCodes.Status403Forbidden, ErrorCodes.ForbiddenOrigin, "Pages of this origin may not use this server.");
            return;
        }

        using var lease = connections.Enter(path.StartsWithSegments(Routes.SeekerHub) ? addresses.Of(context) : null);
        if (!lease.Admitted)
        {
            await RefuseAsync(context, StatusCodes.Status429TooManyRequests, ErrorCodes.TooManyConnections,
                "Too many connections from this network are open; please try again in a moment.");
            return;
        }

        await next(context); // for a WebSocket, this returns when the connection closes (and the lease is given back)
    }

    internal static bool TryNormalise(string origin, out string normalised)
    {
        normalised = "";
        if (!Uri.TryCreate(origin, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https") || uri.PathAndQuery != "/")
        {
            return false;
        }

        normalised = uri.GetLeftPart(UriPartial.Authority).ToLowerInvariant();
        return true;
    }

    private bool IsAllowed(string origin, HttpRequest request)
    {
        if (!TryNormalise(origin, out var normalised))
        {
            return false;
        }

        // The server's own pages: same host and port as the request (a TLS proxy in front may change the scheme).
        var own = new Uri(normalised).Authority;
        if (string.Equals(own, request.Host.Value, StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }

        return options.CurrentValue.AllowedOrigins.Any(a => TryNormalise(a, out var allowed) && allowed == normalised);
    }

    private static Task RefuseAsync(HttpContext context, int status, string code, string message)
    {
        context.Response.StatusCode = status;
        return context.Response.WriteAsJsonAsync(new ErrorResponse { Code = code, Message = message });
    }
}

/// <summary>
/// A token bucket per connection, kept in the connection's own items: a client calling faster than
/// <see cref="LimitOptions.CallsPerSecond"/> beyond a burst of <see cref="LimitOptions.CallBurst"/> is refused
/// <c>rate_limited</c> until it slows down. Nothing is kept beyond the connection.
/// </summary>
internal sealed class CallRateFilter(IOptions<LimitOptions> options, TimeProvider time, SilentConnections silent) : IHubFilter
{
    private const string ItemKey = "trustline:calls";

    public ValueTask<object?> InvokeMethodAsync(HubInvocationContext context, Func<HubInvocationContext, ValueTask<object?>> next)
    {
        silent.Heard(context.Context);
        var items = context.Context.Items;
        if (!items.TryGetValue(ItemKey, out var value) || value is not Bucket bucket)
        {
            bucket = new Bucket(options.Value.CallBurst, time.GetTimestamp());
            items[ItemKey] = bucket;
        }

        if (!bucket.TryTake(options.Value, time))
        {
            throw new Sessions.RefusedException(ErrorCodes.RateLimited, "Too many calls too fast; slow down and try again.");
        }

        return next(context);
    }

    private sealed class Bucket(double tokens, long stamp)
    {
        private double tokens = tokens;
        private long stamp = stamp;

        public bool TryTake(LimitOptions limits, TimeProvider time)
        {
            // One invocation at a time per connection (MaximumParallelInvocationsPerClient = 1), so no lock is needed.
            var now = time.GetTimestamp();
            tokens = Math.Min(limits.CallBurst, tokens + (time.GetElapsedTime(stamp, now).TotalSeconds * limits.CallsPerSecond));
            stamp = now;
            if (tokens < 1)
            {
                return false;
            }

            tokens--;
            return true;
        }
    }
}
