namespace TrustLine.Protocol.Contracts;

/// <summary>
/// Stable error codes. A refused hub call fails with a message <c>"code: sentence"</c>; a refused HTTP call
/// answers <c>{"code": …, "message": …}</c>. Clients branch on the code; people read the sentence.
/// </summary>
public static class ErrorCodes
{
    /// <summary>The request is malformed (wrong sizes, missing fields).</summary>
    public const string BadRequest = "bad_request";

    /// <summary><c>msg1</c> is not a v1 ClientHello.</summary>
    public const string BadMsg1 = "bad_msg1";

    /// <summary><c>msg2</c> is not a v1 ServerHello.</summary>
    public const string BadMsg2 = "bad_msg2";

    /// <summary>No such organisation here.</summary>
    public const string UnknownOrganisation = "unknown_organisation";

    /// <summary>The organisation does not list this language or topic.</summary>
    public const string UnknownRouting = "unknown_routing";

    /// <summary>A session with this id exists already.</summary>
    public const string SessionExists = "session_exists";

    /// <summary>This connection already has a session.</summary>
    public const string AlreadyInSession = "already_in_session";

    /// <summary>The organisation is closed now (its opening hours); the directory says when it opens.</summary>
    public const string Closed = "closed";

    /// <summary>The organisation's queue is full.</summary>
    public const string QueueFull = "queue_full";

    /// <summary>The session does not exist, has ended, or is not this connection's.</summary>
    public const string NoSuchSession = "no_such_session";

    /// <summary>The resume credential is wrong or the grace period is over.</summary>
    public const string ResumeRefused = "resume_refused";

    /// <summary>The call does not fit the session's state (e.g. sending before the answer).</summary>
    public const string WrongState = "wrong_state";

    /// <summary>Another responder took the session first, or the queue is empty.</summary>
    public const string NotAvailable = "not_available";

    /// <summary>The envelope's size, version, type or direction is wrong.</summary>
    public const string BadEnvelope = "bad_envelope";

    /// <summary>The envelope's sequence number is not the next expected one.</summary>
    public const string OutOfOrder = "out_of_order";

    /// <summary>Too many envelopes wait unacknowledged.</summary>
    public const string BufferFull = "buffer_full";

    /// <summary>The sign-in challenge is unknown, expired or already used.</summary>
    public const string BadChallenge = "bad_challenge";

    /// <summary>The certificates are malformed or do not chain to the organisation's roots.</summary>
    public const string BadCertificate = "bad_certificate";

    /// <summary>The certificate has expired or is not yet valid.</summary>
    public const string CertificateExpired = "certificate_expired";

    /// <summary>This responder key is on the organisation's denylist.</summary>
    public const string Denied = "responder_denied";

    /// <summary>The responder's access token has expired; sign in again.</summary>
    public const string TokenExpired = "token_expired";

    /// <summary>The signature does not verify.</summary>
    public const string BadSignature = "bad_signature";

    /// <summary>The server is under pressure: solve an admission puzzle (<see cref="ISeekerHub.GetPuzzle"/>) and open again with it.</summary>
    public const string PuzzleRequired = "puzzle_required";

    /// <summary>The admission puzzle is malformed, not this server's, expired, already used, or its solution does not hold.</summary>
    public const string BadPuzzle = "bad_puzzle";

    /// <summary>The request came from a web page of an origin this server does not serve.</summary>
    public const string ForbiddenOrigin = "forbidden_origin";

    /// <summary>Too many calls too fast; slow down and try again.</summary>
    public const string RateLimited = "rate_limited";

    /// <summary>Connections from this network already hold as many places in the queues as one network may; try again later.</summary>
    public const string TooManyWaiting = "too_many_waiting";

    /// <summary>Too many connections from this network are open at once; try again in a moment.</summary>
    public const string TooManyConnections = "too_many_connections";

    /// <summary>The responder holds as many chats as its organisation's capacity allows; end one first.</summary>
    public const string AtCapacity = "at_capacity";

    /// <summary>That session is not offered to this connection (never, or no longer: accepted, declined or gone).</summary>
    public const string NoOffer = "no_offer";

    /// <summary>The offer ran out before the answer came; the session goes to the next responder.</summary>
    public const string OfferExpired = "offer_expired";

    /// <summary>The store is unreachable; try again.</summary>
    public const string Unavailable = "unavailable";

    /// <summary>
    /// The store lost the session's state (a restart without persistence): it has ended, as
    /// <see cref="EndReasons.StoreLost"/>, which the server also sends as <c>SessionEnded</c>.
    /// </summary>
    public const string StoreLost = "store_lost";

    /// <summary>A chat may be transferred only to the own organisation or a partner its configuration lists.</summary>
    public const string NotAPartner = "not_a_partner";

    /// <summary>No transfer is proposed for this session (none was, it was answered already, or it lapsed).</summary>
    public const string NoTransfer = "no_transfer";
}
