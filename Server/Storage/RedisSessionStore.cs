using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using StackExchange.Redis;
using TrustLine.Protocol.Crypto;

namespace TrustLine.Server.Storage;

/// <summary>
/// The Redis store. Hot path: one script per relayed envelope (<c>SET … PX … NX</c> while the session
/// exists; the NX makes a resend a duplicate on every node). Races between nodes are settled by atomic
/// commands and scripts on one slot each (the claim script, moving the record from queued to active, decides
/// a claim; DEL decides who ends a session; a lease on a timer decides who handles it). A script touches either
/// one session's keys (hash tag <c>{sid}</c>) or one organisation's queue slot (its queue, ticket counters and
/// session timers), never both: see docs/architecture.md.
/// </summary>
internal sealed class RedisSessionStore(IConnectionMultiplexer redis, RedisKeys keys, TimeProvider time) : ISessionStore, IAccessStore
{
    private const long NotUrgentOffset = 10_000_000_000_000; // a not-urgent entry's score is this plus its ticket: urgent sorts first

    private const string CreateScript = """
        if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
        redis.call('HSET', KEYS[1], unpack(ARGV, 2))
        redis.call('PEXPIRE', KEYS[1], ARGV[1])
        return 1
        """;

    // A shared key's TTL only ever grows: PEXPIRE GT raises it. GT never applies to a key without a TTL (one just
    // created), so when it did not apply, PEXPIRE NX sets the TTL of such a key (and leaves a longer one alone).
    private const string RaiseTtl = """
        local function raise(key, ttl)
          if redis.call('PEXPIRE', key, ttl, 'GT') == 0 then redis.call('PEXPIRE', key, ttl, 'NX') end
        end

        """;

    // The capacity check and the add are one step, so concurrent opens on any number of nodes never
    // overfill the queue. The queue's TTL only ever grows (to the latest deadline of a queued session).
    // An urgent entry (ARGV[2] = 1) past the urgent capacity (ARGV[5]) joins as not urgent instead, in the
    // same step: no flood can hold more urgent places than that. The entry's ticket is the next of its class
    // (counters in KEYS[2], the queue's slot); its score is the ticket, past the offset (ARGV[6]) when not
    // urgent, so urgent sorts first and each class in order of tickets. Returns {1 or 2 (not urgent), ticket,
    // place, waiting}: the place is the entry's rank plus one, as the queue stands after the add.
    // An empty queue (no key) starts both keys afresh: its counters went with its last entry, so a class starts
    // at the first ticket (ARGV[8]) and both keys take this session's deadline; otherwise the counter counts on
    // (a class seen for the first time starts at the first ticket) and each TTL is raised with one PEXPIRE GT
    // (the queue, and a counter that counted on, exist with a TTL: every key of the queue gets one when created).
    // An open also sets the session's first timer (ARGV[9], unless empty) in the organisation's timers (KEYS[3], the
    // queue's slot), whose TTL only ever grows to the latest deadline of a session in it: one script, not two.
    private const string EnqueueScript = RaiseTtl + """
        local card = redis.call('ZCARD', KEYS[1])
        if card >= tonumber(ARGV[1]) then return {0, 0} end
        local urgent = ARGV[2] == '1'
        local result = 1
        if urgent and ARGV[5] ~= '' and redis.call('ZCOUNT', KEYS[1], '-inf', '(' .. ARGV[6]) >= tonumber(ARGV[5]) then
          urgent = false
          result = 2
        end
        local offset = tonumber(ARGV[6])
        local class = urgent and 'u' or 'n'
        local ticket
        local counted = false
        local first = {}
        if ARGV[7] == '1' and card > 0 then
          -- a transferred seeker: the head of its class, one ticket before the lowest waiting (the counter stays)
          if urgent then
            first = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. offset, 'WITHSCORES', 'LIMIT', 0, 1)
          else
            first = redis.call('ZRANGEBYSCORE', KEYS[1], offset, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
          end
        end
        if first[2] then
          ticket = tonumber(first[2]) - (urgent and 0 or offset) - 1
        elseif card == 0 then
          ticket = tonumber(ARGV[8])
          redis.call('HSET', KEYS[2], class, ticket)
        else
          ticket = redis.call('HINCRBY', KEYS[2], class, 1)
          counted = ticket > 1
          if ticket == 1 then
            ticket = tonumber(ARGV[8])
            redis.call('HSET', KEYS[2], class, ticket)
          end
        end
        redis.call('ZADD', KEYS[1], 'NX', urgent and ticket or (offset + ticket), ARGV[3])
        -- a ticket of the other class is the highest of all: last in the queue; else its rank tells
        local position = card + 1
        if urgent or first[2] then position = redis.call('ZRANK', KEYS[1], ARGV[3]) + 1 end
        if card == 0 then
          redis.call('PEXPIRE', KEYS[1], ARGV[4])
          redis.call('PEXPIRE', KEYS[2], ARGV[4])
        else
          redis.call('PEXPIRE', KEYS[1], ARGV[4], 'GT')
          if counted then redis.call('PEXPIRE', KEYS[2], ARGV[4], 'GT') else raise(KEYS[2], ARGV[4]) end
        end
        if ARGV[9] ~= '' then
          redis.call('ZADD', KEYS[3], ARGV[9], ARGV[3])
          raise(KEYS[3], ARGV[4])
        end
        return {result, ticket, position, card + 1}
        """;

    // Per class: how many wait, the lowest ticket waiting, and the last ticket handed out. O(log n).
    private const string CountsScript = """
        local offset = tonumber(ARGV[1])
        local urgent = redis.call('ZCOUNT', KEYS[1], '-inf', '(' .. offset)
        local other = redis.call('ZCOUNT', KEYS[1], offset, '+inf')
        local firstUrgent = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. offset, 'WITHSCORES', 'LIMIT', 0, 1)
        local firstOther = redis.call('ZRANGEBYSCORE', KEYS[1], offset, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
        local issued = redis.call('HMGET', KEYS[2], 'u', 'n')
        return {urgent, firstUrgent[2] or '', issued[1] or '0', other, firstOther[2] or '', issued[2] or '0'}
        """;

    // Leaving the queue (a claim, an end): an emptied queue takes its ticket counters
    // with it (an empty sorted set is gone by itself), so nothing of the queue outlives its last session.
    // The session's timer is in the same slot (KEYS[3]): an end (ARGV[2] = 'end') removes it; a claim whose call
    // removed the entry moves it to the take's deadline (ARGV[2]), only if it is there (a reschedule: its TTL was
    // raised to this session's deadline when it was added). Returns 2 when it moved the timer, else the ZREM's count.
    private const string DequeueScript = """
        local removed = redis.call('ZREM', KEYS[1], ARGV[1])
        if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('DEL', KEYS[2]) end
        if ARGV[2] == 'end' then
          redis.call('ZREM', KEYS[3], ARGV[1])
        elseif ARGV[2] ~= '' and removed == 1 and redis.call('ZADD', KEYS[3], 'XX', 'CH', ARGV[2], ARGV[1]) == 1 then
          return 2
        end
        return removed
        """;

    private const string NotUrgentScript = """
        if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'urg', 0) end
        return 1
        """;

    // Only a queued session of the claimer's organisation (ARGV[4]), once: the state moves to active here. Reads
    // the record once and answers with it as claimed, so the take needs no second read.
    private const string ClaimScript = """
        local f = redis.call('HGETALL', KEYS[1])
        local at = {}
        for i = 1, #f, 2 do at[f[i]] = i + 1 end
        if not at['st'] or f[at['st']] ~= 'q' or f[at['org']] ~= ARGV[4] then return false end
        local ep = tonumber(at['ep'] and f[at['ep']] or '0') + 1
        local set = { st = 'a', rid = ARGV[1], rc = ARGV[2], act = ARGV[3], ep = tostring(ep) }
        redis.call('HSET', KEYS[1], 'st', 'a', 'rid', ARGV[1], 'rc', ARGV[2], 'act', ARGV[3], 'ep', ep)
        for name, value in pairs(set) do
          if at[name] then f[at[name]] = value else f[#f + 1] = name; f[#f + 1] = value end
        end
        return f
        """;

    // Held by this responder and not answered yet, read in one step.
    private const string AnswerScript = """
        local v = redis.call('HMGET', KEYS[1], 'rid', 'm2')
        if v[1] ~= ARGV[1] or v[2] then return 0 end
        redis.call('HSET', KEYS[1], 'm2', ARGV[2])
        return 1
        """;

    private const string ConnectionScript = """
        if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
        if ARGV[2] == '' then
          redis.call('HDEL', KEYS[1], ARGV[1])
          redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
        else
          redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
          redis.call('HDEL', KEYS[1], ARGV[3])
        end
        return redis.call('HINCRBY', KEYS[1], 'ep', 1)
        """;

    // Only while the session exists: a write in flight when another node deletes the session must not
    // land after the delete (it would outlive the session by up to EnvelopeMaxAge). Records the highest seq
    // buffered, the limit for acks. The highest-seq field exists from creation, so reading it answers "does the
    // session exist" too (the EXISTS only runs for a record written before that field did).
    // A seq at or below the recorded ack was delivered: a duplicate, never stored again (so every buffered
    // key lies between the ack and the highest seq, where acks and the end look for them).
    // The envelope's key is the record's key with its last letter (the "s" of RedisKeys.Session) replaced by
    // "e<direction>:" (ARGV[6]) and the seq: RedisKeys.Envelope's name, with the session's hash tag, so this
    // stays one slot; built here so the call passes one key name, not two.
    private const string AppendScript = """
        local v = redis.call('HMGET', KEYS[1], ARGV[3], ARGV[5])
        local high = v[1]
        if not high then
          if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
          high = '-1'
        end
        if tonumber(ARGV[4]) <= tonumber(v[2] or '-1') then return 0 end
        local key = string.sub(KEYS[1], 1, -2) .. ARGV[6] .. ARGV[4]
        if not redis.call('SET', key, ARGV[1], 'PX', ARGV[2], 'NX') then return 0 end
        if tonumber(high) < tonumber(ARGV[4]) then redis.call('HSET', KEYS[1], ARGV[3], ARGV[4]) end
        return 1
        """;

    /// <summary>
    /// The append script's name in Redis's script cache (EVALSHA names a script by the SHA-1 of its text; an
    /// identifier, not cryptography). Calling it by name skips the client's own NOSCRIPT retry wrapper, one
    /// async layer per envelope; <see cref="AppendEnvelopeAsync"/> does that retry itself.
    /// </summary>
    private static readonly byte[] AppendScriptId = SHA1.HashData(Encoding.UTF8.GetBytes(AppendScript));

    private const string GoneScript = """
        if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return -1 end
        redis.call('HDEL', KEYS[1], ARGV[1])
        redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
        return redis.call('HINCRBY', KEYS[1], 'ep', 1)
        """;

    // The ack fields exist from creation, so a missing one means the session is gone: no separate EXISTS.
    // Deletes only what this ack releases (the seqs after the recorded ack, at most a window of them): an
    // ack at or below the recorded one deletes nothing. The envelope keys are built here from the session's
    // key base (ARGV[4], which carries the session's hash tag), so they are in the record's slot.
    private const string AckScript = """
        local v = redis.call('HMGET', KEYS[1], ARGV[1], ARGV[3])
        if not v[1] then return -2 end
        local old = tonumber(v[1])
        local through = tonumber(ARGV[2])
        if through > tonumber(v[2] or '-1') then return -3 end
        if through <= old then return old end
        redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
        local from = math.max(old + 1, through - tonumber(ARGV[5]) + 1, 0)
        local batch = {}
        for seq = from, through do
          batch[#batch + 1] = ARGV[4] .. seq
          if #batch == 256 then redis.call('DEL', unpack(batch)); batch = {} end
        end
        if #batch > 0 then redis.call('DEL', unpack(batch)) end
        return through
        """;

    // Reading and deleting the record in one step decides who ends the session (only one caller gets the
    // fields) and takes its envelopes with it (in the same DEL, the record first): only the seqs that can still be buffered, after each
    // direction's ack up to its highest buffered seq (at most a window), with keys built from the session's
    // key base (ARGV[1], the session's hash tag: the record's slot).
    private const string DeleteScript = """
        local f = redis.call('HGETALL', KEYS[1])
        if #f == 0 then return f end
        local v = {}
        for i = 1, #f, 2 do v[f[i]] = f[i + 1] end
        local window = tonumber(ARGV[2])
        local batch = {KEYS[1]}
        for dir = 1, 2 do
          local from = tonumber(v['a' .. dir] or '-1') + 1
          local to = tonumber(v['h' .. dir] or tostring(from + window - 1))
          from = math.max(from, to - window + 1, 0)
          for seq = from, to do
            batch[#batch + 1] = ARGV[1] .. dir .. ':' .. seq
            if #batch == 256 then redis.call('DEL', unpack(batch)); batch = {} end
          end
        end
        if #batch > 0 then redis.call('DEL', unpack(batch)) end
        return f
        """;

    // An organisation's timers key is shared by its sessions: its TTL only ever grows (to the latest session
    // deadline scheduled), so an earlier deadline never expires other sessions' timers. Every call for one session
    // passes its deadline, and the TTL was raised to it when its timer was added: a timer that was there already
    // (a reschedule: a drop, a resume) needs no TTL step.
    private const string ScheduleScript = RaiseTtl + """
        if redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 1 end
        raise(KEYS[1], ARGV[3])
        return 1
        """;

    // Taking a due timer leases it (its score moves to the lease's end) instead of removing it: a taker
    // that fails leaves it to come due again. Only a due timer can be taken, so exactly one caller wins.
    private const string TakeTimerScript = """
        local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
        if not score or tonumber(score) > tonumber(ARGV[2]) then return 0 end
        redis.call('ZADD', KEYS[1], 'XX', ARGV[3], ARGV[1])
        return 1
        """;

    // Finishing a lease: only while the score is still the lease's (a schedule since then stands).
    private const string CompleteTimerScript = """
        local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
        if not score or tonumber(score) ~= tonumber(ARGV[2]) then return 0 end
        if ARGV[3] == '' then
          redis.call('ZREM', KEYS[1], ARGV[1])
        else
          redis.call('ZADD', KEYS[1], 'XX', ARGV[3], ARGV[1])
        end
        return 1
        """;

    // A timer of the single timers key of an earlier release, moved to its organisation's: the earlier of the two
    // stands when both hold one (early only costs the reaper a look; late would end a session late).
    private const string MoveLegacyTimerScript = RaiseTtl + """
        redis.call('ZADD', KEYS[1], 'LT', ARGV[1], ARGV[2])
        raise(KEYS[1], ARGV[3])
        return 1
        """;

    // Removes a member only while its score is the one read (a newer schedule stands, for the next move).
    private const string RemoveIfScoreScript = """
        local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
        if not score or tonumber(score) ~= tonumber(ARGV[2]) then return 0 end
        return redis.call('ZREM', KEYS[1], ARGV[1])
        """;

    // The organisations that may hold timers: those given are kept until ARGV[2] (never shortened), those past
    // ARGV[1] go, and the key lives as long as its latest entry. Answers every organisation listed.
    private const string TimerOrganisationsScript = RaiseTtl + """
        for i = 4, #ARGV do redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[i]) end
        redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
        if redis.call('EXISTS', KEYS[1]) == 1 then raise(KEYS[1], ARGV[3]) end
        return redis.call('ZRANGE', KEYS[1], 0, -1)
        """;

    private const string TouchScript = """
        if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
        redis.call('HSET', KEYS[1], 'act', ARGV[1])
        redis.call('PEXPIREAT', KEYS[1], ARGV[2])
        return 1
        """;

    // Only an active session of this responder, with no proposal still running (a lapsed one is replaced).
    private const string ProposeScript = """
        if redis.call('HGET', KEYS[1], 'st') ~= 'a' then return 0 end
        if redis.call('HGET', KEYS[1], 'rid') ~= ARGV[1] then return 0 end
        local pending = redis.call('HGET', KEYS[1], 'tu')
        if pending and tonumber(pending) > tonumber(ARGV[4]) then return 0 end
        redis.call('HSET', KEYS[1], 'tt', ARGV[2], 'tu', ARGV[3])
        return 1
        """;

    // Compare-and-delete on the lapse time: whoever removes the proposal settles it.
    private const string ClearTransferScript = """
        if redis.call('HGET', KEYS[1], 'tu') ~= ARGV[1] then return 0 end
        redis.call('HDEL', KEYS[1], 'tt', 'tu')
        return 1
        """;

    // Every command goes to the primary, reads included: a replica may lag (or, during a failover, answer for
    // a primary that is gone), and a stale "no such record" would end a live session as lost.
    private const CommandFlags Primary = CommandFlags.DemandMaster;

    private IDatabase Db => redis.GetDatabase();

    public async Task<CreateOutcome> CreateAsync(SessionRecord session, int queueCapacity, int urgentCapacity = int.MaxValue) =>
        (await CreateAsync(session, null, queueCapacity, urgentCapacity)).Outcome;

    public Task<Opening> OpenAsync(SessionRecord session, DateTimeOffset timer, int queueCapacity, int urgentCapacity = int.MaxValue) =>
        CreateAsync(session, timer, queueCapacity, urgentCapacity);

    private async Task<Opening> CreateAsync(SessionRecord session, DateTimeOffset? timer, int queueCapacity, int urgentCapacity)
    {
        // Two scripts, not one: the session's keys and the organisation's queue live in different cluster
        // slots. The record comes first (its id must be new); if the queue is full it is deleted again,
        // so a refused open leaves nothing and the queue never holds more than its capacity. The first timer
        // is set by the queue's script (the organisation's timers share the queue's slot), only when it queues.
        var now = time.GetUtcNow();
        var lifetime = Math.Max(1, (long)(session.Deadline - now).TotalMilliseconds);
        var created = (long)await Db.ScriptEvaluateAsync(CreateScript, [keys.Session(session.Id)], CreateArgs(session, lifetime, now), flags: Primary);
        if (created == 0)
        {
            return new Opening(CreateOutcome.Exists, QueuePlace.None);
        }

        var enqueued = (RedisResult[])(await Db.ScriptEvaluateAsync(EnqueueScript,
            [keys.Queue(session.OrgId), keys.Tickets(session.OrgId), keys.Timers(session.OrgId)],
            [queueCapacity, session.Urgent ? 1 : 0, session.Id.ToString("N"), lifetime, session.Urgent ? urgentCapacity : "", NotUrgentOffset,
                session.QueuedSince is null ? 0 : 1, QueueTickets.First, timer is { } when ? when.ToUnixTimeMilliseconds() : ""], flags: Primary))!;
        var queued = (long)enqueued[0];
        if (queued == 0)
        {
            await Db.KeyDeleteAsync(keys.Session(session.Id), flags: Primary);
            return new Opening(CreateOutcome.QueueFull, QueuePlace.None);
        }

        var place = new QueuePlace((int)enqueued[2], (int)enqueued[3], (long)enqueued[1], queued == 1 && session.Urgent);
        if (queued == 2)
        {
            // The record's own slot, a second step: until it lands the record still says urgent (shown only).
            // Only while the record exists: a session ended meanwhile must not come back as a key without a TTL.
            await Db.ScriptEvaluateAsync(NotUrgentScript, [keys.Session(session.Id)]);
            return new Opening(CreateOutcome.CreatedNotUrgent, place);
        }

        return new Opening(CreateOutcome.Created, place);
    }

    public async Task<SessionRecord?> GetAsync(Guid id)
    {
        var fields = await Db.HashGetAllAsync(keys.Session(id), flags: Primary);
        return fields.Length == 0 ? null : Parse(id, fields);
    }

    public async Task<IReadOnlyList<QueuedSession>> GetQueueAsync(byte[] orgId, int max)
    {
        var members = await Db.SortedSetRangeByRankAsync(keys.Queue(orgId), 0, max - 1, flags: Primary);
        var ids = members.Select(m => Guid.ParseExact(m.ToString(), "N")).ToList();
        var batch = Db.CreateBatch();
        var reads = ids.Select(id => batch.HashGetAsync(keys.Session(id), ["lang", "topic", "urg", "cr", "sc"], flags: Primary)).ToList();
        batch.Execute();
        var queued = new List<QueuedSession>(ids.Count);
        for (var i = 0; i < ids.Count; i++)
        {
            var values = await reads[i];
            if (values[0].IsNull)
            {
                continue; // ended in the meantime; its entry goes with the end
            }

            queued.Add(new QueuedSession(ids[i], values[0]!, values[1]!, (int)values[2] == 1,
                DateTimeOffset.FromUnixTimeMilliseconds((long)values[3]), values[4].IsNull ? null : values[4].ToString()));
        }

        return queued;
    }

    public async Task<(int Position, int Waiting)> GetQueuePositionAsync(byte[] orgId, Guid id)
    {
        var batch = Db.CreateBatch();
        var rank = batch.SortedSetRankAsync(keys.Queue(orgId), id.ToString("N"), flags: Primary);
        var length = batch.SortedSetLengthAsync(keys.Queue(orgId), flags: Primary);
        batch.Execute();
        var position = await rank;
        return (position is { } r ? (int)r + 1 : 0, (int)await length);
    }

    public async Task<QueuePlace> GetPlaceAsync(byte[] orgId, Guid id)
    {
        var batch = Db.CreateBatch();
        var rank = batch.SortedSetRankAsync(keys.Queue(orgId), id.ToString("N"), flags: Primary);
        var score = batch.SortedSetScoreAsync(keys.Queue(orgId), id.ToString("N"), flags: Primary);
        var length = batch.SortedSetLengthAsync(keys.Queue(orgId), flags: Primary);
        batch.Execute();
        var (position, waiting) = (await rank is { } r ? (int)r + 1 : 0, (int)await length);
        return await score is { } s && position > 0
            ? new QueuePlace(position, waiting, (long)(s < NotUrgentOffset ? s : s - NotUrgentOffset), s < NotUrgentOffset)
            : new QueuePlace(0, waiting, 0, false);
    }

    public async Task<QueueCounts> GetQueueCountsAsync(byte[] orgId)
    {
        var values = (RedisResult[])(await Db.ScriptEvaluateAsync(CountsScript, [keys.Queue(orgId), keys.Tickets(orgId)], [NotUrgentOffset], flags: Primary))!;
        long Served(int at, long offset) => values[at + 1].IsNull || values[at + 1].ToString() is not { Length: > 0 } first
            ? long.Parse(values[at + 2].ToString(), CultureInfo.InvariantCulture)
            : (long)double.Parse(first, CultureInfo.InvariantCulture) - offset - 1;
        return new QueueCounts((int)values[0], Served(0, 0), (int)values[3], Served(3, NotUrgentOffset));
    }

    public async Task<SessionRecord?> ClaimAsync(byte[] orgId, Guid id, string responderId, string connectionId, DateTimeOffset? timer = null)
    {
        // The claim script decides: it moves the record from queued to active once, atomically on the record's slot,
        // so across all nodes exactly one claimer gets the record (and only for the organisation it is queued in).
        // The entry leaves the queue in the same round trip, whoever wins: a session that is not queued any more
        // (taken, ended, expired) has no business in the queue. The script that removes it moves the timer too (the
        // queue's slot), when this call removed the entry; when another call did (a claimer that lost the race), the
        // winner schedules its timer after the claim, a second round trip only then.
        var batch = Db.CreateBatch();
        var claim = batch.ScriptEvaluateAsync(ClaimScript, [keys.Session(id)],
            [responderId, connectionId, time.GetUtcNow().ToUnixTimeMilliseconds(), orgId], flags: Primary);
        var dequeue = batch.ScriptEvaluateAsync(DequeueScript, [keys.Queue(orgId), keys.Tickets(orgId), keys.Timers(orgId)],
            [id.ToString("N"), timer is { } when ? when.ToUnixTimeMilliseconds() : ""], flags: Primary);
        batch.Execute();
        await Task.WhenAll(claim, dequeue);
        var claimed = await claim;
        if (claimed.IsNull)
        {
            return null;
        }

        var record = Parse(id, (RedisValue[])claimed!);
        if (timer is { } next && (long)await dequeue != 2)
        {
            await ScheduleAsync(orgId, id, next, record.Deadline);
        }

        return record;
    }

    public async Task<bool> SetAnswerAsync(Guid id, string responderId, byte[] msg2) =>
        (long)await Db.ScriptEvaluateAsync(AnswerScript, [keys.Session(id)], [responderId, msg2], flags: Primary) == 1;

    public async Task<long?> SetConnectionAsync(Guid id, Party party, string? connectionId, DateTimeOffset? goneAt)
    {
        var (connectionField, goneField) = party == Party.Seeker ? ("sc", "sg") : ("rc", "rg");
        var epoch = (long)await Db.ScriptEvaluateAsync(ConnectionScript, [keys.Session(id)],
            [connectionField, connectionId ?? "", goneField, goneAt?.ToUnixTimeMilliseconds() ?? 0], flags: Primary);
        return epoch < 0 ? null : epoch;
    }

    public async Task<long?> MarkGoneAsync(Guid id, Party party, string connectionId, DateTimeOffset goneAt)
    {
        var (connectionField, goneField) = party == Party.Seeker ? ("sc", "sg") : ("rc", "rg");
        var epoch = (long)await Db.ScriptEvaluateAsync(GoneScript, [keys.Session(id)],
            [connectionField, connectionId, goneField, goneAt.ToUnixTimeMilliseconds()], flags: Primary);
        return epoch < 0 ? null : epoch;
    }

    public async Task<AppendOutcome> AppendEnvelopeAsync(Guid id, Direction direction, ulong sequence, byte[] envelope, DateTimeOffset expiresAt)
    {
        var ttl = expiresAt - time.GetUtcNow();
        var expiry = (long)Math.Max(1, ttl.TotalMilliseconds);
        RedisKey[] scriptKeys = [keys.Session(id)];
        RedisValue[] args = direction == Direction.ClientToServer
            ? [envelope, expiry, "h1", (long)sequence, "a1", "e1:"]
            : [envelope, expiry, "h2", (long)sequence, "a2", "e2:"];
        RedisResult result;
        try
        {
            result = await Db.ScriptEvaluateAsync(AppendScriptId, scriptKeys, args, flags: Primary);
        }
        catch (RedisServerException e) when (e.Message.StartsWith("NOSCRIPT", StringComparison.Ordinal))
        {
            // A primary that has not run the script yet (restarted, or promoted in a failover): the script did not
            // run, so sending it whole once is safe, and caches it there again.
            result = await Db.ScriptEvaluateAsync(AppendScript, scriptKeys, args, flags: Primary);
        }

        return (long)result switch
        {
            1 => AppendOutcome.Stored,
            0 => AppendOutcome.Duplicate,
            _ => AppendOutcome.SessionGone,
        };
    }

    public async Task<IReadOnlyList<(ulong Sequence, byte[] Envelope)>> GetEnvelopesAsync(Guid id, Direction direction, long after, int window)
    {
        if (window <= 0)
        {
            return [];
        }

        var values = await Db.StringGetAsync(keys.Envelopes(id, direction, after, window), flags: Primary);
        var found = new List<(ulong, byte[])>();
        for (var i = 0; i < values.Length; i++)
        {
            if (!values[i].IsNull)
            {
                found.Add(((ulong)(after + 1 + i), (byte[])values[i]!));
            }
        }

        return found;
    }

    public async Task<long> AcknowledgeAsync(Guid id, Direction direction, ulong through, int window) =>
        (long)await Db.ScriptEvaluateAsync(AckScript, [keys.Session(id)],
            [direction == Direction.ClientToServer ? "a1" : "a2", (long)through, direction == Direction.ClientToServer ? "h1" : "h2",
                keys.EnvelopeBase(id, direction), window], flags: Primary);

    public Task TouchAsync(Guid id, DateTimeOffset now, DateTimeOffset keyExpiry) =>
        Db.ScriptEvaluateAsync(TouchScript, [keys.Session(id)], [now.ToUnixTimeMilliseconds(), keyExpiry.ToUnixTimeMilliseconds()], flags: Primary);

    public async Task<SessionRecord?> DeleteAsync(Guid id, int window)
    {
        // One script on the session's slot deletes the record and its envelopes; the organisation, known from the
        // record, names the slot of its queue and timers. A queued session's queue entry and timer go in one script
        // there (two round trips, as the entry always took). An active session's timer is removed without waiting for
        // the reply (one round trip): should that removal be lost, the reaper meets a timer without its record and
        // removes it, as it does for any session whose record expired. A record gone before this call (expired) names
        // no organisation: its timer goes the same way.
        var deleted = (RedisValue[])(await Db.ScriptEvaluateAsync(DeleteScript, [keys.Session(id)], [keys.EnvelopeBase(id), window], flags: Primary))!;
        if (deleted.Length == 0)
        {
            return null;
        }

        var record = Parse(id, deleted);
        if (record.State == SessionState.Queued)
        {
            await Db.ScriptEvaluateAsync(DequeueScript, [keys.Queue(record.OrgId), keys.Tickets(record.OrgId), keys.Timers(record.OrgId)],
                [id.ToString("N"), "end"], flags: Primary);
        }
        else
        {
            try
            {
                _ = Db.SortedSetRemoveAsync(keys.Timers(record.OrgId), id.ToString("N"), Primary | CommandFlags.FireAndForget);
            }
            catch (RedisException)
            {
                // The session has ended (the record is gone): its timer is left to the reaper.
            }
        }

        return record;
    }

    public Task ScheduleAsync(byte[] orgId, Guid id, DateTimeOffset when, DateTimeOffset keyExpiry) =>
        Db.ScriptEvaluateAsync(ScheduleScript, [keys.Timers(orgId)],
            [when.ToUnixTimeMilliseconds(), id.ToString("N"), (long)Math.Max(1, (keyExpiry - time.GetUtcNow()).TotalMilliseconds)], flags: Primary);

    public async Task<IReadOnlyList<Guid>> GetDueAsync(byte[] orgId, DateTimeOffset now, int max)
    {
        var due = await Db.SortedSetRangeByScoreAsync(keys.Timers(orgId), double.NegativeInfinity, now.ToUnixTimeMilliseconds(), take: max, flags: Primary);
        return [.. due.Select(d => Guid.ParseExact(d.ToString(), "N"))];
    }

    public async Task<bool> TryTakeTimerAsync(byte[] orgId, Guid id, DateTimeOffset now, DateTimeOffset leaseUntil) =>
        (long)await Db.ScriptEvaluateAsync(TakeTimerScript, [keys.Timers(orgId)],
            [id.ToString("N"), now.ToUnixTimeMilliseconds(), leaseUntil.ToUnixTimeMilliseconds()], flags: Primary) == 1;

    public Task CompleteTimerAsync(byte[] orgId, Guid id, DateTimeOffset leaseUntil, DateTimeOffset? next) =>
        Db.ScriptEvaluateAsync(CompleteTimerScript, [keys.Timers(orgId)],
            [id.ToString("N"), leaseUntil.ToUnixTimeMilliseconds(), next is { } when ? when.ToUnixTimeMilliseconds() : ""], flags: Primary);

    public async Task<IReadOnlyList<byte[]>> GetTimerOrganisationsAsync(IReadOnlyCollection<byte[]> serving, DateTimeOffset until)
    {
        var now = time.GetUtcNow();
        var args = new RedisValue[3 + serving.Count];
        args[0] = now.ToUnixTimeMilliseconds();
        args[1] = until.ToUnixTimeMilliseconds();
        args[2] = (long)Math.Max(1, (until - now).TotalMilliseconds);
        var i = 3;
        foreach (var orgId in serving)
        {
            args[i++] = Convert.ToHexStringLower(orgId);
        }

        var listed = (RedisValue[])(await Db.ScriptEvaluateAsync(TimerOrganisationsScript, [keys.TimerOrganisations], args, flags: Primary))!;
        await MoveLegacyTimersAsync();
        return [.. listed.Select(hex => FromHex(hex.ToString())).OfType<byte[]>()];
    }

    /// <summary>An organisation id from the list, or null for anything that is not one (never a reason to stop the reaper).</summary>
    private static byte[]? FromHex(string hex)
    {
        var bytes = new byte[hex.Length / 2];
        return hex.Length % 2 == 0 && Convert.FromHexString(hex, bytes, out _, out _) == System.Buffers.OperationStatus.Done ? bytes : null;
    }

    /// <summary>
    /// Moves timers that nodes of an earlier release (one timers key for all organisations) left or still write,
    /// during a rolling upgrade, to their organisations' keys; a timer whose record is gone is dropped. A read of a
    /// key that does not exist once every node runs this release.
    /// </summary>
    private async Task MoveLegacyTimersAsync()
    {
        const int Page = 100;
        for (var pages = 0; pages < 1000; pages++)
        {
            var entries = await Db.SortedSetRangeByRankWithScoresAsync(keys.LegacyTimers, 0, Page - 1, flags: Primary);
            foreach (var entry in entries)
            {
                var member = entry.Element.ToString();
                if (Guid.TryParseExact(member, "N", out var id)
                    && await Db.HashGetAsync(keys.Session(id), ["org", "dl"], flags: Primary) is [{ IsNull: false } org, { IsNull: false } deadline])
                {
                    var lifetime = Math.Max(1, (long)deadline - time.GetUtcNow().ToUnixTimeMilliseconds());
                    await Db.ScriptEvaluateAsync(MoveLegacyTimerScript, [keys.Timers((byte[])org!)], [(long)entry.Score, member, lifetime], flags: Primary);
                }

                await Db.ScriptEvaluateAsync(RemoveIfScoreScript, [keys.LegacyTimers], [member, (long)entry.Score], flags: Primary);
            }

            if (entries.Length < Page)
            {
                return;
            }
        }
    }

    public async Task<bool> ProposeTransferAsync(Guid id, string responderId, byte[] targetOrgId, DateTimeOffset until, DateTimeOffset now) =>
        (long)await Db.ScriptEvaluateAsync(ProposeScript, [keys.Session(id)],
            [responderId, targetOrgId, until.ToUnixTimeMilliseconds(), now.ToUnixTimeMilliseconds()], flags: Primary) == 1;

    public async Task<bool> ClearTransferAsync(Guid id, DateTimeOffset until) =>
        (long)await Db.ScriptEvaluateAsync(ClearTransferScript, [keys.Session(id)], [until.ToUnixTimeMilliseconds()], flags: Primary) == 1;

    public Task StoreTokenAsync(byte[] tokenHash, ResponderGrant grant, TimeSpan lifetime) =>
        Db.StringSetAsync(keys.Token(tokenHash), JsonSerializer.Serialize(new StoredGrant(Convert.ToHexStringLower(grant.OrgId), grant.ResponderId, grant.ExpiresAt)), lifetime, flags: Primary);

    public async Task<ResponderGrant?> GetTokenAsync(byte[] tokenHash)
    {
        var value = await Db.StringGetAsync(keys.Token(tokenHash), flags: Primary);
        if (value.IsNull)
        {
            return null;
        }

        var stored = JsonSerializer.Deserialize<StoredGrant>(value.ToString());
        return stored is null ? null : new ResponderGrant(Convert.FromHexString(stored.Org), stored.Responder, stored.Expires);
    }

    /// <summary>
    /// The create script's arguments in one array of the exact size: a growing list cost five arrays per open,
    /// the largest allocation site of TrustLine's own in the open's allocation profile (BENCHMARKS.md, Profiles).
    /// </summary>
    private static RedisValue[] CreateArgs(SessionRecord session, long lifetime, DateTimeOffset now)
    {
        var connection = session.SeekerConnection;
        var since = session.QueuedSince;
        ReadOnlySpan<(string Name, RedisValue Value)> fields =
        [
            ("org", session.OrgId), ("st", "q"), ("lang", session.Language), ("topic", session.Topic),
            ("urg", session.Urgent ? 1 : 0), ("m1", session.Msg1), ("rth", session.ResumeTokenHash),
            ("cr", session.CreatedAt.ToUnixTimeMilliseconds()), ("dl", session.Deadline.ToUnixTimeMilliseconds()),
            ("act", now.ToUnixTimeMilliseconds()), ("a1", -1), ("a2", -1), ("h1", -1), ("h2", -1), ("ep", 0),
        ];
        var args = new RedisValue[1 + (2 * fields.Length) + (connection is null ? 0 : 2) + (since is null ? 0 : 2)];
        var i = 0;
        args[i++] = lifetime;
        foreach (var (name, value) in fields)
        {
            args[i++] = name;
            args[i++] = value;
        }

        if (connection is not null)
        {
            args[i++] = "sc";
            args[i++] = connection;
        }

        if (since is { } queuedSince)
        {
            args[i++] = "qs";
            args[i++] = queuedSince.ToUnixTimeMilliseconds();
        }

        return args;
    }

    /// <summary>A record from its field/value pairs as HGETALL (or a script) answers them.</summary>
    private static SessionRecord Parse(Guid id, RedisValue[] pairs)
    {
        var fields = new RecordFields();
        for (var i = 0; i + 1 < pairs.Length; i += 2)
        {
            fields.Set(pairs[i], pairs[i + 1]);
        }

        return fields.Build(id);
    }

    private static SessionRecord Parse(Guid id, HashEntry[] entries)
    {
        var fields = new RecordFields();
        foreach (var entry in entries)
        {
            fields.Set(entry.Name, entry.Value);
        }

        return fields.Build(id);
    }

    /// <summary>
    /// The record's fields, read straight from the reply: a field's name is matched on its bytes, and only the texts
    /// the record keeps become strings (a dictionary by name cost a string per field, twice per whole open).
    /// </summary>
    private struct RecordFields
    {
        private RedisValue org, st, lang, topic, urg, m1, rth, cr, dl, act, a1, a2, h1, h2, ep, sc, rc, rid, m2, sg, rg, qs, tt, tu;

        public void Set(RedisValue name, RedisValue value)
        {
            var bytes = ((ReadOnlyMemory<byte>)name).Span;
            if (bytes.Length > 5)
            {
                return;
            }

            Span<char> text = stackalloc char[5];
            for (var i = 0; i < bytes.Length; i++)
            {
                text[i] = (char)bytes[i];
            }

            switch (text[..bytes.Length])
            {
                case "org": org = value; break;
                case "st": st = value; break;
                case "lang": lang = value; break;
                case "topic": topic = value; break;
                case "urg": urg = value; break;
                case "m1": m1 = value; break;
                case "rth": rth = value; break;
                case "cr": cr = value; break;
                case "dl": dl = value; break;
                case "act": act = value; break;
                case "a1": a1 = value; break;
                case "a2": a2 = value; break;
                case "h1": h1 = value; break;
                case "h2": h2 = value; break;
                case "ep": ep = value; break;
                case "sc": sc = value; break;
                case "rc": rc = value; break;
                case "rid": rid = value; break;
                case "m2": m2 = value; break;
                case "sg": sg = value; break;
                case "rg": rg = value; break;
                case "qs": qs = value; break;
                case "tt": tt = value; break;
                case "tu": tu = value; break;
            }
        }

        public readonly SessionRecord Build(Guid id)
        {
            static DateTimeOffset? Time(RedisValue v) => v.IsNull ? null : DateTimeOffset.FromUnixTimeMilliseconds((long)v);
            static string? Text(RedisValue v) => v.IsNull ? null : v.ToString();
            static long Number(RedisValue v, long none) => v.IsNull ? none : (long)v;

            return new SessionRecord
            {
                Id = id,
                OrgId = (byte[])org!,
                Language = Text(lang) ?? "",
                Topic = Text(topic) ?? "",
                Urgent = (int)urg == 1,
                Msg1 = (byte[])m1!,
                ResumeTokenHash = (byte[])rth!,
                CreatedAt = Time(cr)!.Value,
                Deadline = Time(dl)!.Value,
                State = st == "a" ? SessionState.Active : SessionState.Queued,
                ResponderId = Text(rid),
                Msg2 = (byte[]?)m2,
                SeekerConnection = Text(sc),
                ResponderConnection = Text(rc),
                SeekerGoneAt = Time(sg),
                ResponderGoneAt = Time(rg),
                LastActivity = Time(act) ?? Time(cr)!.Value,
                AckedClientToServer = Number(a1, -1),
                AckedServerToClient = Number(a2, -1),
                HighestClientToServer = Number(h1, -1),
                HighestServerToClient = Number(h2, -1),
                Epoch = Number(ep, 0),
                QueuedSince = Time(qs),
                TransferTo = (byte[]?)tt,
                TransferUntil = Time(tu),
            };
        }
    }

    private sealed record StoredGrant(string Org, string Responder, DateTimeOffset Expires);
}
