namespace TrustLine.Server.Storage;

/// <summary>An offer just made: the session and the responder connection it went to.</summary>
public sealed record OfferMade(Guid SessionId, string ConnectionId);

/// <summary>An offer that ran out unanswered; <c>SetAway</c> when it was the responder's last lapse allowed in a row.</summary>
public sealed record LapsedOffer(Guid SessionId, string ConnectionId, bool SetAway);

public enum OfferAnswer
{
    Done,

    /// <summary>The session is not offered to that connection (never, or no longer).</summary>
    NotOffered,

    /// <summary>The offer's time ran out; the next sweep counts it as a lapse.</summary>
    Expired,
}

/// <summary>
/// Counsellor presence and offers of one organisation (docs/architecture.md, routing). Presence is per responder
/// connection: available or away, open chats, last take, lapses in a row, the offer it holds, and until when it
/// counts (refreshed while connected). An offer names one session and one connection; a hold marks a session being
/// taken by hand, so no offer and no other take can reach it meanwhile. Choosing the responder and making the offer
/// is one atomic step (one script on Redis, one lock in process), so a session is never offered to two at once.
/// </summary>
public interface IOfferStore
{
    /// <summary>
    /// Writes a connection's presence: <paramref name="available"/> (null keeps it; becoming available clears its
    /// lapses; becoming away withdraws its offer), its open chats (−1 keeps them) and until when it counts. Returns the session whose
    /// offer was withdrawn, if any.
    /// </summary>
    Task<Guid?> SetPresenceAsync(byte[] orgId, string connectionId, bool? available, int openChats, DateTimeOffset now, DateTimeOffset aliveUntil);

    /// <summary>Forgets a connection's presence (it closed) and its pending offer; returns that offer's session.</summary>
    Task<Guid?> RemovePresenceAsync(byte[] orgId, string connectionId);

    /// <summary>
    /// Offers the first of <paramref name="candidates"/> (queue order) that is neither offered nor held to the
    /// available connection with the fewest open chats (below <paramref name="capacity"/>, 0 for none), then the
    /// longest since its last take, that holds no offer and has not declined or let lapse this session; null if
    /// none fits.
    /// </summary>
    Task<OfferMade?> OfferAsync(byte[] orgId, IReadOnlyList<Guid> candidates, int capacity, DateTimeOffset now, DateTimeOffset until);

    /// <summary>
    /// Answers the offer of <paramref name="sessionId"/> to <paramref name="connectionId"/>: accepted, it becomes
    /// that connection's hold until <paramref name="holdUntil"/> (the take follows); declined, it goes and the
    /// session remembers the decline.
    /// </summary>
    Task<OfferAnswer> AnswerAsync(byte[] orgId, Guid sessionId, string connectionId, bool accept, DateTimeOffset now, DateTimeOffset holdUntil);

    /// <summary>Ends every offer past its time (each connection's lapses grow; at the limit it is set away) and forgets presence no longer refreshed.</summary>
    Task<IReadOnlyList<LapsedOffer>> LapseAsync(byte[] orgId, DateTimeOffset now, int lapsesBeforeAway);

    /// <summary>Marks a session as being taken by <paramref name="connectionId"/>; false while it is offered to or held by another.</summary>
    Task<bool> HoldAsync(byte[] orgId, Guid sessionId, string connectionId, DateTimeOffset now, DateTimeOffset until);

    /// <summary>
    /// Forgets everything about a session (taken, or ended): its offer, hold and declines. Returns the connection an
    /// offer was pending to, if any.
    /// </summary>
    Task<string?> ReleaseAsync(byte[] orgId, Guid sessionId);

    /// <summary>The connection took a session: one more open chat, and its last take is now.</summary>
    Task TookAsync(byte[] orgId, string connectionId, DateTimeOffset now);

    /// <summary>A chat of the connection ended: one open chat fewer.</summary>
    Task ChatEndedAsync(byte[] orgId, string connectionId);
}

/// <summary>The single-node offer store: the same contract as Redis, in process memory behind one lock.</summary>
internal sealed class EmbeddedOfferStore : IOfferStore
{
    private readonly Lock gate = new();
    private readonly Dictionary<(string Org, string Connection), Presence> presence = [];
    private readonly Dictionary<(string Org, Guid Session), Mark> marks = [];
    private readonly Dictionary<(string Org, Guid Session), HashSet<string>> declines = [];

    public Task<Guid?> SetPresenceAsync(byte[] orgId, string connectionId, bool? available, int openChats, DateTimeOffset now, DateTimeOffset aliveUntil)
    {
        lock (gate)
        {
            var org = Convert.ToHexString(orgId);
            var p = presence.GetValueOrDefault((org, connectionId)) ?? new Presence();
            Guid? withdrawn = null;
            if (available is { } on)
            {
                if (on && !p.Available)
                {
                    p.Lapses = 0;
                }

                p.Available = on;
                if (!on && p.Offered is { } offered)
                {
                    withdrawn = offered;
                    DropOffer(org, offered, connectionId);
                    p.Offered = null;
                }
            }

            if (openChats >= 0)
            {
                p.Open = openChats;
            }

            p.AliveUntil = aliveUntil;
            presence[(org, connectionId)] = p;
            return Task.FromResult(withdrawn);
        }
    }

    public Task<Guid?> RemovePresenceAsync(byte[] orgId, string connectionId)
    {
        lock (gate)
        {
            var org = Convert.ToHexString(orgId);
            if (!presence.Remove((org, connectionId), out var p))
            {
                return Task.FromResult<Guid?>(null);
            }

            if (p.Offered is { } offered)
            {
                DropOffer(org, offered, connectionId);
            }

            return Task.FromResult(p.Offered);
        }
    }

    public Task<OfferMade?> OfferAsync(byte[] orgId, IReadOnlyList<Guid> candidates, int capacity, DateTimeOffset now, DateTimeOffset until)
    {
        lock (gate)
        {
            var org = Convert.ToHexString(orgId);
            foreach (var sid in candidates)
            {
                if (marks.TryGetValue((org, sid), out var mark) && (mark.Offer || mark.Until > now))
                {
                    continue;
                }

                var declined = declines.GetValueOrDefault((org, sid));
                var best = presence
                    .Where(e => e.Key.Org == org && e.Value.Available && e.Value.Offered is null && e.Value.AliveUntil > now
                        && (capacity == 0 || e.Value.Open < capacity) && declined?.Contains(e.Key.Connection) != true)
                    .OrderBy(e => e.Value.Open).ThenBy(e => e.Value.LastTake).ThenBy(e => e.Key.Connection, StringComparer.Ordinal)
                    .Select(e => e.Key.Connection)
                    .FirstOrDefault();
                if (best is not null)
                {
                    presence[(org, best)].Offered = sid;
                    marks[(org, sid)] = new Mark(true, best, until);
                    return Task.FromResult<OfferMade?>(new OfferMade(sid, best));
                }
            }

            return Task.FromResult<OfferMade?>(null);
        }
    }

    public Task<OfferAnswer> AnswerAsync(byte[] orgId, Guid sessionId, string connectionId, bool accept, DateTimeOffset now, DateTimeOffset holdUntil)
    {
        lock (gate)
        {
            var org = Convert.ToHexString(orgId);
            if (!marks.TryGetValue((org, sessionId), out var mark) || !mark.Offer || mark.Connection != connectionId)
            {
                return Task.FromResult(OfferAnswer.NotOffered);
            }

            if (mark.Until <= now)
            {
                return Task.FromResult(OfferAnswer.Expired);
            }

            if (presence.TryGetValue((org, connectionId), out var p))
            {
                p.Offered = null;
                p.Lapses = 0;
            }

            if (accept)
            {
                marks[(org, sessionId)] = new Mark(false, connectionId, holdUntil);
            }
            else
            {
                marks.Remove((org, sessionId));
                Decline(org, sessionId, connectionId);
            }

            return Task.FromResult(OfferAnswer.Done);
        }
    }

    public Task<IReadOnlyList<LapsedOffer>> LapseAsync(byte[] orgId, DateTimeOffset now, int lapsesBeforeAway)
    {
        lock (gate)
        {
            var org = Convert.ToHexString(orgId);
            var lapsed = new List<LapsedOffer>();
            foreach (var ((o, sid), mark) in marks.Where(m => m.Key.Org == org && m.Value.Until <= now).ToList())
            {
                marks.Remove((o, sid));
                if (!mark.Offer)
                {
                    continue;
                }

                Decline(org, sid, mark.Connection);
                var away = false;
                if (presence.TryGetValue((org, mark.Connection), out var p) && p.Offered == sid)
                {
                    p.Offered = null;
                    if (++p.Lapses >= lapsesBeforeAway)
                    {
                        p.Available = false;
                        p.Lapses = 0;
                        away = true;
                    }
                }

                lapsed.Add(new LapsedOffer(sid, mark.Connection, away));
            }

            foreach (var key in presence.Where(e => e.Key.Org == org && e.Value.AliveUntil <= now).Select(e => e.Key).ToList())
            {
                presence.Remove(key);
            }

            return Task.FromResult<IReadOnlyList<LapsedOffer>>(lapsed);
        }
    }

    public Task<bool> HoldAsync(byte[] orgId, Guid sessionId, string connectionId, DateTimeOffset now, DateTimeOffset until)
    {
        lock (gate)
        {
            var org = Convert.ToHexString(orgId);
            if (marks.TryGetValue((org, sessionId), out var mark) && mark.Connection != connectionId && (mark.Offer || mark.Until > now))
            {
                return Task.FromResult(false);
            }

            marks[(org, sessionId)] = new Mark(false, connectionId, until);
            return Task.FromResult(true);
        }
    }

    public Task<string?> ReleaseAsync(byte[] orgId, Guid sessionId)
    {
        lock (gate)
        {
            var org = Convert.ToHexString(orgId);
            declines.Remove((org, sessionId));
            if (!marks.Remove((org, sessionId), out var mark) || !mark.Offer)
            {
                return Task.FromResult<string?>(null);
            }

            if (presence.TryGetValue((org, mark.Connection), out var p) && p.Offered == sessionId)
            {
                p.Offered = null;
            }

            return Task.FromResult<string?>(mark.Connection);
        }
    }

    public Task TookAsync(byte[] orgId, string connectionId, DateTimeOffset now)
    {
        lock (gate)
        {
            if (presence.TryGetValue((Convert.ToHexString(orgId), connectionId), out var p))
            {
                p.Open++;
                p.LastTake = now;
            }

            return Task.CompletedTask;
        }
    }

    public Task ChatEndedAsync(byte[] orgId, string connectionId)
    {
        lock (gate)
        {
            if (presence.TryGetValue((Convert.ToHexString(orgId), connectionId), out var p))
            {
                p.Open = Math.Max(0, p.Open - 1);
            }

            return Task.CompletedTask;
        }
    }

    /// <summary>How many entries of any kind are held (tests: zero once every responder has gone).</summary>
    internal int CountEntries()
    {
        lock (gate)
        {
            return presence.Count + marks.Count + declines.Count;
        }
    }

    private void DropOffer(string org, Guid sid, string connectionId)
    {
        if (marks.TryGetValue((org, sid), out var mark) && mark.Offer && mark.Connection == connectionId)
        {
            marks.Remove((org, sid));
        }
    }

    private void Decline(string org, Guid sid, string connectionId)
    {
        if (!declines.TryGetValue((org, sid), out var set))
        {
            declines[(org, sid)] = set = [];
        }

        set.Add(connectionId);
    }

    private sealed class Presence
    {
        public bool Available { get; set; }
        public int Open { get; set; }
        public DateTimeOffset LastTake { get; set; } = DateTimeOffset.MinValue;
        public int Lapses { get; set; }
        public DateTimeOffset AliveUntil { get; set; }
        public Guid? Offered { get; set; }
    }

    /// <summary>An offer to a connection, or (not <c>Offer</c>) a hold by the connection taking the session.</summary>
    private readonly record struct Mark(bool Offer, string Connection, DateTimeOffset Until);
}
