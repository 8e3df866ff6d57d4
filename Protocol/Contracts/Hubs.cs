using MessagePack;

namespace TrustLine.Protocol.Contracts;

/// <summary>Paths of the two hubs and the HTTP endpoints, relative to the server's base address.</summary>
public static class Routes
{
    /// <summary>The anonymous seeker hub.</summary>
    public const string SeekerHub = "/hubs/seeker";

    /// <summary>The responder hub; needs a token from <see cref="SignIn"/>.</summary>
    public const string ResponderHub = "/hubs/responder";

    /// <summary><c>POST</c>: a fresh single-use sign-in challenge.</summary>
    public const string Challenge = "/v1/responders/challenge";

    /// <summary><c>POST</c>: trade a signed challenge and certificates for a responder token.</summary>
    public const string SignIn = "/v1/responders/sign-in";

    /// <summary><c>GET</c>: the organisations this server serves.</summary>
    public const string Directory = "/v1/directory";
}

/// <summary>
/// The seeker hub's methods. The server's hub implements this interface, so a renamed or changed method fails
/// the build; clients call them by name (<see cref="SeekerHubMethods"/>). A refused call fails with the
/// error text <c>"code: sentence"</c>, the code one of <see cref="ErrorCodes"/>.
/// </summary>
public interface ISeekerHub
{
    /// <summary>A fresh admission puzzle (PROTOCOL.md §9, 42 bytes) for opening a session with the organisation <paramref name="orgId"/>.</summary>
    Task<byte[]> GetPuzzle(byte[] orgId);

    /// <summary>Open a session; its place and ticket in the queue come back, then <see cref="ISeekerClient.QueueMoved"/> as it moves.</summary>
    Task<OpenSessionResult> OpenSession(OpenSessionRequest request);

    /// <summary>Resume after a reconnect; missed envelopes follow as <see cref="ISeekerClient.Envelope"/> calls.</summary>
    Task<ResumeSessionResult> ResumeSession(ResumeSessionRequest request);

    /// <summary>Send one envelope.</summary>
    Task<SendResult> Send(byte[] envelope);

    /// <summary>Acknowledge received envelopes up to a sequence number (cumulative).</summary>
    Task Acknowledge(ulong through);

    /// <summary>End the session (or leave the queue).</summary>
    Task Close();

    /// <summary>
    /// Accept the transfer the counsellor proposed (<see cref="ISeekerClient.TransferProposed"/>) with a FRESH
    /// <c>msg1</c> for the target organisation (new session id, new ephemeral key). The new session joins the
    /// target's queue ahead of new arrivals, the old one ends as <see cref="EndReasons.Transferred"/>, and this
    /// connection now holds the new one: its resume token and place come back as for an open.
    /// </summary>
    Task<OpenSessionResult> AcceptTransfer(byte[] msg1);

    /// <summary>Decline the proposed transfer; the chat goes on with the same counsellor.</summary>
    Task DeclineTransfer();
}

/// <summary>The responder hub's methods (needs a token from <see cref="Routes.SignIn"/>); see <see cref="ISeekerHub"/> for refusals.</summary>
public interface IResponderHub
{
    /// <summary>The organisation's queue (its first 100), routing fields only.</summary>
    Task<QueueEntry[]> GetQueue();

    /// <summary>Take the next session of the queue, or null when none waits.</summary>
    Task<TakenSession?> TakeNext();

    /// <summary>Take a named session of the queue.</summary>
    Task<TakenSession?> Take(byte[] sessionId);

    /// <summary>Answer a taken session with <c>msg2</c>.</summary>
    Task Answer(byte[] sessionId, byte[] msg2);

    /// <summary>Send one envelope.</summary>
    Task<SendResult> Send(byte[] envelope);

    /// <summary>Acknowledge a session's received envelopes up to a sequence number.</summary>
    Task Acknowledge(byte[] sessionId, ulong through);

    /// <summary>Resume a held session after a reconnect.</summary>
    Task<ResumeSessionResult> ResumeSession(ResumeSessionRequest request);

    /// <summary>End a held session.</summary>
    Task Close(byte[] sessionId);

    /// <summary>
    /// Propose to hand an answered, held session to a colleague (<paramref name="orgId"/> is the own organisation)
    /// or to a partner organisation the configuration lists. The seeker is asked; the answer comes back as
    /// <see cref="IResponderClient.TransferOutcome"/>, and on acceptance the session ends as <see cref="EndReasons.Transferred"/>.
    /// </summary>
    Task Transfer(byte[] sessionId, byte[] orgId);

    /// <summary>
    /// Available (true) or away: with the organisation's offers on, only an available responder below its capacity
    /// is offered sessions (<see cref="IResponderClient.Offered"/>). Every connection starts away.
    /// </summary>
    Task<ResponderStatus> SetAvailability(bool available);

    /// <summary>Accept the session offered to this connection: taken as with <see cref="Take"/>; answer it with <c>msg2</c>.</summary>
    Task<TakenSession> AcceptOffer(byte[] sessionId);

    /// <summary>Decline the session offered to this connection: it is offered to the next responder.</summary>
    Task DeclineOffer(byte[] sessionId);
}

/// <summary>Names of the seeker hub's methods, for clients in other languages.</summary>
public static class SeekerHubMethods
{
    /// <summary><see cref="ISeekerHub.GetPuzzle"/>.</summary>
    public const string GetPuzzle = nameof(ISeekerHub.GetPuzzle);

    /// <summary><see cref="ISeekerHub.OpenSession"/>.</summary>
    public const string OpenSession = nameof(ISeekerHub.OpenSession);

    /// <summary><see cref="ISeekerHub.ResumeSession"/>.</summary>
    public const string ResumeSession = nameof(ISeekerHub.ResumeSession);

    /// <summary><see cref="ISeekerHub.Send"/>.</summary>
    public const string Send = nameof(ISeekerHub.Send);

    /// <summary><see cref="ISeekerHub.Acknowledge"/>.</summary>
    public const string Acknowledge = nameof(ISeekerHub.Acknowledge);

    /// <summary><see cref="ISeekerHub.Close"/>.</summary>
    public const string Close = nameof(ISeekerHub.Close);

    /// <summary><see cref="ISeekerHub.AcceptTransfer"/>.</summary>
    public const string AcceptTransfer = nameof(ISeekerHub.AcceptTransfer);

    /// <summary><see cref="ISeekerHub.DeclineTransfer"/>.</summary>
    public const string DeclineTransfer = nameof(ISeekerHub.DeclineTransfer);
}

/// <summary>Names of the responder hub's methods.</summary>
public static class ResponderHubMethods
{
    /// <summary><see cref="IResponderHub.GetQueue"/>.</summary>
    public const string GetQueue = nameof(IResponderHub.GetQueue);

    /// <summary><see cref="IResponderHub.TakeNext"/>.</summary>
    public const string TakeNext = nameof(IResponderHub.TakeNext);

    /// <summary><see cref="IResponderHub.Take"/>.</summary>
    public const string Take = nameof(IResponderHub.Take);

    /// <summary><see cref="IResponderHub.Answer"/>.</summary>
    public const string Answer = nameof(IResponderHub.Answer);

    /// <summary><see cref="IResponderHub.Send"/>.</summary>
    public const string Send = nameof(IResponderHub.Send);

    /// <summary><see cref="IResponderHub.Acknowledge"/>.</summary>
    public const string Acknowledge = nameof(IResponderHub.Acknowledge);

    /// <summary><see cref="IResponderHub.ResumeSession"/>.</summary>
    public const string ResumeSession = nameof(IResponderHub.ResumeSession);

    /// <summary><see cref="IResponderHub.Close"/>.</summary>
    public const string Close = nameof(IResponderHub.Close);

    /// <summary><see cref="IResponderHub.Transfer"/>.</summary>
    public const string Transfer = nameof(IResponderHub.Transfer);

    /// <summary><see cref="IResponderHub.SetAvailability"/>.</summary>
    public const string SetAvailability = nameof(IResponderHub.SetAvailability);

    /// <summary><see cref="IResponderHub.AcceptOffer"/>.</summary>
    public const string AcceptOffer = nameof(IResponderHub.AcceptOffer);

    /// <summary><see cref="IResponderHub.DeclineOffer"/>.</summary>
    public const string DeclineOffer = nameof(IResponderHub.DeclineOffer);
}

/// <summary>What the server calls on a seeker's connection.</summary>
public interface ISeekerClient
{
    /// <summary>The seeker's place in the queue changed (1 is next): an exact place, sent by servers before tickets.</summary>
    Task QueuePosition(QueueStatus status);

    /// <summary>
    /// The organisation's queue moved: one message to every waiting seeker of it, from which each computes its
    /// own place with its ticket (<see cref="QueueMoved.StatusFor"/>).
    /// </summary>
    Task QueueMoved(QueueMoved moved);

    /// <summary>A responder answered: the handshake's <c>msg2</c>.</summary>
    Task Answered(byte[] msg2);

    /// <summary>An envelope from the responder.</summary>
    Task Envelope(byte[] envelope);

    /// <summary>The responder acknowledged the seeker's envelopes up to <paramref name="sequence"/>.</summary>
    Task Delivered(ulong sequence);

    /// <summary>The session ended; nothing of it remains on the server.</summary>
    Task SessionEnded(SessionEnd end);

    /// <summary>
    /// The counsellor proposes to hand the chat to another counsellor of <see cref="TransferProposal.OrgId"/>:
    /// show that organisation's name from the app's own pins (never from the server), then
    /// <see cref="ISeekerHub.AcceptTransfer"/> or <see cref="ISeekerHub.DeclineTransfer"/>.
    /// </summary>
    Task TransferProposed(TransferProposal proposal);
}

/// <summary>What the server calls on a responder's connection.</summary>
public interface IResponderClient
{
    /// <summary>The organisation's queue changed: how many wait, and the first few in order.</summary>
    Task QueueChanged(QueueSnapshot queue);

    /// <summary>An envelope from a seeker of a held session.</summary>
    Task Envelope(byte[] envelope);

    /// <summary>The seeker acknowledged the responder's envelopes of a session up to <paramref name="sequence"/>.</summary>
    Task Delivered(byte[] sessionId, ulong sequence);

    /// <summary>A held session ended.</summary>
    Task SessionEnded(SessionEnd end);

    /// <summary>
    /// The seeker of a held session lost its connection (<paramref name="connected"/> false: it may come back
    /// within the grace period) or is back (true).
    /// </summary>
    Task SeekerConnection(byte[] sessionId, bool connected);

    /// <summary>What became of a transfer this responder proposed.</summary>
    Task TransferOutcome(TransferResult result);

    /// <summary>A waiting session is offered to this connection alone: accept or decline it before the offer runs out.</summary>
    Task Offered(Offer offer);

    /// <summary>The offer of a session is gone: <paramref name="reason"/> is one of <see cref="OfferEndReasons"/>.</summary>
    Task OfferWithdrawn(byte[] sessionId, string reason);

    /// <summary>The server changed this connection's availability (away after offers ran out unanswered).</summary>
    Task AvailabilityChanged(ResponderStatus status);
}

/// <summary>Opens a session on the seeker hub.</summary>
[MessagePackObject]
public sealed class OpenSessionRequest
{
    /// <summary>The handshake's first message (67 bytes); its session id becomes the session's.</summary>
    [Key(0)] public byte[] Msg1 { get; set; } = [];

    /// <summary>A language the organisation lists, e.g. <c>nl</c>.</summary>
    [Key(1)] public string Language { get; set; } = "";

    /// <summary>A topic the organisation lists, or empty.</summary>
    [Key(2)] public string Topic { get; set; } = "";

    /// <summary>Urgent sessions are answered first.</summary>
    [Key(3)] public bool Urgent { get; set; }

    /// <summary>The admission puzzle from <see cref="ISeekerHub.GetPuzzle"/> (42 bytes), or empty; see PROTOCOL.md §9.</summary>
    [Key(4)] public byte[] Puzzle { get; set; } = [];

    /// <summary>The puzzle's solution: the 8-byte counter of PROTOCOL.md §9, or empty with no puzzle.</summary>
    [Key(5)] public byte[] Solution { get; set; } = [];
}

/// <summary>The answer to <see cref="OpenSessionRequest"/>.</summary>
[MessagePackObject]
public sealed class OpenSessionResult
{
    /// <summary>Present with the session id to resume after a lost connection; keep it only in memory.</summary>
    [Key(0)] public byte[] ResumeToken { get; set; } = [];

    /// <summary>The seeker's place in the queue (1 is next).</summary>
    [Key(1)] public QueueStatus Queue { get; set; } = new();

    /// <summary>
    /// Whether the session waits as urgent. False when it asked to be urgent but the organisation's urgent
    /// places were all taken: it then waits in order of arrival with the others.
    /// </summary>
    [Key(2)] public bool Urgent { get; set; }
}

/// <summary>A seeker's place in the queue.</summary>
[MessagePackObject]
public sealed class QueueStatus
{
    /// <summary>1 is next; 0 when no longer queued.</summary>
    [Key(0)] public int Position { get; set; }

    /// <summary>How many sessions of the organisation are waiting.</summary>
    [Key(1)] public int Waiting { get; set; }

    /// <summary>The likely wait as a range: its short end in whole seconds, or −1 when the server cannot estimate it now.</summary>
    [Key(2)] public int WaitLowSeconds { get; set; } = -1;

    /// <summary>The likely wait's long end in whole seconds, or −1 when the server cannot estimate it now.</summary>
    [Key(3)] public int WaitHighSeconds { get; set; } = -1;

    /// <summary>
    /// The session's ticket in its class (<see cref="UrgentTicket"/>): tickets of one organisation and class are
    /// handed out in order of arrival, from 1. 0 when the server gave none (not queued, or an older server).
    /// </summary>
    [Key(4)] public long Ticket { get; set; }

    /// <summary>Whether the ticket is of the urgent class (answered before every other class).</summary>
    [Key(5)] public bool UrgentTicket { get; set; }

    /// <summary>
    /// How long a waiting seeker whose connection drops (a phone that switched apps) keeps its place, in whole
    /// seconds; 0 when the server does not say. Tell the seeker before it happens.
    /// </summary>
    [Key(6)] public int HoldSeconds { get; set; }

    /// <summary>
    /// The p50–p90 wait range for <paramref name="place"/> when counsellors take one session every
    /// <paramref name="secondsPerTake"/> seconds on average (Erlang(place) by Wilson–Hilferty); −1 for both when
    /// <paramref name="secondsPerTake"/> is not positive. The server and both SDKs use this one formula.
    /// </summary>
    public static (int Low, int High) WaitRange(int place, double secondsPerTake)
    {
        if (place < 1 || !(secondsPerTake > 0))
        {
            return (-1, -1);
        }

        var low = Math.Max(0, (place - (1.0 / 3)) * secondsPerTake);
        var high = (place + (1.28 * Math.Sqrt(place)) + 0.4) * secondsPerTake;
        return ((int)Math.Min(int.MaxValue, low), (int)Math.Min(int.MaxValue, Math.Ceiling(high)));
    }
}

/// <summary>
/// The organisation's queue after a change, per class (urgent, other): how many wait and the ticket served
/// through (every ticket up to it has left the queue; the class's lowest waiting ticket is the next one). A
/// seeker's place is the urgent sessions waiting (unless its own ticket is urgent) plus those of its class
/// ahead of it plus one; see <see cref="StatusFor"/> and docs/protocol.md for when this is exact.
/// </summary>
[MessagePackObject]
public sealed class QueueMoved
{
    /// <summary>Urgent sessions waiting (away ones included: they keep their place).</summary>
    [Key(0)] public int UrgentWaiting { get; set; }

    /// <summary>Every urgent ticket up to this one has left the queue.</summary>
    [Key(1)] public long UrgentServedThrough { get; set; }

    /// <summary>Sessions of the other (not urgent) class waiting.</summary>
    [Key(2)] public int OtherWaiting { get; set; }

    /// <summary>Every ticket of the other class up to this one has left the queue.</summary>
    [Key(3)] public long OtherServedThrough { get; set; }

    /// <summary>The mean time between takes in seconds, for the wait range (<see cref="QueueStatus.WaitRange"/>); −1 when too few takes were seen.</summary>
    [Key(4)] public double SecondsPerTake { get; set; } = -1;

    /// <summary>
    /// The place of the session holding <paramref name="ticket"/> of its class, the queue's length and the wait
    /// range; null when the ticket is no longer waiting (served through). Those of its class ahead of it are
    /// taken as <c>min(ticket − served − 1, waiting − 1)</c>: exact unless a session between the served ticket
    /// and this one left out of turn, and otherwise too many, never too few.
    /// </summary>
    public QueueStatus? StatusFor(long ticket, bool urgent)
    {
        var (served, waiting) = urgent ? (UrgentServedThrough, UrgentWaiting) : (OtherServedThrough, OtherWaiting);
        if (ticket <= served || waiting < 1)
        {
            return null;
        }

        var ahead = (int)Math.Min(ticket - served - 1, waiting - 1);
        var place = (urgent ? 0 : UrgentWaiting) + ahead + 1;
        var (low, high) = QueueStatus.WaitRange(place, SecondsPerTake);
        return new QueueStatus
        {
            Position = place,
            Waiting = UrgentWaiting + OtherWaiting,
            WaitLowSeconds = low,
            WaitHighSeconds = high,
            Ticket = ticket,
            UrgentTicket = urgent,
        };
    }
}

/// <summary>Resumes a session on a new connection.</summary>
[MessagePackObject]
public sealed class ResumeSessionRequest
{
    /// <summary>The 16-byte session id.</summary>
    [Key(0)] public byte[] SessionId { get; set; } = [];

    /// <summary>The seeker's resume token; empty for a responder (its access token identifies it).</summary>
    [Key(1)] public byte[] ResumeToken { get; set; } = [];

    /// <summary>The highest sequence this side received from its peer, or −1 for none: what is missed comes after it.</summary>
    [Key(2)] public long ReceivedThrough { get; set; } = -1;
}

/// <summary>The answer to a resume; missed envelopes follow as <c>Envelope</c> calls, in order.</summary>
[MessagePackObject]
public sealed class ResumeSessionResult
{
    /// <summary>True while the session waits in the queue.</summary>
    [Key(0)] public bool Queued { get; set; }

    /// <summary>The responder's <c>msg2</c>, once answered (the seeker needs it if it missed the call).</summary>
    [Key(1)] public byte[]? Msg2 { get; set; }

    /// <summary>The sequence the server expects next from this side.</summary>
    [Key(2)] public ulong NextSequence { get; set; }

    /// <summary>The seeker's place in the queue, when queued.</summary>
    [Key(3)] public QueueStatus Queue { get; set; } = new();

    /// <summary>The handshake's <c>msg1</c> (for a responder resuming a session).</summary>
    [Key(4)] public byte[]? Msg1 { get; set; }
}

/// <summary>The answer to <c>Send</c>.</summary>
[MessagePackObject]
public sealed class SendResult
{
    /// <summary>The envelope's sequence number.</summary>
    [Key(0)] public ulong Sequence { get; set; }

    /// <summary>True if the server already had this envelope (a resend): acknowledged, not relayed again.</summary>
    [Key(1)] public bool Duplicate { get; set; }
}

/// <summary>One waiting session as a responder sees it: routing fields only.</summary>
[MessagePackObject]
public sealed class QueueEntry
{
    /// <summary>The 16-byte session id.</summary>
    [Key(0)] public byte[] SessionId { get; set; } = [];

    /// <summary>Language.</summary>
    [Key(1)] public string Language { get; set; } = "";

    /// <summary>Topic, or empty.</summary>
    [Key(2)] public string Topic { get; set; } = "";

    /// <summary>Urgent flag.</summary>
    [Key(3)] public bool Urgent { get; set; }

    /// <summary>How long it has waited, whole seconds.</summary>
    [Key(4)] public int WaitingSeconds { get; set; }
}

/// <summary>The organisation's queue in brief: its length and its head (ask <c>GetQueue</c> for more).</summary>
[MessagePackObject]
public sealed class QueueSnapshot
{
    /// <summary>How many sessions wait.</summary>
    [Key(0)] public int Waiting { get; set; }

    /// <summary>The first waiting sessions, in the order they will be answered (at most 20).</summary>
    [Key(1)] public QueueEntry[] Head { get; set; } = [];
}

/// <summary>A session a responder has taken: answer its <c>msg1</c> with <c>msg2</c>.</summary>
[MessagePackObject]
public sealed class TakenSession
{
    /// <summary>The 16-byte session id.</summary>
    [Key(0)] public byte[] SessionId { get; set; } = [];

    /// <summary>The seeker's <c>msg1</c>.</summary>
    [Key(1)] public byte[] Msg1 { get; set; } = [];

    /// <summary>Language.</summary>
    [Key(2)] public string Language { get; set; } = "";

    /// <summary>Topic, or empty.</summary>
    [Key(3)] public string Topic { get; set; } = "";

    /// <summary>Urgent flag.</summary>
    [Key(4)] public bool Urgent { get; set; }
}

/// <summary>Why a session ended, told to whoever is still connected.</summary>
[MessagePackObject]
public sealed class SessionEnd
{
    /// <summary>The 16-byte session id.</summary>
    [Key(0)] public byte[] SessionId { get; set; } = [];

    /// <summary>One of <see cref="EndReasons"/>.</summary>
    [Key(1)] public string Reason { get; set; } = "";
}

/// <summary>A transfer proposed to the seeker.</summary>
[MessagePackObject]
public sealed class TransferProposal
{
    /// <summary>The 16-byte id of the session to be handed over.</summary>
    [Key(0)] public byte[] SessionId { get; set; } = [];

    /// <summary>The target organisation's 16-byte <c>org_id</c>: the own one (a colleague) or a partner's.</summary>
    [Key(1)] public byte[] OrgId { get; set; } = [];

    /// <summary>How long the seeker has to answer, whole seconds; then the proposal lapses and the chat goes on.</summary>
    [Key(2)] public int AnswerWithinSeconds { get; set; }
}

/// <summary>What became of a proposed transfer, told to the responder who proposed it.</summary>
[MessagePackObject]
public sealed class TransferResult
{
    /// <summary>The 16-byte session id.</summary>
    [Key(0)] public byte[] SessionId { get; set; } = [];

    /// <summary>One of <see cref="TransferOutcomes"/>.</summary>
    [Key(1)] public string Outcome { get; set; } = "";
}

/// <summary>Stable codes for <see cref="TransferResult.Outcome"/>.</summary>
public static class TransferOutcomes
{
    /// <summary>The seeker accepted: the session ends as <see cref="EndReasons.Transferred"/> and waits with the target.</summary>
    public const string Accepted = "accepted";

    /// <summary>The seeker (or their app, lacking the target's pins) declined; the chat goes on.</summary>
    public const string Declined = "declined";

    /// <summary>The seeker did not answer in time; the chat goes on.</summary>
    public const string TimedOut = "timed_out";

    /// <summary>The seeker accepted but the target could not take the session (closed, full); the chat goes on.</summary>
    public const string Failed = "failed";
}

/// <summary>Stable reason codes for <see cref="SessionEnd.Reason"/>.</summary>
public static class EndReasons
{
    /// <summary>The seeker closed the session.</summary>
    public const string SeekerClosed = "seeker_closed";

    /// <summary>The seeker left the queue before being answered.</summary>
    public const string SeekerLeftQueue = "seeker_left_queue";

    /// <summary>The responder closed the session.</summary>
    public const string ResponderClosed = "responder_closed";

    /// <summary>The seeker did not come back within the grace period.</summary>
    public const string SeekerAbandoned = "seeker_abandoned";

    /// <summary>The responder did not come back within the grace period.</summary>
    public const string ResponderAbandoned = "responder_abandoned";

    /// <summary>Nothing happened for the idle timeout.</summary>
    public const string Idle = "idle_timeout";

    /// <summary>The session reached its maximum lifetime.</summary>
    public const string MaxLifetime = "max_lifetime";

    /// <summary>
    /// The session waited in the queue for the longest wait the organisation allows and nobody could take it;
    /// the seeker may try again later.
    /// </summary>
    public const string QueueTimeout = "queue_timeout";

    /// <summary>
    /// The server's store lost the session's state (a restart of a store without persistence): nothing more can
    /// be relayed. Messages not yet shown as delivered may not have arrived; a new session starts afresh.
    /// </summary>
    public const string StoreLost = "store_lost";

    /// <summary>
    /// The seeker accepted a transfer: the chat continues as a new session, with a fresh handshake, in the
    /// target organisation's queue. Nothing of this session was carried over.
    /// </summary>
    public const string Transferred = "transferred";

    /// <summary>
    /// A waiting seeker was away (its connection lost) longer than the queue keeps a place
    /// (<see cref="QueueStatus.HoldSeconds"/>); the place was given up. The SDKs report it when the seeker comes
    /// back too late, since nobody was connected to hear it.
    /// </summary>
    public const string QueueHoldExpired = "queue_hold_expired";
}
