using TrustLine.Protocol.Crypto;

namespace TrustLine.Server.Storage;

/// <summary>
/// The single-node store: the same contract as Redis, in process memory, with the same expiry rules
/// (an expired entry is gone when next looked at, and a sweep drops the rest).
/// </summary>
internal sealed class EmbeddedSessionStore(TimeProvider time) : ISessionStore, IAccessStore
{
    private const long NotUrgentOffset = 10_000_000_000_000; // as in the Redis store: the offset plus the ticket, so urgent sorts first

    private readonly Lock gate = new();
    private readonly Dictionary<Guid, Expiring<SessionRecord>> sessions = [];
    private readonly Dictionary<(Guid, Direction, ulong), Expiring<byte[]>> envelopes = [];
    private readonly Dictionary<Guid, (string Org, long Score)> queue = [];
    private readonly Dictionary<Guid, (string Org, DateTimeOffset Due)> timers = [];

    // The last ticket handed out per organisation and class (urgent, other): two numbers per organisation while
    // its queue holds a session, never per session; they go with the queue's last session, as in Redis.
    private readonly Dictionary<string, (long Urgent, long Other)> tickets = [];
    private readonly Dictionary<string, Expiring<ResponderGrant>> tokens = [];

    private DateTimeOffset Now => time.GetUtcNow();

    public Task<CreateOutcome> CreateAsync(SessionRecord session, int queueCapacity, int urgentCapacity = int.MaxValue)
    {
        lock (gate)
        {
            return Task.FromResult(Insert(session, queueCapacity, urgentCapacity));
        }
    }

    public Task<Opening> OpenAsync(SessionRecord session, DateTimeOffset timer, int queueCapacity, int urgentCapacity = int.MaxValue)
    {
        lock (gate)
        {
            var outcome = Insert(session, queueCapacity, urgentCapacity);
            if (outcome is not (CreateOutcome.Created or CreateOutcome.CreatedNotUrgent))
            {
                return Task.FromResult(new Opening(outcome, QueuePlace.None));
            }

            var org = Convert.ToHexString(session.OrgId);
            timers[session.Id] = (org, timer);
            return Task.FromResult(new Opening(outcome, Place(org, session.Id)));
        }
    }

    private CreateOutcome Insert(SessionRecord session, int queueCapacity, int urgentCapacity)
    {
        Sweep();
        var org = Convert.ToHexString(session.OrgId);
        if (sessions.ContainsKey(session.Id))
        {
            return CreateOutcome.Exists;
        }

        if (queue.Values.Count(q => q.Org == org) >= queueCapacity)
        {
            return CreateOutcome.QueueFull;
        }

        var urgent = session.Urgent && queue.Values.Count(q => q.Org == org && q.Score < NotUrgentOffset) < urgentCapacity;
        // A transferred seeker (QueuedSince set) goes to the head of its class: one ticket before the lowest
        // waiting, and the counter stays. Anyone else gets the class's next ticket.
        var classScores = queue.Values.Where(q => q.Org == org && (q.Score < NotUrgentOffset) == urgent).Select(q => q.Score).ToList();
        long score;
        if (session.QueuedSince is not null && classScores.Count > 0)
        {
            score = classScores.Min() - 1;
        }
        else
        {
            var issued = tickets.GetValueOrDefault(org, (Urgent: QueueTickets.First - 1, Other: QueueTickets.First - 1));
            issued = urgent ? issued with { Urgent = issued.Urgent + 1 } : issued with { Other = issued.Other + 1 };
            tickets[org] = issued;
            score = urgent ? issued.Urgent : NotUrgentOffset + issued.Other;
        }

        sessions[session.Id] = new(session with { LastActivity = Now, Urgent = urgent }, session.Deadline);
        queue[session.Id] = (org, score);
        return urgent == session.Urgent ? CreateOutcome.Created : CreateOutcome.CreatedNotUrgent;
    }

    public Task<SessionRecord?> GetAsync(Guid id)
    {
        lock (gate)
        {
            return Task.FromResult(Live(id));
        }
    }

    public Task<IReadOnlyList<QueuedSession>> GetQueueAsync(byte[] orgId, int max)
    {
        lock (gate)
        {
            Sweep();
            IReadOnlyList<QueuedSession> list = [.. Ordered(Convert.ToHexString(orgId)).Take(max)
                .Select(id => sessions[id].Value)
                .Select(s => new QueuedSession(s.Id, s.Language, s.Topic, s.Urgent, s.CreatedAt, s.SeekerConnection))];
            return Task.FromResult(list);
        }
    }

    public Task<(int Position, int Waiting)> GetQueuePositionAsync(byte[] orgId, Guid id)
    {
        lock (gate)
        {
            Sweep();
            var ordered = Ordered(Convert.ToHexString(orgId));
            return Task.FromResult((ordered.IndexOf(id) + 1, ordered.Count));
        }
    }

    public Task<QueuePlace> GetPlaceAsync(byte[] orgId, Guid id)
    {
        lock (gate)
        {
            Sweep();
            return Task.FromResult(Place(Convert.ToHexString(orgId), id));
        }
    }

    private QueuePlace Place(string org, Guid id)
    {
        var ordered = Ordered(org);
        var position = ordered.IndexOf(id) + 1;
        if (position == 0)
        {
            return new QueuePlace(0, ordered.Count, 0, false);
        }

        var score = queue[id].Score;
        return new QueuePlace(position, ordered.Count, score < NotUrgentOffset ? score : score - NotUrgentOffset, score < NotUrgentOffset);
    }

    public Task<QueueCounts> GetQueueCountsAsync(byte[] orgId)
    {
        lock (gate)
        {
            Sweep();
            var org = Convert.ToHexString(orgId);
            var scores = queue.Where(q => q.Value.Org == org && sessions.ContainsKey(q.Key)).Select(q => q.Value.Score).ToList();
            var urgent = scores.Where(s => s < NotUrgentOffset).ToList();
            var other = scores.Where(s => s >= NotUrgentOffset).Select(s => s - NotUrgentOffset).ToList();
            var issued = tickets.GetValueOrDefault(org);
            return Task.FromResult(new QueueCounts(
                urgent.Count, urgent.Count > 0 ? urgent.Min() - 1 : issued.Urgent,
                other.Count, other.Count > 0 ? other.Min() - 1 : issued.Other));
        }
    }

    public Task<SessionRecord?> ClaimAsync(byte[] orgId, Guid id, string responderId, string connectionId, DateTimeOffset? timer = null)
    {
        lock (gate)
        {
            // Only a session queued in the claimer's organisation: another's is neither taken nor moved.
            if (Live(id) is not { State: SessionState.Queued } record || !record.OrgId.AsSpan().SequenceEqual(orgId) || !Dequeue(id))
            {
                return Task.FromResult<SessionRecord?>(null);
            }

            var claimed = record with { State = SessionState.Active, ResponderId = responderId, ResponderConnection = connectionId, LastActivity = Now, Epoch = record.Epoch + 1 };
            Replace(claimed);
            if (timer is { } next)
            {
                timers[id] = (Convert.ToHexString(orgId), next);
            }

            return Task.FromResult<SessionRecord?>(claimed);
        }
    }

    public Task<bool> SetAnswerAsync(Guid id, string responderId, byte[] msg2)
    {
        lock (gate)
        {
            if (Live(id) is not { } record || record.ResponderId != responderId || record.Msg2 is not null)
            {
                return Task.FromResult(false);
            }

            Replace(record with { Msg2 = msg2 });
            return Task.FromResult(true);
        }
    }

    public Task<long?> SetConnectionAsync(Guid id, Party party, string? connectionId, DateTimeOffset? goneAt)
    {
        lock (gate)
        {
            if (Live(id) is not { } record)
            {
                return Task.FromResult<long?>(null);
            }

            Replace(party == Party.Seeker
                ? record with { SeekerConnection = connectionId, SeekerGoneAt = connectionId is null ? goneAt : null, Epoch = record.Epoch + 1 }
                : record with { ResponderConnection = connectionId, ResponderGoneAt = connectionId is null ? goneAt : null, Epoch = record.Epoch + 1 });
            return Task.FromResult<long?>(record.Epoch + 1);
        }
    }

    public Task<long?> MarkGoneAsync(Guid id, Party party, string connectionId, DateTimeOffset goneAt)
    {
        lock (gate)
        {
            if (Live(id) is not { } record || record.Connection(party) != connectionId)
            {
                return Task.FromResult<long?>(null);
            }

            Replace(party == Party.Seeker
                ? record with { SeekerConnection = null, SeekerGoneAt = goneAt, Epoch = record.Epoch + 1 }
                : record with { ResponderConnection = null, ResponderGoneAt = goneAt, Epoch = record.Epoch + 1 });
            return Task.FromResult<long?>(record.Epoch + 1);
        }
    }

    public Task<AppendOutcome> AppendEnvelopeAsync(Guid id, Direction direction, ulong sequence, byte[] envelope, DateTimeOffset expiresAt)
    {
        lock (gate)
        {
            if (Live(id) is not { } record)
            {
                return Task.FromResult(AppendOutcome.SessionGone);
            }

            var key = (id, direction, sequence);
            if ((long)sequence <= record.Acked(direction) || (envelopes.TryGetValue(key, out var existing) && existing.ExpiresAt > Now))
            {
                return Task.FromResult(AppendOutcome.Duplicate);
            }

            envelopes[key] = new(envelope, expiresAt);
            if ((long)sequence > record.Highest(direction))
            {
                Replace(direction == Direction.ClientToServer ? record with { HighestClientToServer = (long)sequence } : record with { HighestServerToClient = (long)sequence });
            }

            return Task.FromResult(AppendOutcome.Stored);
        }
    }

    public Task<IReadOnlyList<(ulong Sequence, byte[] Envelope)>> GetEnvelopesAsync(Guid id, Direction direction, long after, int window)
    {
        lock (gate)
        {
            var found = new List<(ulong, byte[])>();
            for (var seq = after + 1; seq <= after + window; seq++)
            {
                if (envelopes.TryGetValue((id, direction, (ulong)seq), out var e) && e.ExpiresAt > Now)
                {
                    found.Add(((ulong)seq, e.Value));
                }
            }

            return Task.FromResult<IReadOnlyList<(ulong, byte[])>>(found);
        }
    }

    public Task<long> AcknowledgeAsync(Guid id, Direction direction, ulong through, int window)
    {
        lock (gate)
        {
            if (Live(id) is not { } record)
            {
                return Task.FromResult(-2L);
            }

            if ((long)through > record.Highest(direction))
            {
                return Task.FromResult(-3L);
            }

            // Only what this ack releases: nothing when it is not past the recorded one.
            for (var seq = Math.Max(record.Acked(direction) + 1, (long)through - window + 1); seq <= (long)through; seq++)
            {
                envelopes.Remove((id, direction, (ulong)seq));
            }

            var acked = Math.Max(record.Acked(direction), (long)through);
            Replace(direction == Direction.ClientToServer ? record with { AckedClientToServer = acked } : record with { AckedServerToClient = acked });
            return Task.FromResult(acked);
        }
    }

    public Task TouchAsync(Guid id, DateTimeOffset now, DateTimeOffset keyExpiry)
    {
        lock (gate)
        {
            if (Live(id) is { } record)
            {
                sessions[id] = new(record with { LastActivity = now }, keyExpiry);
            }

            return Task.CompletedTask;
        }
    }

    public Task<SessionRecord?> DeleteAsync(Guid id, int window)
    {
        lock (gate)
        {
            var record = Live(id);
            sessions.Remove(id);
            Dequeue(id);
            timers.Remove(id);
            if (record is not null)
            {
                // Only the seqs that can still be buffered: after each direction's ack, up to its highest.
                foreach (var direction in (Direction[])[Direction.ClientToServer, Direction.ServerToClient])
                {
                    for (var seq = Math.Max(record.Acked(direction) + 1, record.Highest(direction) - window + 1); seq <= record.Highest(direction); seq++)
                    {
                        envelopes.Remove((id, direction, (ulong)seq));
                    }
                }
            }

            return Task.FromResult(record);
        }
    }

    public Task ScheduleAsync(byte[] orgId, Guid id, DateTimeOffset when, DateTimeOffset keyExpiry)
    {
        lock (gate)
        {
            timers[id] = (Convert.ToHexString(orgId), when);
            return Task.CompletedTask;
        }
    }

    public Task<IReadOnlyList<Guid>> GetDueAsync(byte[] orgId, DateTimeOffset now, int max)
    {
        lock (gate)
        {
            Sweep();
            var org = Convert.ToHexString(orgId);
            IReadOnlyList<Guid> due = [.. timers.Where(t => t.Value.Org == org && t.Value.Due <= now).OrderBy(t => t.Value.Due).Take(max).Select(t => t.Key)];
            return Task.FromResult(due);
        }
    }

    public Task<bool> TryTakeTimerAsync(byte[] orgId, Guid id, DateTimeOffset now, DateTimeOffset leaseUntil)
    {
        lock (gate)
        {
            if (!timers.TryGetValue(id, out var timer) || timer.Org != Convert.ToHexString(orgId) || timer.Due > now)
            {
                return Task.FromResult(false);
            }

            timers[id] = timer with { Due = leaseUntil };
            return Task.FromResult(true);
        }
    }

    public Task CompleteTimerAsync(byte[] orgId, Guid id, DateTimeOffset leaseUntil, DateTimeOffset? next)
    {
        lock (gate)
        {
            if (timers.TryGetValue(id, out var timer) && timer.Org == Convert.ToHexString(orgId) && timer.Due == leaseUntil)
            {
                if (next is { } when)
                {
                    timers[id] = timer with { Due = when };
                }
                else
                {
                    timers.Remove(id);
                }
            }

            return Task.CompletedTask;
        }
    }

    /// <summary>One node holds every timer: the organisations served, and any other that has one.</summary>
    public Task<IReadOnlyList<byte[]>> GetTimerOrganisationsAsync(IReadOnlyCollection<byte[]> serving, DateTimeOffset until)
    {
        lock (gate)
        {
            var listed = serving.Select(Convert.ToHexString).Concat(timers.Values.Select(t => t.Org)).Distinct();
            IReadOnlyList<byte[]> organisations = [.. listed.Select(Convert.FromHexString)];
            return Task.FromResult(organisations);
        }
    }

    public Task<bool> ProposeTransferAsync(Guid id, string responderId, byte[] targetOrgId, DateTimeOffset until, DateTimeOffset now)
    {
        lock (gate)
        {
            if (Live(id) is not { State: SessionState.Active } record || record.ResponderId != responderId
                || (record.TransferUntil is { } pending && pending > now))
            {
                return Task.FromResult(false);
            }

            Replace(record with { TransferTo = targetOrgId, TransferUntil = until });
            return Task.FromResult(true);
        }
    }

    public Task<bool> ClearTransferAsync(Guid id, DateTimeOffset until)
    {
        lock (gate)
        {
            if (Live(id) is not { TransferUntil: { } pending } record || pending.ToUnixTimeMilliseconds() != until.ToUnixTimeMilliseconds())
            {
                return Task.FromResult(false);
            }

            Replace(record with { TransferTo = null, TransferUntil = null });
            return Task.FromResult(true);
        }
    }

    public Task StoreTokenAsync(byte[] tokenHash, ResponderGrant grant, TimeSpan lifetime)
    {
        lock (gate)
        {
            tokens[Convert.ToHexString(tokenHash)] = new(grant, Now + lifetime);
            return Task.CompletedTask;
        }
    }

    public Task<ResponderGrant?> GetTokenAsync(byte[] tokenHash)
    {
        lock (gate)
        {
            return Task.FromResult(tokens.TryGetValue(Convert.ToHexString(tokenHash), out var t) && t.ExpiresAt > Now ? t.Value : null);
        }
    }

    /// <summary>How many entries of any kind are held: zero once every session has ended (tests).</summary>
    internal int CountEntries()
    {
        lock (gate)
        {
            Sweep();
            return sessions.Count + envelopes.Count + queue.Count + timers.Count;
        }
    }

    private bool Dequeue(Guid id)
    {
        if (!queue.Remove(id, out var entry))
        {
            return false;
        }

        if (!queue.Values.Any(q => q.Org == entry.Org))
        {
            tickets.Remove(entry.Org);
        }

        return true;
    }

    private List<Guid> Ordered(string org) =>
        [.. queue.Where(q => q.Value.Org == org && sessions.ContainsKey(q.Key)).OrderBy(q => q.Value.Score).Select(q => q.Key)];

    private SessionRecord? Live(Guid id)
    {
        if (!sessions.TryGetValue(id, out var entry))
        {
            return null;
        }

        if (entry.ExpiresAt > Now)
        {
            return entry.Value;
        }

        sessions.Remove(id);
        return null;
    }

    private void Replace(SessionRecord record) => sessions[record.Id] = sessions[record.Id] with { Value = record };

    private void Sweep()
    {
        var now = Now;
        foreach (var id in sessions.Where(s => s.Value.ExpiresAt <= now).Select(s => s.Key).ToList())
        {
            sessions.Remove(id);
            Dequeue(id);
        }

        foreach (var id in timers.Keys.Where(id => !sessions.ContainsKey(id)).ToList())
        {
            timers.Remove(id);
        }

        foreach (var key in envelopes.Where(e => e.Value.ExpiresAt <= now).Select(e => e.Key).ToList())
        {
            envelopes.Remove(key);
        }

        foreach (var key in tokens.Where(t => t.Value.ExpiresAt <= now).Select(t => t.Key).ToList())
        {
            tokens.Remove(key);
        }
    }

    private readonly record struct Expiring<T>(T Value, DateTimeOffset ExpiresAt);
}
