using System.Collections.Concurrent;
using Microsoft.AspNetCore.SignalR;
using StackExchange.Redis;
using TrustLine.Protocol.Contracts;
using TrustLine.Server.Organisations;
using TrustLine.Server.Relay;
using TrustLine.Server.Responders;
using TrustLine.Server.Sessions;
using TrustLine.Server.Storage;

namespace TrustLine.Server.Offers;

/// <summary>
/// Routes waiting seekers to counsellors for organisations with offers on (docs/architecture.md, routing): after
/// each event that may allow an offer (a seeker joins or comes back, a counsellor becomes available, a chat ends,
/// an offer is declined, lapses or is withdrawn) it offers the queue's head, one session to one counsellor at a
/// time, and tells the counsellor. Pumps are coalesced per organisation and read only the queue's head.
/// </summary>
public sealed class OfferRouter(
    IOfferStore offers,
    ISessionStore sessions,
    OrganisationDirectory organisations,
    IHubContext<ResponderHub, IResponderClient> responders,
    TimeProvider time,
    ILogger<OfferRouter> logger)
{
    /// <summary>How long a presence counts without a refresh: a node that died leaves none behind for long.</summary>
    internal static readonly TimeSpan PresenceLifetime = TimeSpan.FromMinutes(2);

    /// <summary>How often a node refreshes the presence of its connections.</summary>
    internal static readonly TimeSpan PresenceRefresh = TimeSpan.FromSeconds(30);

    /// <summary>How long a session stays held for a take in progress (a taker that fails frees it after this).</summary>
    internal static readonly TimeSpan HoldTime = TimeSpan.FromSeconds(10);

    /// <summary>
    /// An offer lapses this long after its time: an answer that arrives just late is told <c>offer_expired</c>, not
    /// <c>no_offer</c>.
    /// </summary>
    internal static readonly TimeSpan LapseGrace = TimeSpan.FromSeconds(1);

    /// <summary>How many sessions of the queue's head one pump considers.</summary>
    internal const int Head = 16;

    private readonly ConcurrentDictionary<string, ConnectionState> present = new();
    private readonly ConcurrentDictionary<string, PumpState> pumps = new();

    /// <summary>The organisation's rules, or null when it has offers off (then nothing here applies).</summary>
    public OfferRules? RulesOf(byte[] orgId) => organisations.Find(orgId)?.Offers is { On: true } rules ? rules : null;

    /// <summary>The most chats a connection of the organisation may hold; 0 for no limit.</summary>
    public int CapacityOf(byte[] orgId) => organisations.Find(orgId)?.Offers.Capacity ?? 0;

    public static int OpenChats(ConnectionState connection) => connection.Snapshot().Count(l => !l.Ended);

    public ResponderStatus Status(ConnectionState connection, bool available, string reason = "") => new()
    {
        Available = available,
        OpenChats = OpenChats(connection),
        Capacity = CapacityOf(connection.Grant!.OrgId),
        OffersOn = RulesOf(connection.Grant!.OrgId) is not null,
        Reason = reason,
    };

    /// <summary>Sets the connection available or away; with offers off only the answer says so (nothing is stored).</summary>
    public async Task<ResponderStatus> SetAvailabilityAsync(ConnectionState connection, bool available)
    {
        var orgId = connection.Grant!.OrgId;
        if (RulesOf(orgId) is null)
        {
            return Status(connection, available);
        }

        present[connection.ConnectionId] = connection;
        var now = time.GetUtcNow();
        var withdrawn = await offers.SetPresenceAsync(orgId, connection.ConnectionId, available, OpenChats(connection), now, now + PresenceLifetime);
        if (withdrawn is { } session)
        {
            await TellAsync(connection.ConnectionId, c => c.OfferWithdrawn(session.ToByteArray(bigEndian: true), OfferEndReasons.Away));
        }

        Nudge(orgId);
        return Status(connection, available);
    }

    /// <summary>The connection closed: its presence goes, and a pending offer goes to the next counsellor.</summary>
    public async Task ConnectionClosedAsync(ConnectionState connection)
    {
        if (!present.TryRemove(connection.ConnectionId, out _) || RulesOf(connection.Grant!.OrgId) is null)
        {
            return;
        }

        try
        {
            await offers.RemovePresenceAsync(connection.Grant.OrgId, connection.ConnectionId);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            // Unrefreshed, the presence stops counting within its lifetime; its offer lapses.
            OfferLog.PumpFailed(logger, e.GetType().Name);
        }

        Nudge(connection.Grant.OrgId);
    }

    /// <summary>
    /// The claim path with offers on: a hold keeps offers and other takes away while the claim runs; a session offered
    /// to another counsellor is not taken. With offers off, the plain claim. <paramref name="timer"/> as the store's claim takes it.
    /// </summary>
    public async Task<SessionRecord?> ClaimAsync(byte[] orgId, Guid id, string responderId, string connectionId, DateTimeOffset? timer = null)
    {
        if (RulesOf(orgId) is null)
        {
            return await sessions.ClaimAsync(orgId, id, responderId, connectionId, timer);
        }

        var now = time.GetUtcNow();
        if (!await offers.HoldAsync(orgId, id, connectionId, now, now + HoldTime))
        {
            return null;
        }

        var claimed = await sessions.ClaimAsync(orgId, id, responderId, connectionId, timer);
        try
        {
            var offeredTo = await offers.ReleaseAsync(orgId, id);
            if (claimed is not null)
            {
                await offers.TookAsync(orgId, connectionId, now);
                if (offeredTo is { } other && other != connectionId)
                {
                    await TellAsync(other, c => c.OfferWithdrawn(id.ToByteArray(bigEndian: true), OfferEndReasons.Gone));
                }
            }
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            // The claim stands; the hold runs out by itself and the declines with their key.
            OfferLog.PumpFailed(logger, e.GetType().Name);
        }

        return claimed;
    }

    /// <summary>A session ended: a queued one's offer, hold and declines go; an active one frees a place of its counsellor.</summary>
    public async Task SessionEndedAsync(SessionRecord record)
    {
        if (RulesOf(record.OrgId) is null)
        {
            return;
        }

        try
        {
            if (record.State == SessionState.Queued)
            {
                if (await offers.ReleaseAsync(record.OrgId, record.Id) is { } offeredTo)
                {
                    await TellAsync(offeredTo, c => c.OfferWithdrawn(record.Id.ToByteArray(bigEndian: true), OfferEndReasons.Gone));
                }
            }
            else if (record.ResponderConnection is { } responder)
            {
                await offers.ChatEndedAsync(record.OrgId, responder);
            }
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            // The end stands; what is left here runs out with its key, and the next presence write counts the chats.
            OfferLog.PumpFailed(logger, e.GetType().Name);
        }

        Nudge(record.OrgId);
    }

    /// <summary>Asks for a pump of the organisation's queue; returns at once (a running pump runs once more).</summary>
    public void Nudge(byte[] orgId)
    {
        if (RulesOf(orgId) is null)
        {
            return;
        }

        var state = pumps.GetOrAdd(Convert.ToHexStringLower(orgId), _ => new PumpState());
        lock (state)
        {
            state.Again = true;
            if (state.Running)
            {
                return;
            }

            state.Running = true;
        }

        _ = Task.Run(() => RunAsync(orgId, state));
    }

    /// <summary>Lapses the offers past their time, sets away who let too many lapse, and offers on (every node, each tick).</summary>
    internal async Task SweepAsync()
    {
        var now = time.GetUtcNow();
        foreach (var org in organisations.All.Where(o => o.Offers.On))
        {
            var lapsed = await offers.LapseAsync(org.OrgId, now - LapseGrace, org.Offers.LapsesBeforeAway);
            foreach (var lapse in lapsed)
            {
                OfferLog.Lapsed(logger, lapse.SetAway ? "set away" : "still available");
                await TellAsync(lapse.ConnectionId, c => c.OfferWithdrawn(lapse.SessionId.ToByteArray(bigEndian: true), OfferEndReasons.Lapsed));
                if (lapse.SetAway)
                {
                    var status = present.TryGetValue(lapse.ConnectionId, out var local)
                        ? Status(local, false, OfferEndReasons.Lapsed)
                        : new ResponderStatus { Available = false, OpenChats = -1, Capacity = org.Offers.Capacity, OffersOn = true, Reason = OfferEndReasons.Lapsed };
                    await TellAsync(lapse.ConnectionId, c => c.AvailabilityChanged(status));
                }
            }

            if (lapsed.Count > 0)
            {
                Nudge(org.OrgId);
            }
        }
    }

    /// <summary>Keeps this node's presences alive (their open chats stay as counted) and offers on.</summary>
    internal async Task RefreshAsync()
    {
        var now = time.GetUtcNow();
        foreach (var (id, connection) in present)
        {
            if (RulesOf(connection.Grant!.OrgId) is not null)
            {
                await offers.SetPresenceAsync(connection.Grant.OrgId, id, null, -1, now, now + PresenceLifetime);
            }
        }

        // A pump lost with a node that failed mid-way is made up for here.
        foreach (var org in organisations.All.Where(o => o.Offers.On))
        {
            Nudge(org.OrgId);
        }
    }

    private async Task RunAsync(byte[] orgId, PumpState state)
    {
        while (true)
        {
            lock (state)
            {
                if (!state.Again)
                {
                    state.Running = false;
                    return;
                }

                state.Again = false;
            }

            try
            {
                await PumpAsync(orgId);
            }
            catch (Exception e) when (e is RedisException or TimeoutException)
            {
                OfferLog.PumpFailed(logger, e.GetType().Name);
            }
        }
    }

    private async Task PumpAsync(byte[] orgId)
    {
        // Each round makes at most one offer; bounded, as each needs a waiting seeker and a free counsellor.
        for (var round = 0; round < Head && RulesOf(orgId) is { } rules; round++)
        {
            var candidates = (await sessions.GetQueueAsync(orgId, Head)).Where(q => q.SeekerConnection is not null).ToList();
            if (candidates.Count == 0)
            {
                return;
            }

            var now = time.GetUtcNow();
            if (await offers.OfferAsync(orgId, [.. candidates.Select(c => c.Id)], rules.Capacity, now, now + rules.Timeout) is not { } made)
            {
                return;
            }

            // Taken or ended between the read and the offer: the offer goes again, silently.
            if (await sessions.GetAsync(made.SessionId) is not { State: SessionState.Queued })
            {
                await offers.ReleaseAsync(orgId, made.SessionId);
                continue;
            }

            var queued = candidates.First(c => c.Id == made.SessionId);
            var offer = new Offer
            {
                SessionId = made.SessionId.ToByteArray(bigEndian: true),
                Language = queued.Language,
                Topic = queued.Topic,
                Urgent = queued.Urgent,
                WaitingSeconds = (int)Math.Max(0, (now - queued.CreatedAt).TotalSeconds),
                ExpiresInSeconds = (int)rules.Timeout.TotalSeconds,
            };
            OfferLog.Offered(logger);
            await TellAsync(made.ConnectionId, c => c.Offered(offer));
        }
    }

    private async Task TellAsync(string connectionId, Func<IResponderClient, Task> call)
    {
        try
        {
            await call(responders.Clients.Client(connectionId));
        }
        catch (Exception e) when (e is RedisException or TimeoutException or ObjectDisposedException or InvalidOperationException)
        {
            // A connection that is closing hears nothing more; its presence goes with it.
        }
    }

    /// <summary>One organisation's pump (guarded by locking the instance).</summary>
    private sealed class PumpState
    {
        public bool Running { get; set; }
        public bool Again { get; set; }
    }
}

/// <summary>Lapses offers on every node each reaper interval and refreshes this node's presences.</summary>
internal sealed class OfferSweeper(OfferRouter router, Microsoft.Extensions.Options.IOptions<SessionLimits> options, TimeProvider time, ILogger<OfferSweeper> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.ReaperInterval, time);
        var nextRefresh = time.GetUtcNow() + OfferRouter.PresenceRefresh;
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                if (time.GetUtcNow() >= nextRefresh)
                {
                    nextRefresh = time.GetUtcNow() + OfferRouter.PresenceRefresh;
                    await router.RefreshAsync();
                }

                await router.SweepAsync();
            }
            catch (Exception e) when (e is RedisException or TimeoutException)
            {
                OfferLog.PumpFailed(logger, e.GetType().Name);
            }
        }
    }
}

internal static partial class OfferLog
{
    // Fixed texts: never a session id, connection id or responder key.
    [LoggerMessage(EventId = 260, Level = LogLevel.Information, Message = "Session offered to a responder.")]
    public static partial void Offered(ILogger logger);

    [LoggerMessage(EventId = 261, Level = LogLevel.Information, Message = "An offer ran out unanswered; the responder is {Outcome}.")]
    public static partial void Lapsed(ILogger logger, string outcome);

    [LoggerMessage(EventId = 262, Level = LogLevel.Error, Message = "Offers: the store failed ({ErrorType}); the next event or sweep makes up for it.")]
    public static partial void PumpFailed(ILogger logger, string errorType);
}
