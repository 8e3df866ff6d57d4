using TrustLine.Protocol.Crypto;

namespace TrustLine.Server.Storage;

/// <summary>Which side of a session.</summary>
public enum Party
{
    Seeker,
    Responder,
}

public enum SessionState
{
    Queued,
    Active,
}

/// <summary>
/// The session record: exactly the fields of the data inventory (docs/architecture.md). No addresses,
/// no device data, no message content; <c>Msg1</c> and <c>Msg2</c> hold only public keys and certificates.
/// </summary>
public sealed record SessionRecord
{
    public required Guid Id { get; init; }
    public required byte[] OrgId { get; init; }
    public required string Language { get; init; }
    public required string Topic { get; init; }
    public required bool Urgent { get; init; }
    public required byte[] Msg1 { get; init; }
    public required byte[] ResumeTokenHash { get; init; }
    public required DateTimeOffset CreatedAt { get; init; }

    /// <summary>Created + maximum lifetime: no key of the session outlives it.</summary>
    public required DateTimeOffset Deadline { get; init; }

    public SessionState State { get; init; } = SessionState.Queued;
    public string? ResponderId { get; init; }
    public byte[]? Msg2 { get; init; }
    public string? SeekerConnection { get; init; }
    public string? ResponderConnection { get; init; }

    /// <summary>When the seeker's connection dropped, while it is away.</summary>
    public DateTimeOffset? SeekerGoneAt { get; init; }

    /// <summary>When the responder's connection dropped, while it is away.</summary>
    public DateTimeOffset? ResponderGoneAt { get; init; }

    public DateTimeOffset LastActivity { get; init; }

    /// <summary>
    /// Counts changes of either party's connection (claim, resume, drop). Route messages between nodes
    /// carry it, so a node keeps the newest route whatever order reads and messages arrive in.
    /// </summary>
    public long Epoch { get; init; }

    /// <summary>Highest acknowledged seq per direction, −1 for none.</summary>
    public long AckedClientToServer { get; init; } = -1;

    public long AckedServerToClient { get; init; } = -1;

    /// <summary>Highest seq ever buffered (and so relayed) per direction, −1 for none: nothing past it can be acknowledged.</summary>
    public long HighestClientToServer { get; init; } = -1;

    public long HighestServerToClient { get; init; } = -1;

    /// <summary>
    /// When the seeker first joined a queue: a transferred session carries its seeker's original join time,
    /// and the queue orders by it (so a transferred seeker stands ahead of later arrivals). Null means <see cref="CreatedAt"/>.
    /// </summary>
    public DateTimeOffset? QueuedSince { get; init; }

    /// <summary>The organisation a pending transfer proposal names, while the seeker has not answered it.</summary>
    public byte[]? TransferTo { get; init; }

    /// <summary>When the pending transfer proposal lapses.</summary>
    public DateTimeOffset? TransferUntil { get; init; }

    public long Acked(Direction direction) => direction == Direction.ClientToServer ? AckedClientToServer : AckedServerToClient;

    public long Highest(Direction direction) => direction == Direction.ClientToServer ? HighestClientToServer : HighestServerToClient;

    public string? Connection(Party party) => party == Party.Seeker ? SeekerConnection : ResponderConnection;
}

/// <summary>What became of an envelope handed to the buffer.</summary>
public enum AppendOutcome
{
    Stored,

    /// <summary>That seq is already stored (a resend).</summary>
    Duplicate,

    /// <summary>The session no longer exists (ended on some node): nothing was written.</summary>
    SessionGone,
}

public enum CreateOutcome
{
    Created,

    /// <summary>Created and queued, but as not urgent: it asked to be urgent and the urgent places were all taken.</summary>
    CreatedNotUrgent,
    Exists,
    QueueFull,
}

/// <summary>What a create did, and the place the session took in its queue (<see cref="QueuePlace.None"/> unless queued).</summary>
public sealed record Opening(CreateOutcome Outcome, QueuePlace Place);

/// <summary>
/// A queued session's exact place (1-based; 0 if not queued), the queue's length, and its ticket: tickets of
/// one organisation and class (urgent or not) are handed out in order of arrival, from 1, and order the class.
/// </summary>
public sealed record QueuePlace(int Position, int Waiting, long Ticket, bool Urgent)
{
    /// <summary>Not queued.</summary>
    public static readonly QueuePlace None = new(0, 0, 0, false);
}

/// <summary>
/// The queue per class: how many wait, and the ticket served through (every ticket up to it has left; the
/// class's last ticket handed out when none waits). What a seeker needs to compute its place from its ticket.
/// </summary>
public sealed record QueueCounts(int UrgentWaiting, long UrgentServedThrough, int OtherWaiting, long OtherServedThrough);

/// <summary>Queue tickets (docs/protocol.md, "The place, from a ticket").</summary>
public static class QueueTickets
{
    /// <summary>
    /// The first ticket of a class, each time its queue starts empty. Far above 1, so that a transferred seeker
    /// can always be put before the lowest waiting ticket with a ticket that is still positive (0 means "no ticket").
    /// </summary>
    public const long First = 1_000_001;
}

/// <summary>A queued session's routing fields.</summary>
public sealed record QueuedSession(Guid Id, string Language, string Topic, bool Urgent, DateTimeOffset CreatedAt, string? SeekerConnection);

/// <summary>
/// Short-lived session state: sessions, queues, undelivered envelopes and end timers. Implemented on
/// Redis (shared by all nodes; atomic where nodes race; every key has a TTL) and in process for a single
/// node. Both pass the same contract tests. A session's timer belongs to its organisation (in Redis, the slot of
/// its queue), so every timer call names the organisation.
/// </summary>
public interface ISessionStore
{
    /// <summary>
    /// Creates the session and queues it, unless its id exists or the queue holds <paramref name="queueCapacity"/>.
    /// An urgent session joins as not urgent when the queue already holds <paramref name="urgentCapacity"/>
    /// urgent ones (checked atomically with the add), and its record says so.
    /// </summary>
    Task<CreateOutcome> CreateAsync(SessionRecord session, int queueCapacity, int urgentCapacity = int.MaxValue);

    /// <summary>
    /// An open: <see cref="CreateAsync"/>, and for a session created, its first timer at <paramref name="timer"/> (as
    /// <see cref="ScheduleAsync"/> with its deadline, in the same step as the queue entry); answers also its place in the
    /// queue as the queue stood when it joined (what <see cref="GetPlaceAsync"/> would read right after). A refused
    /// open leaves neither record nor timer.
    /// </summary>
    Task<Opening> OpenAsync(SessionRecord session, DateTimeOffset timer, int queueCapacity, int urgentCapacity = int.MaxValue);

    Task<SessionRecord?> GetAsync(Guid id);

    /// <summary>The first <paramref name="max"/> of the organisation's queue in order: urgent first, then by ticket.</summary>
    Task<IReadOnlyList<QueuedSession>> GetQueueAsync(byte[] orgId, int max);

    /// <summary>1-based place in the queue, 0 if not queued; and the queue length.</summary>
    Task<(int Position, int Waiting)> GetQueuePositionAsync(byte[] orgId, Guid id);

    /// <summary>The session's exact place and its ticket, read together (<see cref="QueuePlace"/>).</summary>
    Task<QueuePlace> GetPlaceAsync(byte[] orgId, Guid id);

    /// <summary>The queue's counts per class, in one step whatever its length (<see cref="QueueCounts"/>).</summary>
    Task<QueueCounts> GetQueueCountsAsync(byte[] orgId);

    /// <summary>
    /// Takes a queued session for a responder; exactly one caller wins across all nodes. With <paramref name="timer"/>,
    /// the winner's session timer is at <paramref name="timer"/> afterwards (moved with the queue entry's removal, in
    /// the same step); without, the timer stays where it was.
    /// </summary>
    Task<SessionRecord?> ClaimAsync(byte[] orgId, Guid id, string responderId, string connectionId, DateTimeOffset? timer = null);

    /// <summary>Stores <c>msg2</c> once, for the responder that holds the session.</summary>
    Task<bool> SetAnswerAsync(Guid id, string responderId, byte[] msg2);

    /// <summary>
    /// Records a party's current connection (null with <paramref name="goneAt"/> when it dropped); returns the
    /// session's new <see cref="SessionRecord.Epoch"/>, or null if the session is gone.
    /// </summary>
    Task<long?> SetConnectionAsync(Guid id, Party party, string? connectionId, DateTimeOffset? goneAt);

    /// <summary>
    /// Records the party away since <paramref name="goneAt"/>, only if <paramref name="connectionId"/> is still
    /// its current connection (checked atomically); returns the new epoch, or null if it was not.
    /// </summary>
    Task<long?> MarkGoneAsync(Guid id, Party party, string connectionId, DateTimeOffset goneAt);

    /// <summary>
    /// Keeps an envelope until acknowledged, only while the session exists (checked atomically with the
    /// write, so a write in flight cannot land after the session's delete); a stored seq is never replaced.
    /// </summary>
    Task<AppendOutcome> AppendEnvelopeAsync(Guid id, Direction direction, ulong sequence, byte[] envelope, DateTimeOffset expiresAt);

    /// <summary>Undelivered envelopes after <paramref name="after"/>, in order (at most <paramref name="window"/> seqs past the ack).</summary>
    Task<IReadOnlyList<(ulong Sequence, byte[] Envelope)>> GetEnvelopesAsync(Guid id, Direction direction, long after, int window);

    /// <summary>
    /// Forgets envelopes up to <paramref name="through"/> (at most <paramref name="window"/> back) and records
    /// the ack; returns the recorded ack, −2 if the session is gone, −3 if <paramref name="through"/> lies past
    /// the highest seq ever buffered in that direction (nothing past it has been sent).
    /// </summary>
    Task<long> AcknowledgeAsync(Guid id, Direction direction, ulong through, int window);

    /// <summary>Records activity and refreshes the TTLs (never past the session's deadline).</summary>
    Task TouchAsync(Guid id, DateTimeOffset now, DateTimeOffset keyExpiry);

    /// <summary>
    /// Deletes every key of the session at once, and its timer; returns the record if this call deleted it. A record
    /// already gone (expired) names no organisation: its timer is left to the reaper, which drops a timer without a record.
    /// </summary>
    Task<SessionRecord?> DeleteAsync(Guid id, int window);

    /// <summary>
    /// Sets when the session's timer next fires (idle, grace or lifetime); <paramref name="orgId"/> is the session's
    /// organisation. <paramref name="keyExpiry"/> is the session's deadline: the organisation's timers outlive it, and
    /// an earlier one never shortens another session's timer.
    /// </summary>
    Task ScheduleAsync(byte[] orgId, Guid id, DateTimeOffset when, DateTimeOffset keyExpiry);

    /// <summary>The organisation's sessions whose timer is due; <see cref="TryTakeTimerAsync"/> decides which node handles each.</summary>
    Task<IReadOnlyList<Guid>> GetDueAsync(byte[] orgId, DateTimeOffset now, int max);

    /// <summary>
    /// Takes a due timer: exactly one caller wins. The timer is not removed but hidden until
    /// <paramref name="leaseUntil"/>, so when the taker fails before it finishes, the timer comes due again.
    /// </summary>
    Task<bool> TryTakeTimerAsync(byte[] orgId, Guid id, DateTimeOffset now, DateTimeOffset leaseUntil);

    /// <summary>
    /// Finishes a taken timer: it moves to <paramref name="next"/>, or goes when null; unless it was scheduled
    /// anew since it was taken (a fresher schedule stands). Ending the session also finishes it.
    /// </summary>
    Task CompleteTimerAsync(byte[] orgId, Guid id, DateTimeOffset leaseUntil, DateTimeOffset? next);

    /// <summary>
    /// The organisations whose timers the reaper sweeps: those this node serves (<paramref name="serving"/>, listed
    /// from now until <paramref name="until"/>, never shortened) and every other still listed, as by a node that
    /// served an organisation since removed from the configuration, whose sessions still need their ends. Shared by
    /// all nodes. Also moves timers an earlier release's nodes keep in one key for all organisations to their own.
    /// </summary>
    Task<IReadOnlyList<byte[]>> GetTimerOrganisationsAsync(IReadOnlyCollection<byte[]> serving, DateTimeOffset until);

    /// <summary>
    /// Records a transfer proposal to <paramref name="targetOrgId"/> until <paramref name="until"/>, only while
    /// the session is active, held by <paramref name="responderId"/> and has no proposal that is still running
    /// at <paramref name="now"/> (checked atomically).
    /// </summary>
    Task<bool> ProposeTransferAsync(Guid id, string responderId, byte[] targetOrgId, DateTimeOffset until, DateTimeOffset now);

    /// <summary>
    /// Removes the proposal lapsing at <paramref name="until"/>, only if it is still the session's; true for the one
    /// caller that removed it, so an accept, a decline and the lapse settle a proposal exactly once across nodes.
    /// </summary>
    Task<bool> ClearTransferAsync(Guid id, DateTimeOffset until);
}

/// <summary>
/// What a responder's sign-in leaves: hashed access tokens. (Challenges are stateless, see
/// <c>Responders/Challenges.cs</c>; a spent one is kept by <c>Admission.ISpentTokens</c>.)
/// </summary>
public interface IAccessStore
{
    Task StoreTokenAsync(byte[] tokenHash, ResponderGrant grant, TimeSpan lifetime);

    Task<ResponderGrant?> GetTokenAsync(byte[] tokenHash);
}

/// <summary>What a responder token allows: one responder key of one organisation, until a time.</summary>
public sealed record ResponderGrant(byte[] OrgId, string ResponderId, DateTimeOffset ExpiresAt);
