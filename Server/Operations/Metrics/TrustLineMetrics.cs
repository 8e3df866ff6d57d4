using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Reflection;
using TrustLine.Protocol.Contracts;
using TrustLine.Server.Organisations;

namespace TrustLine.Server.Operations.Metrics;

/// <summary>
/// The <c>TrustLine</c> meter. Every label value comes from a closed set (a configured organisation id, an
/// end reason, an error code, an envelope size bucket, an outcome, a command name): anything else becomes
/// <c>other</c>. Never a session id, connection id, address, token, fingerprint or counsellor identity, and
/// no series per counsellor. Server.Tests/Operations/MetricsPrivacyTests.cs scrapes and checks this.
/// </summary>
public sealed class TrustLineMetrics
{
    public const string MeterName = "TrustLine";

    /// <summary>Label keys our instruments use; the metrics view drops every other key, whatever its source.</summary>
    public static readonly IReadOnlySet<string> LabelKeys = new HashSet<string>(StringComparer.Ordinal)
    {
        "organisation", "reason", "code", "size", "outcome", "command", "party", "operation", "source",
    };

    /// <summary>Bucket bounds for waits, in seconds: 1 s to 1 h.</summary>
    public static readonly double[] WaitBuckets = [1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600];

    /// <summary>Bucket bounds for whole sessions, in seconds: 1 s to the longest lifetime (4 h by default).</summary>
    public static readonly double[] SessionBuckets = [.. WaitBuckets, 7200, 14400];

    public const string Other = "other";

    private static readonly IReadOnlySet<string> Codes = Constants(typeof(ErrorCodes));
    private static readonly IReadOnlySet<string> Reasons = Constants(typeof(EndReasons));
    private static readonly IReadOnlySet<string> Outcomes = Constants(typeof(SessionOutcomes));

    private readonly IReadOnlySet<string> organisations;
    private readonly Counter<long> opened;
    private readonly Counter<long> ended;
    private readonly Counter<long> outcomes;
    private readonly Histogram<double> outcomeDuration;
    private readonly Counter<long> resumes;
    private readonly Counter<long> refusals;
    private readonly Histogram<double> commandDuration;
    private readonly Histogram<double> queueWait;
    private readonly Histogram<double> firstAnswer;
    private readonly Counter<long> relayed;
    private readonly Counter<long> buffered;
    private readonly Counter<long> storeErrors;
    private readonly Histogram<double> storeDuration;
    private readonly Counter<long> puzzlesIssued;
    private readonly Counter<long> puzzlesSolved;
    private readonly Counter<long> puzzlesRefused;
    private readonly ConcurrentDictionary<ResponderPresence, byte> responders = new();
    private readonly ConcurrentDictionary<string, ConcurrentQueue<(long IssuerNotAfter, long ResponderNotAfter, DateTimeOffset Until)>> signIns = new();
    private readonly TimeProvider time;
    private volatile StoreSample? sample;
    private int? puzzleDifficulty;

    public TrustLineMetrics(IMeterFactory meters, OrganisationDirectory directory, TimeProvider time)
    {
        this.time = time;
        organisations = directory.All.Select(o => o.OrgIdHex).ToHashSet(StringComparer.Ordinal);
#pragma warning disable CA2000 // The meter factory owns the meter and disposes it with the host.
        var meter = meters.Create(MeterName);
#pragma warning restore CA2000

        opened = meter.CreateCounter<long>("trustline.sessions.opened", "{session}", "Sessions opened by seekers, by organisation.");
        ended = meter.CreateCounter<long>("trustline.sessions.ended", "{session}", "Sessions ended, by organisation and end reason code.");
        outcomes = meter.CreateCounter<long>("trustline.sessions.outcomes", "{session}",
            "What became of sessions, by organisation and outcome (served, abandoned, dropped, refused, timed_out, transferred, lost).");
        outcomeDuration = meter.CreateHistogram("trustline.sessions.outcome_duration", "s",
            "Time from a session's opening to its outcome, by organisation and outcome (refused opens have none).",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = SessionBuckets });
        meter.CreateObservableGauge("trustline.sessions.waiting", () => sample?.Waiting ?? [], "{session}", "Sessions waiting in the queue, by organisation (all nodes; sampled from the store).");
        meter.CreateObservableGauge("trustline.sessions.active", ObserveActive, "{session}", "Answered or taken sessions that have not ended (all nodes; sampled from the store).");
        queueWait = meter.CreateHistogram("trustline.queue.wait", "s", "Time a session waited in the queue before a counsellor took it, by organisation.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = WaitBuckets });
        firstAnswer = meter.CreateHistogram("trustline.sessions.first_answer", "s", "Time from a session's opening to the counsellor's answer (msg2), by organisation.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = WaitBuckets });
        meter.CreateObservableGauge("trustline.responders.signed_in", () => ObserveResponders(availableOnly: false), "{counsellor}", "Counsellors connected to this node, by organisation.");
        meter.CreateObservableGauge("trustline.responders.available", () => ObserveResponders(availableOnly: true), "{counsellor}", "Counsellors connected to this node and holding no session, by organisation.");
        meter.CreateObservableGauge("trustline.certificates.issuer_expiry", () => ObserveExpiry(issuer: true), "s",
            "Earliest issuer certificate expiry (Unix time) among counsellors signed in on this node within their token lifetime, by organisation.");
        meter.CreateObservableGauge("trustline.certificates.responder_expiry", () => ObserveExpiry(issuer: false), "s",
            "Earliest counsellor certificate expiry (Unix time) among counsellors signed in on this node within their token lifetime, by organisation.");
        resumes = meter.CreateCounter<long>("trustline.resumes", "{resume}", "Resumes after a dropped connection, by party and outcome (resumed, refused, error).");
        refusals = meter.CreateCounter<long>("trustline.refusals", "{refusal}", "Hub calls refused, by command and error code.");
        commandDuration = meter.CreateHistogram("trustline.commands.duration", "s", "Time to handle a hub command, by command and outcome (ok, refused, error).",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] });
        relayed = meter.CreateCounter<long>("trustline.envelopes.relayed", "{envelope}", "Envelopes accepted for relay, by size bucket.");
        buffered = meter.CreateCounter<long>("trustline.envelopes.buffered", "{envelope}", "Envelopes accepted while the recipient was away (delivered from the buffer on resume), by size bucket.");
        storeErrors = meter.CreateCounter<long>("trustline.store.errors", "{error}", "Store calls that failed (Redis unreachable or timed out), by source.");
        storeDuration = meter.CreateHistogram("trustline.store.duration", "s", "Time of the sampler's store reads, by operation: a steady probe of store latency.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5] });
        meter.CreateObservableGauge("trustline.store.up", () => sample is { } s ? [new Measurement<int>(s.Up ? 1 : 0)] : Array.Empty<Measurement<int>>(), "1",
            "1 while this node's last store read succeeded, 0 when it failed.");
        meter.CreateObservableGauge("trustline.reaper.lag", () => sample is { Up: true } s ? [new Measurement<double>(s.ReaperLagSeconds)] : Array.Empty<Measurement<double>>(), "s",
            "How far the oldest due session timer is past due (a lower bound: 0, 1, 5, 15, 60, 300, 900 or 3600 s).");

        // The admission puzzle has no call sites yet: these light up when it lands.
        puzzlesIssued = meter.CreateCounter<long>("trustline.puzzles.issued", "{puzzle}", "Admission puzzles handed out.");
        puzzlesSolved = meter.CreateCounter<long>("trustline.puzzles.solved", "{puzzle}", "Admission puzzles solved and accepted.");
        puzzlesRefused = meter.CreateCounter<long>("trustline.puzzles.refused", "{puzzle}", "Admission puzzle solutions refused, by error code.");
        meter.CreateObservableGauge("trustline.puzzles.difficulty", () => puzzleDifficulty is { } d ? [new Measurement<int>(d)] : Array.Empty<Measurement<int>>(), "{bit}",
            "The admission puzzle's current difficulty.");
    }

    public void SessionOpened(ReadOnlySpan<byte> orgId) => opened.Add(1, new KeyValuePair<string, object?>("organisation", Organisation(orgId)));

    public void SessionEnded(ReadOnlySpan<byte> orgId, string reason) =>
        ended.Add(1, new("organisation", Organisation(orgId)), new("reason", Reasons.Contains(reason) ? reason : Other));

    /// <summary>
    /// Counts one outcome (<see cref="SessionOutcomes"/>) of the organisation's sessions, with the time since
    /// the session opened when it had one. Ending a session counts its outcome (<see cref="SessionOutcomes.Of"/>);
    /// a refused open counts <c>refused</c>.
    /// </summary>
    public void SessionOutcome(ReadOnlySpan<byte> orgId, string outcome, TimeSpan? sinceOpen)
    {
        var organisation = new KeyValuePair<string, object?>("organisation", Organisation(orgId));
        var label = new KeyValuePair<string, object?>("outcome", Outcomes.Contains(outcome) ? outcome : Other);
        outcomes.Add(1, organisation, label);
        if (sinceOpen is { } duration)
        {
            outcomeDuration.Record(Math.Max(0, duration.TotalSeconds), organisation, label);
        }
    }

    public void SessionTaken(ReadOnlySpan<byte> orgId, TimeSpan waited) =>
        queueWait.Record(Math.Max(0, waited.TotalSeconds), new KeyValuePair<string, object?>("organisation", Organisation(orgId)));

    public void SessionAnswered(ReadOnlySpan<byte> orgId, TimeSpan sinceOpen) =>
        firstAnswer.Record(Math.Max(0, sinceOpen.TotalSeconds), new KeyValuePair<string, object?>("organisation", Organisation(orgId)));

    public void Resumed(string party, string outcome) => resumes.Add(1, new("party", party), new("outcome", outcome));

    public void Refused(string command, string? code) => refusals.Add(1, new("command", command), new("code", Code(code)));

    public void CommandHandled(string command, string outcome, TimeSpan duration) =>
        commandDuration.Record(duration.TotalSeconds, new("command", command), new("outcome", outcome));

    public void EnvelopeRelayed(int size) => relayed.Add(1, new KeyValuePair<string, object?>("size", SizeBucket(size)));

    /// <summary>
    /// Called by the relay for each new envelope it keeps: counted when the recipient is away, so the envelope
    /// waits in the buffer for a resume (a live delivery is counted as relayed by the behaviour).
    /// </summary>
    public void EnvelopeStored(int size, bool recipientAway)
    {
        if (recipientAway)
        {
            buffered.Add(1, new KeyValuePair<string, object?>("size", SizeBucket(size)));
        }
    }

    public void StoreFailed(string source) => storeErrors.Add(1, new KeyValuePair<string, object?>("source", source));

    public void StoreRead(string operation, TimeSpan duration) => storeDuration.Record(duration.TotalSeconds, new KeyValuePair<string, object?>("operation", operation));

    public void PuzzleIssued() => puzzlesIssued.Add(1);

    public void PuzzleSolved() => puzzlesSolved.Add(1);

    public void PuzzleRefused(string code) => puzzlesRefused.Add(1, new KeyValuePair<string, object?>("code", Code(code)));

    public void PuzzleDifficulty(int difficulty) => puzzleDifficulty = difficulty;

    /// <summary>
    /// A counsellor signed in: keeps only the two expiry times, under the organisation, until the token runs
    /// out. No key, fingerprint or token is kept.
    /// </summary>
    public void SignedIn(ReadOnlySpan<byte> orgId, long issuerNotAfter, long responderNotAfter, DateTimeOffset tokenExpires)
    {
        var queue = signIns.GetOrAdd(Organisation(orgId), _ => new());
        queue.Enqueue((issuerNotAfter, responderNotAfter, tokenExpires));
        var now = time.GetUtcNow();
        while (queue.TryPeek(out var head) && head.Until < now && queue.TryDequeue(out _))
        {
            // Drop sign-ins whose tokens have run out (tokens share one lifetime, so they leave in order).
        }
    }

    internal void Connected(ResponderPresence presence) => responders.TryAdd(presence, 0);

    internal void Disconnected(ResponderPresence presence) => responders.TryRemove(presence, out _);

    internal void Sampled(StoreSample value) => sample = value;

    internal StoreSample? LastSample => sample;

    /// <summary>An organisation id as a label: only a configured organisation's id, else <c>other</c>.</summary>
    public string Organisation(ReadOnlySpan<byte> orgId)
    {
        var hex = Convert.ToHexStringLower(orgId);
        return organisations.Contains(hex) ? hex : Other;
    }

    /// <summary>Envelopes come in four padded sizes (PROTOCOL.md §5); the label names the padding bucket.</summary>
    public static string SizeBucket(int size) => size switch
    {
        299 => "256",
        1067 => "1k",
        4139 => "4k",
        16427 => "16k",
        _ => Other,
    };

    public static string Code(string? code) => code is not null && Codes.Contains(code) ? code : Other;

    private IEnumerable<Measurement<long>> ObserveActive() =>
        sample is { Up: true, Live: { } live } s ? [new Measurement<long>(Math.Max(0, live - s.Waiting.Sum(w => w.Value)))] : [];

    private IEnumerable<Measurement<int>> ObserveResponders(bool availableOnly)
    {
        var counts = organisations.ToDictionary(o => o, _ => 0, StringComparer.Ordinal);
        foreach (var presence in responders.Keys)
        {
            if (!availableOnly || presence.HoldsNoSession)
            {
                counts[presence.Organisation] = counts.GetValueOrDefault(presence.Organisation) + 1;
            }
        }

        return counts.Select(c => new Measurement<int>(c.Value, new KeyValuePair<string, object?>("organisation", c.Key)));
    }

    private IEnumerable<Measurement<long>> ObserveExpiry(bool issuer)
    {
        var now = time.GetUtcNow();
        foreach (var (organisation, queue) in signIns)
        {
            var current = queue.Where(s => s.Until >= now).ToList();
            if (current.Count > 0)
            {
                yield return new Measurement<long>(current.Min(s => issuer ? s.IssuerNotAfter : s.ResponderNotAfter), new KeyValuePair<string, object?>("organisation", organisation));
            }
        }
    }

    private static HashSet<string> Constants(Type type) =>
        [.. type.GetFields(BindingFlags.Public | BindingFlags.Static).Where(f => f.IsLiteral && f.FieldType == typeof(string)).Select(f => (string)f.GetRawConstantValue()!)];
}

/// <summary>
/// What became of a session, as operations count it (<c>trustline.sessions.outcomes</c>): one closed set of
/// label values, one outcome per session (a transferred chat is two sessions: the one handed over, and the new one).
/// </summary>
public static class SessionOutcomes
{
    /// <summary>A counsellor took it, and it ended without a lost connection (either side closed, idle, lifetime).</summary>
    public const string Served = "served";

    /// <summary>The seeker left the queue before being taken.</summary>
    public const string Abandoned = "abandoned";

    /// <summary>A party's connection was lost past its grace (while waiting: past the queue's hold).</summary>
    public const string Dropped = "dropped";

    /// <summary>The open was refused: the organisation is closed, or its queue is full.</summary>
    public const string Refused = "refused";

    /// <summary>It waited the longest wait the organisation allows and nobody took it.</summary>
    public const string TimedOut = "timed_out";

    /// <summary>
    /// A counsellor handed the chat on and the seeker accepted: the session ended as <c>transferred</c>. The chat
    /// goes on as a new session, whose own outcome is counted when it ends.
    /// </summary>
    public const string Transferred = "transferred";

    /// <summary>The store lost the session's state.</summary>
    public const string Lost = "lost";

    /// <summary>The outcome of a session that ended with <paramref name="reason"/> (an <see cref="EndReasons"/> code), waiting or not.</summary>
    public static string Of(bool waiting, string reason) => reason switch
    {
        EndReasons.SeekerAbandoned or EndReasons.ResponderAbandoned or EndReasons.QueueHoldExpired => Dropped,
        EndReasons.SeekerLeftQueue => Abandoned,
        EndReasons.QueueTimeout => TimedOut,
        EndReasons.StoreLost => Lost,
        EndReasons.Transferred => Transferred,
        EndReasons.SeekerClosed when waiting => Abandoned,
        _ when waiting => TrustLineMetrics.Other,
        _ => Served,
    };
}

/// <summary>What the sampler last read from the store (shared by all nodes).</summary>
internal sealed record StoreSample(bool Up, Measurement<long>[] Waiting, long? Live, double ReaperLagSeconds);

/// <summary>A counsellor's connection as the gauges see it: its organisation, and whether it holds a session.</summary>
internal sealed class ResponderPresence(string organisation, Func<bool> holdsNoSession)
{
    public string Organisation { get; } = organisation;

    public bool HoldsNoSession => holdsNoSession();
}
