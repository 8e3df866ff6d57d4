using System.Collections.Concurrent;
using Microsoft.AspNetCore.SignalR;
using StackExchange.Redis;
using TrustLine.Protocol.Contracts;
using TrustLine.Server.Responders;
using TrustLine.Server.Sessions;
using TrustLine.Server.Storage;

namespace TrustLine.Server.Relay;

/// <summary>
/// Where each party of a session is connected, cached on every node. The cache is filled from the store
/// once per session and node, and kept right by one pub/sub message per reconnect or end (never per
/// envelope). Envelopes then go to a connection id: local when the peer is on this node, through the
/// SignalR backplane when it is not.
/// </summary>
public sealed class PeerRoutes(
    ISessionStore store,
    IHubContext<SeekerHub, ISeekerClient> seekers,
    IHubContext<ResponderHub, IResponderClient> responders,
    RouteChannel channel)
{
    private readonly ConcurrentDictionary<Guid, Route> routes = new();
    private readonly ConcurrentDictionary<Guid, ConcurrentDictionary<SessionLink, byte>> links = new();

    public ISeekerClient? Seeker(string? connectionId) => connectionId is null ? null : seekers.Clients.Client(connectionId);

    public IResponderClient? Responder(string? connectionId) => connectionId is null ? null : responders.Clients.Client(connectionId);

    /// <summary>The current connection id of <paramref name="party"/> in the session, or null while it is away.</summary>
    public async ValueTask<string?> ConnectionOfAsync(Guid sessionId, Party party)
    {
        if (!routes.TryGetValue(sessionId, out var route))
        {
            var record = await store.GetAsync(sessionId);
            if (record is null)
            {
                return null;
            }

            route = routes.GetOrAdd(sessionId, new Route(record.SeekerConnection, record.ResponderConnection));
        }

        return party == Party.Seeker ? route.Seeker : route.Responder;
    }

    /// <summary>Keeps a local link so an end anywhere can stop it.</summary>
    public void Track(SessionLink link) => links.GetOrAdd(link.SessionId, _ => new()).TryAdd(link, 0);

    public void Untrack(SessionLink link)
    {
        if (links.TryGetValue(link.SessionId, out var set))
        {
            set.TryRemove(link, out _);
        }
    }

    /// <summary>A party connected (or went away): tell every node.</summary>
    public Task MovedAsync(Guid sessionId, Party party, string? connectionId)
    {
        Apply(new RouteMessage(RouteChange.Moved, sessionId, party, connectionId));
        return channel.PublishAsync(new RouteMessage(RouteChange.Moved, sessionId, party, connectionId));
    }

    /// <summary>The session ended: every node forgets its route and stops its links.</summary>
    public Task EndedAsync(Guid sessionId)
    {
        Apply(new RouteMessage(RouteChange.Ended, sessionId, Party.Seeker, null));
        return channel.PublishAsync(new RouteMessage(RouteChange.Ended, sessionId, Party.Seeker, null));
    }

    internal void Apply(RouteMessage message)
    {
        if (message.Change == RouteChange.Ended)
        {
            routes.TryRemove(message.SessionId, out _);
            if (links.TryRemove(message.SessionId, out var set))
            {
                foreach (var link in set.Keys)
                {
                    link.Ended = true;
                }
            }

            return;
        }

        // Only update a route this node already caches; an uncached one is read fresh when needed.
        while (routes.TryGetValue(message.SessionId, out var old))
        {
            var updated = message.Party == Party.Seeker ? old with { Seeker = message.ConnectionId } : old with { Responder = message.ConnectionId };
            if (routes.TryUpdate(message.SessionId, updated, old))
            {
                return;
            }
        }
    }

    private sealed record Route(string? Seeker, string? Responder);
}

public enum RouteChange
{
    Moved,
    Ended,
}

public sealed record RouteMessage(RouteChange Change, Guid SessionId, Party Party, string? ConnectionId)
{
    public string Encode() => $"{(Change == RouteChange.Ended ? 'e' : 'm')}|{SessionId:N}|{(Party == Party.Seeker ? 's' : 'r')}|{ConnectionId}";

    public static RouteMessage? Decode(string text)
    {
        var parts = text.Split('|');
        if (parts.Length != 4 || !Guid.TryParseExact(parts[1], "N", out var id))
        {
            return null;
        }

        return new RouteMessage(parts[0] == "e" ? RouteChange.Ended : RouteChange.Moved, id,
            parts[2] == "s" ? Party.Seeker : Party.Responder, parts[3].Length == 0 ? null : parts[3]);
    }
}

/// <summary>Carries route changes between nodes: Redis pub/sub, or nothing on a single node.</summary>
public sealed class RouteChannel(IServiceProvider services, StoreMode mode, RedisKeys keys)
{
    private readonly IConnectionMultiplexer? redis = mode.Kind == StoreKind.Redis ? services.GetRequiredService<IConnectionMultiplexer>() : null;

    public Task PublishAsync(RouteMessage message) =>
        redis is null ? Task.CompletedTask : redis.GetSubscriber().PublishAsync(keys.Routes, message.Encode());

    public Task SubscribeAsync(Action<RouteMessage> onMessage) =>
        redis is null
            ? Task.CompletedTask
            : redis.GetSubscriber().SubscribeAsync(keys.Routes, (_, value) =>
            {
                if (RouteMessage.Decode(value.ToString()) is { } message)
                {
                    onMessage(message);
                }
            });
}

/// <summary>
/// Subscribes this node to route changes at start. While Redis is unreachable it keeps trying (the node starts
/// and reports not ready meanwhile) rather than failing the start.
/// </summary>
internal sealed class RouteSubscription(RouteChannel channel, PeerRoutes routes, TimeProvider time) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await channel.SubscribeAsync(routes.Apply);
                return;
            }
            catch (Exception e) when (e is RedisException or TimeoutException)
            {
                await Task.Delay(TimeSpan.FromSeconds(1), time, stoppingToken);
            }
        }
    }
}
