using System.Collections.Concurrent;
using System.Globalization;
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
/// envelope). Envelopes then go to the party's address: local when the peer is on this node, through that
/// node's channel (<see cref="NodeBus"/>) when it is not.
/// </summary>
/// <remarks>
/// Each party's route carries the session record's epoch (it grows with every connection change), so the
/// newest wins whatever order a store read and messages arrive in: a message older than the cached route
/// changes nothing, and a message that arrives while the store read is in flight is kept in a placeholder
/// and not overwritten by the older read.
/// </remarks>
public sealed class PeerRoutes(
    ISessionStore store,
    IHubContext<SeekerHub, ISeekerClient> seekers,
    IHubContext<ResponderHub, IResponderClient> responders,
    RouteChannel channel)
{
    private readonly ConcurrentDictionary<Guid, Route> routes = new();
    /// <summary>
    /// This node's links per session: one or two (a seeker and a responder), so a small array replaced whole on each
    /// change rather than a concurrent set per session (a waiting seeker holds one; a set cost ~500 B).
    /// </summary>
    private readonly ConcurrentDictionary<Guid, SessionLink[]> links = new();

    public ISeekerClient? Seeker(string? connectionId) => connectionId is null ? null : seekers.Clients.Client(connectionId);

    public IResponderClient? Responder(string? connectionId) => connectionId is null ? null : responders.Clients.Client(connectionId);

    /// <summary>The current connection id of <paramref name="party"/> in the session, or null while it is away.</summary>
    public async ValueTask<string?> ConnectionOfAsync(Guid sessionId, Party party)
    {
        if (routes.TryGetValue(sessionId, out var cached) && cached.Knows(party))
        {
            return cached.Of(party);
        }

        routes.TryAdd(sessionId, Route.Unknown);
        var record = await store.GetAsync(sessionId);
        if (record is null)
        {
            routes.TryRemove(sessionId, out _);
            return null;
        }

        var read = new Route(record.SeekerConnection, record.Epoch, record.ResponderConnection, record.Epoch);
        while (routes.TryGetValue(sessionId, out var current))
        {
            var merged = current.Merge(read);
            if (merged == current || routes.TryUpdate(sessionId, merged, current))
            {
                return merged.Of(party);
            }
        }

        return null; // it ended while the read was in flight
    }

    /// <summary>
    /// Caches a route this node has just written to the store itself (the seeker's connection at the open, epoch 0),
    /// so the first message to it needs no read. Any later change carries a higher epoch and wins.
    /// </summary>
    public void Known(Guid sessionId, Party party, string connectionId, long epoch) =>
        routes.AddOrUpdate(sessionId, _ => Route.Unknown.With(party, connectionId, epoch), (_, old) => old.With(party, connectionId, epoch));

    /// <summary>
    /// The session's <c>msg2</c> is stored: this node's links to it (the seeker's, when it is connected here)
    /// may send without reading the record to find out.
    /// </summary>
    public void Answered(Guid sessionId)
    {
        if (links.TryGetValue(sessionId, out var held))
        {
            foreach (var link in held)
            {
                link.Answered = true;
            }
        }
    }

    /// <summary>
    /// The session's seeker holds a live link on this node: it is connected, so not away, and a take need not read
    /// the record to tell. (A drop untracks the link before it records the seeker away.)
    /// </summary>
    public bool SeekerConnectedHere(Guid sessionId)
    {
        if (links.TryGetValue(sessionId, out var held))
        {
            foreach (var link in held)
            {
                if (!link.Ended && link.Owner is { Party: Party.Seeker })
                {
                    return true;
                }
            }
        }

        return false;
    }

    /// <summary>Keeps a local link so an end anywhere can stop it.</summary>
    public void Track(SessionLink link) =>
        links.AddOrUpdate(link.SessionId, static (_, added) => [added], static (_, held, added) => held.Contains(added) ? held : [.. held, added], link);

    public void Untrack(SessionLink link)
    {
        while (links.TryGetValue(link.SessionId, out var held) && held.Contains(link))
        {
            SessionLink[] rest = [.. held.Where(other => other != link)];
            if (rest.Length == 0 ? links.TryRemove(KeyValuePair.Create(link.SessionId, held)) : links.TryUpdate(link.SessionId, rest, held))
            {
                return;
            }
        }
    }

    /// <summary>A party connected (or went away) at <paramref name="epoch"/> of the session's record: tell every node.</summary>
    public Task MovedAsync(Guid sessionId, Party party, string? connectionId, long epoch)
    {
        var message = new RouteMessage(RouteChange.Moved, sessionId, party, connectionId, epoch);
        Apply(message);
        return channel.PublishAsync(message);
    }

    /// <summary>The session ended: every node forgets its route and stops its links.</summary>
    public Task EndedAsync(Guid sessionId)
    {
        var message = new RouteMessage(RouteChange.Ended, sessionId, Party.Seeker, null, 0);
        Apply(message);
        return channel.PublishAsync(message);
    }

    /// <summary>
    /// The store lost the session's record (found missing while this node still held a live link): every node ends
    /// its links and tells its own parties <see cref="EndReasons.StoreLost"/>. The record is gone, so nobody else
    /// knows where the parties are connected; each node knows its own connections.
    /// </summary>
    public async Task LostAsync(Guid sessionId)
    {
        var message = new RouteMessage(RouteChange.Lost, sessionId, Party.Seeker, null, 0);
        await TellLostAsync(sessionId);
        try
        {
            await channel.PublishAsync(message);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            // The other nodes find it missing themselves when the store is back (StoreWatch).
        }
    }

    internal void Apply(RouteMessage message)
    {
        if (message.Change is RouteChange.Ended or RouteChange.Lost)
        {
            if (message.Change == RouteChange.Lost)
            {
                _ = TellLostAsync(message.SessionId);
            }
            else
            {
                Stop(message.SessionId);
            }

            return;
        }

        // Only update a route this node caches (or is reading); an uncached one is read fresh when needed.
        while (routes.TryGetValue(message.SessionId, out var old))
        {
            var updated = old.With(message.Party, message.ConnectionId, message.Epoch);
            if (updated == old || routes.TryUpdate(message.SessionId, updated, old))
            {
                return;
            }
        }
    }

    /// <summary>Forgets the session's route and ends this node's links to it.</summary>
    private void Stop(Guid sessionId)
    {
        routes.TryRemove(sessionId, out _);
        if (links.TryRemove(sessionId, out var held))
        {
            foreach (var link in held)
            {
                link.Ended = true;
            }
        }
    }

    /// <summary>
    /// Tells this node's parties of the session why it ended, then ends the links: a call that meets the ended link
    /// is refused only after its connection has been told (a connection's messages keep their order).
    /// </summary>
    private async Task TellLostAsync(Guid sessionId)
    {
        List<SessionLink> live = links.TryGetValue(sessionId, out var held) ? [.. held.Where(link => !link.Ended)] : [];
        foreach (var link in live)
        {
            link.Lost = true;
            if (link.Owner is not { } owner)
            {
                continue;
            }

            var end = new SessionEnd { SessionId = link.SessionId.ToByteArray(bigEndian: true), Reason = EndReasons.StoreLost };
            try
            {
                await (owner.Party == Party.Seeker
                    ? seekers.Clients.Client(owner.ConnectionId).SessionEnded(end)
                    : responders.Clients.Client(owner.ConnectionId).SessionEnded(end));
            }
            catch (Exception e) when (e is RedisException or TimeoutException or ObjectDisposedException or InvalidOperationException)
            {
                // Local connections need no store; a connection that is closing hears nothing more.
            }
        }

        Stop(sessionId);
    }

    /// <summary>The links this node holds for live sessions (for <see cref="StoreWatch"/>).</summary>
    internal IEnumerable<SessionLink> LocalLinks() => links.Values.SelectMany(held => held).Where(link => !link.Ended && link.Owner is not null);

    /// <summary>Each party's connection and the epoch it is known at; −1 while not known yet.</summary>
    private sealed record Route(string? Seeker, long SeekerEpoch, string? Responder, long ResponderEpoch)
    {
        public static readonly Route Unknown = new(null, -1, null, -1);

        public bool Knows(Party party) => (party == Party.Seeker ? SeekerEpoch : ResponderEpoch) >= 0;

        public string? Of(Party party) => party == Party.Seeker ? Seeker : Responder;

        public Route With(Party party, string? connection, long epoch) => party == Party.Seeker
            ? epoch > SeekerEpoch ? this with { Seeker = connection, SeekerEpoch = epoch } : this
            : epoch > ResponderEpoch ? this with { Responder = connection, ResponderEpoch = epoch } : this;

        public Route Merge(Route other) => With(Party.Seeker, other.Seeker, other.SeekerEpoch).With(Party.Responder, other.Responder, other.ResponderEpoch);
    }
}

public enum RouteChange
{
    Moved,
    Ended,

    /// <summary>The store lost the session: each node tells its own parties.</summary>
    Lost,
}

/// <summary>A route change between nodes; <see cref="Epoch"/> is the session record's epoch after a move.</summary>
public sealed record RouteMessage(RouteChange Change, Guid SessionId, Party Party, string? ConnectionId, long Epoch)
{
    public string Encode() =>
        string.Create(CultureInfo.InvariantCulture, $"{Change switch { RouteChange.Ended => 'e', RouteChange.Lost => 'l', _ => 'm' }}|{SessionId:N}|{(Party == Party.Seeker ? 's' : 'r')}|{ConnectionId}|{Epoch}");

    /// <summary>Reads a message; every node reads every one, so only the connection id becomes a string.</summary>
    public static RouteMessage? Decode(string text)
    {
        Span<Range> parts = stackalloc Range[6];
        var span = text.AsSpan();
        if (span.Split(parts, '|') != 5 || !Guid.TryParseExact(span[parts[1]], "N", out var id)
            || !long.TryParse(span[parts[4]], NumberStyles.None, CultureInfo.InvariantCulture, out var epoch))
        {
            return null;
        }

        var connection = span[parts[3]];
        return new RouteMessage(span[parts[0]] switch { "e" => RouteChange.Ended, "l" => RouteChange.Lost, _ => RouteChange.Moved }, id,
            span[parts[2]] is "s" ? Party.Seeker : Party.Responder, connection.IsEmpty ? null : connection.ToString(), epoch);
    }
}

/// <summary>Carries route changes between nodes: Redis pub/sub, or nothing on a single node.</summary>
public sealed class RouteChannel(IServiceProvider services, StoreMode mode, RedisKeys keys)
{
    private readonly IConnectionMultiplexer? redis = mode.Kind == StoreKind.Redis ? services.GetRequiredService<IConnectionMultiplexer>() : null;

    public Task PublishAsync(RouteMessage message) =>
        redis is null ? Task.CompletedTask : redis.GetSubscriber().PublishAsync(keys.Routes, message.Encode());

    public Task SubscribeAsync(Action<RouteMessage> onMessage)
    {
        if (redis is null)
        {
            return Task.CompletedTask;
        }

        var subscriber = redis.GetSubscriber();
        return Subscriptions.SubscribeOrForgetAsync(subscriber, keys.Routes, async () =>
        {
            await subscriber.SubscribeAsync(keys.Routes, (_, value) =>
            {
                if (RouteMessage.Decode(value.ToString()) is { } message)
                {
                    onMessage(message);
                }
            });
            return true;
        });
    }
}

/// <summary>
/// Subscribes this node to route changes and to its node channels (<see cref="NodeBus"/>) at start. While Redis is unreachable it keeps trying (the node starts
/// and reports not ready meanwhile) rather than failing the start.
/// </summary>
internal sealed class RouteSubscription(RouteChannel channel, PeerRoutes routes, NodeBus bus, TimeProvider time) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var routesHeard = false;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                if (!routesHeard)
                {
                    await channel.SubscribeAsync(routes.Apply);
                    routesHeard = true;
                }

                await bus.SubscribeAsync();
                return;
            }
            catch (Exception e) when (e is RedisException or TimeoutException)
            {
                await Task.Delay(TimeSpan.FromSeconds(1), time, stoppingToken);
            }
        }
    }
}
