using StackExchange.Redis;

namespace TrustLine.Server.Storage;

/// <summary>
/// Presence and offers on Redis: two hashes of one organisation that share the hash tag <c>{o:org}</c>, so each
/// step is one script on one slot. A presence value is <c>available|open|lastTake|lapses|aliveUntil|offered</c>;
/// an offer or hold is <c>o|connection|until</c> or <c>h|connection|until</c>; <c>d:sid</c> lists the connections
/// that declined or let lapse that session. Both keys' TTLs only grow, to the latest presence or offer in them.
/// </summary>
internal sealed class RedisOfferStore(IConnectionMultiplexer redis, RedisKeys keys) : IOfferStore
{
    /// <summary>How long a session remembers who declined it, at most (a session that ends forgets at once).</summary>
    internal static readonly TimeSpan DeclineMemory = TimeSpan.FromMinutes(10);

    private const string Lib = """
        local function split(s) local t = {} for f in (s .. '|'):gmatch('([^|]*)|') do t[#t + 1] = f end return t end
        local function join(p) return table.concat(p, '|', 1, 6) end
        local function grow(key, ms) if redis.call('PTTL', key) < tonumber(ms) then redis.call('PEXPIRE', key, ms) end end
        local function decline(key, sid, conn)
          local d = 'd:' .. sid
          local list = redis.call('HGET', key, d) or ''
          if not string.find(list, conn .. ',', 1, true) then redis.call('HSET', key, d, list .. conn .. ',') end
        end

        """;

    // KEYS: presence, offers. ARGV: connection, available ('' keeps, '1', '0'), open (-1 keeps), aliveUntil, presence TTL ms.
    private const string SetPresenceScript = Lib + """
        local v = redis.call('HGET', KEYS[1], ARGV[1])
        local p = v and split(v) or {'0', '0', '0', '0', '0', ''}
        local withdrawn = ''
        if ARGV[2] ~= '' then
          if ARGV[2] == '1' and p[1] ~= '1' then p[4] = '0' end
          p[1] = ARGV[2]
          if ARGV[2] == '0' and p[6] ~= '' then
            withdrawn = p[6]
            local o = redis.call('HGET', KEYS[2], p[6])
            if o then
              local f = split(o)
              if f[1] == 'o' and f[2] == ARGV[1] then redis.call('HDEL', KEYS[2], p[6]) end
            end
            p[6] = ''
          end
        end
        if ARGV[3] ~= '-1' then p[2] = ARGV[3] end
        p[5] = ARGV[4]
        redis.call('HSET', KEYS[1], ARGV[1], join(p))
        grow(KEYS[1], ARGV[5])
        return withdrawn
        """;

    // KEYS: presence, offers. ARGV: connection.
    private const string RemovePresenceScript = Lib + """
        local v = redis.call('HGET', KEYS[1], ARGV[1])
        if not v then return '' end
        redis.call('HDEL', KEYS[1], ARGV[1])
        local sid = split(v)[6]
        if sid ~= '' then
          local o = redis.call('HGET', KEYS[2], sid)
          if o then
            local f = split(o)
            if f[1] == 'o' and f[2] == ARGV[1] then redis.call('HDEL', KEYS[2], sid) end
          end
        end
        return sid
        """;

    // The choice and the offer in one step: no other node can offer the session or the responder meanwhile.
    // KEYS: presence, offers. ARGV: now, until, capacity, offers TTL ms, candidate session ids...
    private const string OfferScript = Lib + """
        local now = tonumber(ARGV[1])
        local cap = tonumber(ARGV[3])
        local all = redis.call('HGETALL', KEYS[1])
        for i = 5, #ARGV do
          local sid = ARGV[i]
          local o = redis.call('HGET', KEYS[2], sid)
          local busy = false
          if o then
            local f = split(o)
            busy = f[1] == 'o' or tonumber(f[3]) > now
          end
          if not busy then
            local declined = redis.call('HGET', KEYS[2], 'd:' .. sid) or ''
            local best, bestOpen, bestTake, bestP
            for j = 1, #all, 2 do
              local conn = all[j]
              local p = split(all[j + 1])
              local open = tonumber(p[2])
              if p[1] == '1' and p[6] == '' and tonumber(p[5]) > now and (cap == 0 or open < cap)
                and not string.find(declined, conn .. ',', 1, true) then
                local took = tonumber(p[3])
                if not best or open < bestOpen or (open == bestOpen and (took < bestTake or (took == bestTake and conn < best))) then
                  best, bestOpen, bestTake, bestP = conn, open, took, p
                end
              end
            end
            if best then
              bestP[6] = sid
              redis.call('HSET', KEYS[1], best, join(bestP))
              redis.call('HSET', KEYS[2], sid, 'o|' .. best .. '|' .. ARGV[2])
              grow(KEYS[2], ARGV[4])
              return {sid, best}
            end
          end
        end
        return false
        """;

    // KEYS: presence, offers. ARGV: session, connection, accept ('1'/'0'), now, holdUntil.
    private const string AnswerScript = Lib + """
        local o = redis.call('HGET', KEYS[2], ARGV[1])
        if not o then return 0 end
        local f = split(o)
        if f[1] ~= 'o' or f[2] ~= ARGV[2] then return 0 end
        if tonumber(f[3]) <= tonumber(ARGV[4]) then return -1 end
        local v = redis.call('HGET', KEYS[1], ARGV[2])
        if v then
          local p = split(v)
          p[6] = ''
          p[4] = '0'
          redis.call('HSET', KEYS[1], ARGV[2], join(p))
        end
        if ARGV[3] == '1' then
          redis.call('HSET', KEYS[2], ARGV[1], 'h|' .. ARGV[2] .. '|' .. ARGV[5])
        else
          redis.call('HDEL', KEYS[2], ARGV[1])
          decline(KEYS[2], ARGV[1], ARGV[2])
        end
        return 1
        """;

    // KEYS: presence, offers. ARGV: now, lapses before away.
    private const string LapseScript = Lib + """
        local now = tonumber(ARGV[1])
        local n = tonumber(ARGV[2])
        local out = {}
        local all = redis.call('HGETALL', KEYS[2])
        for i = 1, #all, 2 do
          local sid = all[i]
          if string.sub(sid, 1, 2) ~= 'd:' then
            local f = split(all[i + 1])
            if tonumber(f[3]) <= now then
              redis.call('HDEL', KEYS[2], sid)
              if f[1] == 'o' then
                decline(KEYS[2], sid, f[2])
                local away = 0
                local v = redis.call('HGET', KEYS[1], f[2])
                if v then
                  local p = split(v)
                  if p[6] == sid then
                    p[6] = ''
                    p[4] = tostring(tonumber(p[4]) + 1)
                    if tonumber(p[4]) >= n then
                      p[1] = '0'
                      p[4] = '0'
                      away = 1
                    end
                    redis.call('HSET', KEYS[1], f[2], join(p))
                  end
                end
                out[#out + 1] = sid
                out[#out + 1] = f[2]
                out[#out + 1] = tostring(away)
              end
            end
          end
        end
        local ps = redis.call('HGETALL', KEYS[1])
        for i = 1, #ps, 2 do
          if tonumber(split(ps[i + 1])[5]) <= now then redis.call('HDEL', KEYS[1], ps[i]) end
        end
        return out
        """;

    // KEYS: offers. ARGV: session, connection, now, until, TTL ms.
    private const string HoldScript = Lib + """
        local o = redis.call('HGET', KEYS[1], ARGV[1])
        if o then
          local f = split(o)
          if f[2] ~= ARGV[2] and (f[1] == 'o' or tonumber(f[3]) > tonumber(ARGV[3])) then return 0 end
        end
        redis.call('HSET', KEYS[1], ARGV[1], 'h|' .. ARGV[2] .. '|' .. ARGV[4])
        grow(KEYS[1], ARGV[5])
        return 1
        """;

    // KEYS: presence, offers. ARGV: session.
    private const string ReleaseScript = Lib + """
        local o = redis.call('HGET', KEYS[2], ARGV[1])
        redis.call('HDEL', KEYS[2], ARGV[1], 'd:' .. ARGV[1])
        if not o then return '' end
        local f = split(o)
        if f[1] ~= 'o' then return '' end
        local v = redis.call('HGET', KEYS[1], f[2])
        if v then
          local p = split(v)
          if p[6] == ARGV[1] then
            p[6] = ''
            redis.call('HSET', KEYS[1], f[2], join(p))
          end
        end
        return f[2]
        """;

    // KEYS: presence. ARGV: connection, change of open chats, now ('' keeps the last take).
    private const string CountScript = Lib + """
        local v = redis.call('HGET', KEYS[1], ARGV[1])
        if not v then return 0 end
        local p = split(v)
        p[2] = tostring(math.max(0, tonumber(p[2]) + tonumber(ARGV[2])))
        if ARGV[3] ~= '' then p[3] = ARGV[3] end
        redis.call('HSET', KEYS[1], ARGV[1], join(p))
        return 1
        """;

    private const CommandFlags Primary = CommandFlags.DemandMaster;

    private IDatabase Db => redis.GetDatabase();

    public async Task<Guid?> SetPresenceAsync(byte[] orgId, string connectionId, bool? available, int openChats, DateTimeOffset now, DateTimeOffset aliveUntil) =>
        Session(await Db.ScriptEvaluateAsync(SetPresenceScript, [keys.Presence(orgId), keys.Offers(orgId)],
            [connectionId, available is { } on ? (on ? "1" : "0") : "", openChats, Ms(aliveUntil), Ttl(aliveUntil - now)], flags: Primary));

    public async Task<Guid?> RemovePresenceAsync(byte[] orgId, string connectionId) =>
        Session(await Db.ScriptEvaluateAsync(RemovePresenceScript, [keys.Presence(orgId), keys.Offers(orgId)], [connectionId], flags: Primary));

    public async Task<OfferMade?> OfferAsync(byte[] orgId, IReadOnlyList<Guid> candidates, int capacity, DateTimeOffset now, DateTimeOffset until)
    {
        if (candidates.Count == 0)
        {
            return null;
        }

        RedisValue[] args = [Ms(now), Ms(until), capacity, Ttl(until - now + DeclineMemory), .. candidates.Select(c => (RedisValue)c.ToString("N"))];
        var result = await Db.ScriptEvaluateAsync(OfferScript, [keys.Presence(orgId), keys.Offers(orgId)], args, flags: Primary);
        if (result.IsNull || result.Length != 2)
        {
            return null;
        }

        return new OfferMade(Guid.ParseExact(result[0].ToString(), "N"), result[1].ToString());
    }

    public async Task<OfferAnswer> AnswerAsync(byte[] orgId, Guid sessionId, string connectionId, bool accept, DateTimeOffset now, DateTimeOffset holdUntil) =>
        (long)await Db.ScriptEvaluateAsync(AnswerScript, [keys.Presence(orgId), keys.Offers(orgId)],
            [sessionId.ToString("N"), connectionId, accept ? "1" : "0", Ms(now), Ms(holdUntil)], flags: Primary) switch
        {
            1 => OfferAnswer.Done,
            -1 => OfferAnswer.Expired,
            _ => OfferAnswer.NotOffered,
        };

    public async Task<IReadOnlyList<LapsedOffer>> LapseAsync(byte[] orgId, DateTimeOffset now, int lapsesBeforeAway)
    {
        var result = await Db.ScriptEvaluateAsync(LapseScript, [keys.Presence(orgId), keys.Offers(orgId)], [Ms(now), lapsesBeforeAway], flags: Primary);
        var lapsed = new List<LapsedOffer>();
        for (var i = 0; i + 2 < result.Length; i += 3)
        {
            lapsed.Add(new LapsedOffer(Guid.ParseExact(result[i].ToString(), "N"), result[i + 1].ToString(), result[i + 2].ToString() == "1"));
        }

        return lapsed;
    }

    public async Task<bool> HoldAsync(byte[] orgId, Guid sessionId, string connectionId, DateTimeOffset now, DateTimeOffset until) =>
        (long)await Db.ScriptEvaluateAsync(HoldScript, [keys.Offers(orgId)],
            [sessionId.ToString("N"), connectionId, Ms(now), Ms(until), Ttl(until - now)], flags: Primary) == 1;

    public async Task<string?> ReleaseAsync(byte[] orgId, Guid sessionId)
    {
        var connection = (await Db.ScriptEvaluateAsync(ReleaseScript, [keys.Presence(orgId), keys.Offers(orgId)], [sessionId.ToString("N")], flags: Primary)).ToString();
        return string.IsNullOrEmpty(connection) ? null : connection;
    }

    public Task TookAsync(byte[] orgId, string connectionId, DateTimeOffset now) =>
        Db.ScriptEvaluateAsync(CountScript, [keys.Presence(orgId)], [connectionId, 1, Ms(now)], flags: Primary);

    public Task ChatEndedAsync(byte[] orgId, string connectionId) =>
        Db.ScriptEvaluateAsync(CountScript, [keys.Presence(orgId)], [connectionId, -1, ""], flags: Primary);

    private static long Ms(DateTimeOffset at) => at.ToUnixTimeMilliseconds();

    private static long Ttl(TimeSpan span) => (long)Math.Max(1, span.TotalMilliseconds);

    private static Guid? Session(RedisResult result) =>
        result.ToString() is { Length: 32 } text ? Guid.ParseExact(text, "N") : null;
}
