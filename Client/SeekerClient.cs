using Microsoft.AspNetCore.SignalR.Client;
using TrustLine.Protocol.Contracts;
using TrustLine.Protocol.Crypto;

namespace TrustLine.Client;

/// <summary>What the seeker sees of its session.</summary>
public enum SeekerState
{
    /// <summary>Not opened yet.</summary>
    New,

    /// <summary>Waiting in the organisation's queue.</summary>
    Waiting,

    /// <summary>A verified counsellor of the organisation is connected; messages flow end to end.</summary>
    Connected,

    /// <summary>The network dropped; the client is coming back and will resend what was not delivered.</summary>
    Reconnecting,

    /// <summary>The session is over; see <see cref="SeekerClient.EndReason"/>.</summary>
    Ended,
}

/// <summary>
/// A help-seeker's session, as a mobile or desktop app uses it: open with routing choices, wait in the
/// queue, verify the responder against the pinned organisation keys (PROTOCOL.md §1–§2), then exchange
/// end-to-end encrypted text. Reconnects and resumes by itself after network loss, resending exactly the
/// bytes not yet delivered. No account, no identifier: the server learns nothing but ciphertext.
/// </summary>
public sealed class SeekerClient : IAsyncDisposable
{
    private OrganisationPin pin;
    private readonly ClientOptions options;
    private Pseudonym? pseudonym;
    private readonly ReconnectingConnection connection;
    private readonly Lock sync = new();
    private SeekerHandshake? handshake;
    private SessionEngine? engine;
    private byte[] resumeToken = [];
    private QueueStatus? place; // the last place told, with the ticket and the hold
    private DateTimeOffset? awaySince;
    private SeekerState state = SeekerState.New;
    private int disposed;
    private TransferOffer? offer;
    private Guid? transferringFrom;
    private string? endWhileTransferring;
    private byte[]? answerWhileTransferring;

    /// <summary>Creates a client for one session with the organisation of <paramref name="pin"/>.</summary>
    /// <param name="server">The server's base address (any node).</param>
    /// <param name="pin">The organisation's pinned id and roots.</param>
    /// <param name="pseudonym">The seeker's pseudonym for this organisation, to be recognised as returning; null for none.</param>
    /// <param name="options">Clock and reconnect behaviour.</param>
    public SeekerClient(Uri server, OrganisationPin pin, Pseudonym? pseudonym = null, ClientOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(server);
        this.pin = pin ?? throw new ArgumentNullException(nameof(pin));
        this.pseudonym = pseudonym;
        this.options = options ?? new ClientOptions();
        connection = new ReconnectingConnection([server, .. this.options.FallbackServers], Routes.SeekerHub, this.options, null,
            Register, ResumeAsync, OnConnectionStatus);
    }

    /// <summary>The state changed.</summary>
    public event Action<SeekerState>? StateChanged;

    /// <summary>
    /// The place in the queue changed: exact on open and on every resume, and in between computed from the
    /// server's queue notices and this session's ticket (<see cref="QueueMoved.StatusFor"/>).
    /// </summary>
    public event Action<QueueStatus>? QueueChanged;

    /// <summary>
    /// How long the server keeps a waiting seeker's place while its connection is lost (a phone that
    /// switched apps), once the session is open; null before, or when the server does not say. Tell the
    /// seeker before it happens.
    /// </summary>
    public TimeSpan? QueueHold => place is { HoldSeconds: > 0 } p ? TimeSpan.FromSeconds(p.HoldSeconds) : null;

    /// <summary>A text from the counsellor, decrypted and verified.</summary>
    public event Action<string>? MessageReceived;

    /// <summary>The counsellor received the seeker's messages up to this sequence.</summary>
    public event Action<ulong>? Delivered;

    /// <summary>
    /// Every envelope this client sent (true) or received (false), as the relay sees it: the clear header and
    /// the size, nothing else. For diagnostics and demonstrations.
    /// </summary>
    public event Action<EnvelopeHeader, bool>? EnvelopeObserved;

    /// <summary>
    /// The counsellor proposes to hand the chat to a colleague or a partner organisation the app knows (see
    /// <see cref="TransferTargets"/>): ask the person, then <see cref="AcceptTransferAsync"/> or <see cref="DeclineTransferAsync"/>.
    /// </summary>
    public event Action<TransferOffer>? TransferProposed;

    /// <summary>
    /// A proposal was declined without asking, and why (<c>unknown_organisation</c>: the app has no pins for the
    /// target, so a counsellor there could not be verified).
    /// </summary>
    public event Action<string>? TransferDeclinedAutomatically;

    /// <summary>
    /// The transfer was made: the chat is now a new session waiting in the target's queue; when a counsellor
    /// there answers (verified against the target's pins) the state becomes <see cref="SeekerState.Connected"/> again.
    /// </summary>
    public event Action<KnownOrganisation>? Transferred;

    /// <summary>
    /// Organisations a counsellor may transfer this seeker to, with the names to show; a proposal for any
    /// other is declined automatically. The own organisation is always known (as <see cref="OrganisationName"/>).
    /// </summary>
    public IReadOnlyList<KnownOrganisation> TransferTargets { get; init; } = [];

    /// <summary>The name the app shows for the organisation it opened with.</summary>
    public string OrganisationName { get; init; } = "";

    /// <summary>The organisation whose counsellor the seeker talks to, or waits for (changes with a transfer).</summary>
    public byte[] OrganisationId => pin.OrgId;

    /// <summary>The transfer proposed and not yet answered, or null.</summary>
    public TransferOffer? PendingTransfer => offer;

    /// <summary>Current state.</summary>
    public SeekerState State => state;

    /// <summary>
    /// Why the session ended: an <see cref="EndReasons"/> code from the server, or one of
    /// <see cref="SessionEndReasons"/> (<c>peer_closed</c>, <c>messages_missing</c>, <c>handshake_failed:…</c>, …).
    /// </summary>
    public string? EndReason { get; private set; }

    /// <summary>The 16-byte session id.</summary>
    public Guid SessionId { get; private set; }

    /// <summary>The responder's key fingerprint once verified (a counsellor may read theirs aloud).</summary>
    public string? ResponderFingerprint { get; private set; }

    /// <summary>The highest envelope seq received in order from the responder, −1 for none.</summary>
    public long ReceivedThrough => engine?.ReceivedThrough ?? -1;

    /// <summary>Authentic envelopes of a content type this client does not know, dropped unread (PROTOCOL.md §3).</summary>
    public int UnknownEnvelopesDropped => engine?.UnknownDropped ?? 0;

    /// <summary>
    /// Opens the session and joins the queue. When the server is under pressure it asks for an admission
    /// puzzle (PROTOCOL.md §9): the client solves it on the thread pool and opens again;
    /// <paramref name="admissionProgress"/> hears 0 when solving starts, then the number of hashes tried.
    /// </summary>
    public async Task<QueueStatus> OpenAsync(string language, string topic = "", bool urgent = false,
        IProgress<long>? admissionProgress = null, CancellationToken cancellationToken = default)
    {
        if (state != SeekerState.New || handshake is not null)
        {
            throw new InvalidOperationException("A SeekerClient opens one session; create a new one for another.");
        }

        handshake = SeekerHandshake.Start(pin, options.Time);
        SessionId = handshake.SessionGuid;
        await connection.StartAsync(cancellationToken);
        var hub = connection.Current.Seeker(cancellationToken);
        var request = new OpenSessionRequest { Msg1 = handshake.Msg1.ToArray(), Language = language, Topic = topic, Urgent = urgent };
        OpenSessionResult result;
        try
        {
            result = await OpenRetryingAsync(hub, request, cancellationToken);
        }
        catch (TrustLineException e) when (e.Code == ErrorCodes.PuzzleRequired)
        {
            var bytes = await hub.GetPuzzle(pin.OrgId);
            if (!AdmissionPuzzle.TryParse(bytes, out var puzzle, out var error))
            {
                throw new TrustLineException(ErrorCodes.BadPuzzle, $"The server's admission puzzle is malformed ({error}).");
            }

            var sessionId = handshake.SessionId.ToArray();
            admissionProgress?.Report(0);
            request.Puzzle = bytes;
            request.Solution = await Task.Run(() => puzzle.Solve(sessionId, admissionProgress, cancellationToken), cancellationToken);
            result = await OpenRetryingAsync(hub, request, cancellationToken);
        }

        resumeToken = result.ResumeToken;
        Volatile.Write(ref place, result.Queue);

        // A counsellor may have answered before this returned: never step back from Connected to Waiting.
        SetState(SeekerState.Waiting, onlyFrom: SeekerState.New);
        return result.Queue;
    }

    /// <summary>
    /// Opens, and while the server says its store is briefly unavailable (a Redis failover or restart), tries
    /// again after 0.5, 1, 2, 4 and 8 s before giving up, so a seeker is not turned away by a blip.
    /// </summary>
    private async Task<OpenSessionResult> OpenRetryingAsync(ISeekerHub hub, OpenSessionRequest request, CancellationToken cancellationToken)
    {
        var delay = TimeSpan.FromMilliseconds(500);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await hub.OpenSession(request);
            }
            catch (TrustLineException e) when (e.Code == ErrorCodes.Unavailable && attempt < 6)
            {
                await Task.Delay(delay, options.Time, cancellationToken);
                delay *= 2;
            }
        }
    }

    /// <summary>
    /// Encrypts and sends a text; completes when the server has it, and it is delivered even across reconnects.
    /// Cancelling stops the wait, not the delivery. Throws <see cref="ArgumentException"/> for a text over
    /// <see cref="Wire.MaxBodySize"/> bytes of UTF-8, and <see cref="InvalidOperationException"/> before a
    /// counsellor is connected or after the end.
    /// </summary>
    public Task SendTextAsync(string text, CancellationToken cancellationToken = default)
    {
        var session = engine;
        if (state == SeekerState.Ended || session is null)
        {
            throw new InvalidOperationException("Messages can be sent once a counsellor is connected, and not after the end.");
        }

        return session.SendTextAsync(text, cancellationToken);
    }

    /// <summary>
    /// Ends the session (or leaves the queue): CLOSE to the counsellor, then the server deletes everything of
    /// it at once.
    /// </summary>
    public async Task CloseAsync(CancellationToken cancellationToken = default)
    {
        if (state is SeekerState.Ended or SeekerState.New)
        {
            return;
        }

        if (engine is { } session)
        {
            await session.CloseAsync(EndReasons.SeekerClosed, cancellationToken);
            return;
        }

        var hub = await connection.ActiveAsync(cancellationToken);
        await hub.Seeker(cancellationToken).Close();
        End(EndReasons.SeekerClosed);
    }

    /// <summary>Cuts the network connection as a phone losing signal would; the client comes back by itself.</summary>
    /// <param name="preferServer">Index into the server list (the first server, then the fallbacks) to come back to.</param>
    public Task SimulateNetworkLossAsync(int? preferServer = null) => connection.DropAsync(preferServer);

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref disposed, 1) == 1)
        {
            return;
        }

        await connection.DisposeAsync();
        if (engine is { } session)
        {
            await session.DisposeAsync();
        }

        handshake?.Dispose();
    }

    private void Register(HubConnection hub)
    {
        hub.On<QueueStatus>(nameof(ISeekerClient.QueuePosition), status => QueueChanged?.Invoke(status));
        hub.On<QueueMoved>(nameof(ISeekerClient.QueueMoved), OnQueueMoved);
        hub.On<byte[]>(nameof(ISeekerClient.Answered), OnAnsweredAsync);
        hub.On<byte[]>(nameof(ISeekerClient.Envelope), envelope => engine?.OnEnvelopeAsync(envelope) ?? Task.CompletedTask);
        hub.On<ulong>(nameof(ISeekerClient.Delivered), sequence => engine?.OnDelivered(sequence));
        hub.On<SessionEnd>(nameof(ISeekerClient.SessionEnded), OnSessionEnded);
        hub.On<TransferProposal>(nameof(ISeekerClient.TransferProposed), OnTransferProposedAsync);
    }

    private void OnSessionEnded(SessionEnd end)
    {
        var id = end.SessionId is { Length: Wire.SessionIdSize } bytes ? new Guid(bytes, bigEndian: true) : SessionId;
        lock (sync)
        {
            if (transferringFrom == id)
            {
                // Ending as "transferred" while the accept is on its way; any other end counts if the accept fails.
                endWhileTransferring ??= end.Reason;
                return;
            }

            if (id != SessionId)
            {
                return; // the session this client left by a transfer
            }
        }

        End(end.Reason);
    }

    private async Task OnTransferProposedAsync(TransferProposal proposal)
    {
        KnownOrganisation? target;
        lock (sync)
        {
            if (state is not (SeekerState.Connected or SeekerState.Reconnecting) || engine is null || transferringFrom is not null
                || proposal.SessionId is not { Length: Wire.SessionIdSize } || new Guid(proposal.SessionId, bigEndian: true) != SessionId
                || proposal.OrgId is not { Length: 16 })
            {
                return; // not for this chat, or not now: nothing to answer
            }

            target = proposal.OrgId.AsSpan().SequenceEqual(pin.OrgId)
                ? TransferTargets.FirstOrDefault(t => t.Pin.OrgId.AsSpan().SequenceEqual(pin.OrgId)) ?? new KnownOrganisation(OrganisationName, pin)
                : TransferTargets.FirstOrDefault(t => t.Pin.OrgId.AsSpan().SequenceEqual(proposal.OrgId));
            offer = target is null ? null : new TransferOffer(target, ReferenceEquals(target.Pin, pin) || target.Pin.OrgId.AsSpan().SequenceEqual(pin.OrgId),
                options.Time.GetUtcNow() + TimeSpan.FromSeconds(Math.Clamp(proposal.AnswerWithinSeconds, 0, 3600)));
        }

        if (offer is { } proposed && target is not null)
        {
            TransferProposed?.Invoke(proposed);
            return;
        }

        TransferDeclinedAutomatically?.Invoke(ErrorCodes.UnknownOrganisation);
        try
        {
            await (await connection.ActiveAsync(CancellationToken.None)).Seeker().DeclineTransfer();
        }
        catch (Exception e) when (e is TrustLineException or InvalidOperationException or IOException)
        {
            // The proposal lapses on the server by itself.
        }
    }

    /// <summary>
    /// Accepts the proposed transfer: a fresh handshake (new session id, new ephemeral key) for the target
    /// organisation; the old chat ends on both sides and nothing of it goes along. Returns the place in the
    /// target's queue, where a transferred seeker stands ahead of later arrivals. Throws
    /// <see cref="TrustLineException"/> when the server refuses (the proposal lapsed, the target is full or
    /// closed): the chat then goes on as it was.
    /// </summary>
    public async Task<QueueStatus> AcceptTransferAsync(CancellationToken cancellationToken = default)
    {
        TransferOffer accepted;
        SeekerHandshake next;
        Guid from;
        lock (sync)
        {
            accepted = offer ?? throw new InvalidOperationException("No transfer is proposed.");
            if (state == SeekerState.Ended || transferringFrom is not null)
            {
                throw new InvalidOperationException("The chat has ended, or a transfer is being accepted already.");
            }

            offer = null;
            next = SeekerHandshake.Start(accepted.Target.Pin, options.Time);
            from = SessionId;
            transferringFrom = from;
        }

        OpenSessionResult result;
        try
        {
            result = await (await connection.ActiveAsync(cancellationToken)).Seeker(cancellationToken).AcceptTransfer(next.Msg1.ToArray());
        }
        catch
        {
            next.Dispose();
            string? ended;
            lock (sync)
            {
                transferringFrom = null;
                ended = endWhileTransferring;
                endWhileTransferring = null;
                answerWhileTransferring = null;
            }

            if (ended is not null)
            {
                End(ended);
            }

            throw;
        }

        SessionEngine? old;
        byte[]? early;
        lock (sync)
        {
            old = engine;
            engine = null;
            handshake = next;
            if (!accepted.SameOrganisation)
            {
                // A pseudonym is for one organisation alone (PROTOCOL.md §4): never shown to another.
                pseudonym = null;
            }

            pin = accepted.Target.Pin;
            SessionId = next.SessionGuid;
            resumeToken = result.ResumeToken;
            Volatile.Write(ref place, result.Queue); // the ticket in the target's queue, for its QueueMoved notices
            ResponderFingerprint = null;
            transferringFrom = null;
            endWhileTransferring = null;
            early = answerWhileTransferring;
            answerWhileTransferring = null;
            if (state != SeekerState.Ended)
            {
                state = SeekerState.Waiting;
            }
        }

        // The old channel ends here without a CLOSE: the server ended that session for both sides already.
        old?.End(EndReasons.Transferred);
        StateChanged?.Invoke(SeekerState.Waiting);
        Transferred?.Invoke(accepted.Target);
        QueueChanged?.Invoke(result.Queue);
        if (early is not null && Answer(early) is { } helloSent)
        {
            await WhenSentAsync(helloSent);
        }

        return result.Queue;
    }

    /// <summary>Declines the proposed transfer: the chat goes on with the same counsellor, who is told.</summary>
    public async Task DeclineTransferAsync(CancellationToken cancellationToken = default)
    {
        lock (sync)
        {
            if (offer is null)
            {
                throw new InvalidOperationException("No transfer is proposed.");
            }

            offer = null;
        }

        await (await connection.ActiveAsync(cancellationToken)).Seeker(cancellationToken).DeclineTransfer();
    }

    private void OnQueueMoved(QueueMoved moved)
    {
        // Only while waiting with a ticket: a notice that crosses the take, or comes before the open's answer, says nothing about this session.
        if (engine is not null || state is SeekerState.Ended or SeekerState.New || Volatile.Read(ref place) is not { Ticket: > 0 } known
            || moved.StatusFor(known.Ticket, known.UrgentTicket) is not { } status)
        {
            return;
        }

        status.HoldSeconds = known.HoldSeconds;
        Volatile.Write(ref place, status);
        QueueChanged?.Invoke(status);
    }

    private async Task OnAnsweredAsync(byte[] msg2)
    {
        if (Answer(msg2) is { } helloSent)
        {
            await WhenSentAsync(helloSent);
        }
    }

    /// <summary>
    /// Verifies <c>msg2</c> and starts the session with HELLO; returns the HELLO's send, or null. A msg2 that
    /// does not verify ends the session: only the relay can have forged it (a genuine responder's answer is
    /// signed), and the server takes one answer per session, so waiting for another would wait forever.
    /// </summary>
    private Task? Answer(byte[] msg2)
    {
        SessionEngine? session = null;
        lock (sync)
        {
            if (transferringFrom is not null)
            {
                answerWhileTransferring = msg2; // the new session's answer, ahead of the accept's result
                return null;
            }

            if (engine is not null || handshake is null || state == SeekerState.Ended)
            {
                return null;
            }

            var result = handshake.Complete(msg2);
            handshake.Dispose();
            handshake = null;
            if (!result.Succeeded)
            {
                var check = result.Error == HandshakeError.CertificateChain ? result.ChainError.ToString() : result.Error.ToString();
                EndReason = $"{SessionEndReasons.HandshakeFailed}:{check}";
            }
            else
            {
                ResponderFingerprint = Certificate.Fingerprint(result.ResponderPublicKey);
                session = new SessionEngine(result.Channel!, new Transport(connection), options.Time);
                session.MessageReceived += text => MessageReceived?.Invoke(text);
                session.Delivered += sequence => Delivered?.Invoke(sequence);
                session.EnvelopeObserved += (header, sent) => EnvelopeObserved?.Invoke(header, sent);
                session.Ended += reason =>
                {
                    if (ReferenceEquals(engine, session))
                    {
                        End(reason);
                    }
                };
                engine = session;
            }
        }

        if (session is null)
        {
            _ = CloseRefusedAsync();
            End(EndReason!);
            return null;
        }

        // HELLO goes first (PROTOCOL.md §2); the app's texts queue behind it.
        var hello = session.SendHelloAsync(pseudonym);
        SetState(SeekerState.Connected);
        return hello;
    }

    private async Task CloseRefusedAsync()
    {
        try
        {
            await (await connection.ActiveAsync(CancellationToken.None)).Seeker().Close();
        }
        catch (Exception e) when (e is TrustLineException or InvalidOperationException or IOException)
        {
            // The server's timers end it too.
        }
    }

    private async Task ResumeAsync(HubConnection hub)
    {
        ResumeSessionResult result;
        try
        {
            result = await hub.Seeker().ResumeSession(
                new ResumeSessionRequest { SessionId = SessionId.ToByteArray(bigEndian: true), ResumeToken = resumeToken, ReceivedThrough = ReceivedThrough });
        }
        catch (TrustLineException e) when (e.Code == ErrorCodes.ResumeRefused && engine is null && HoldRanOut())
        {
            // Nobody was connected to hear why the place ended: away for the whole hold, this is why.
            End(EndReasons.QueueHoldExpired);
            throw;
        }

        awaySince = null;
        if (result.Queued)
        {
            if (result.Queue.Ticket == 0 && Volatile.Read(ref place) is { } known)
            {
                result.Queue.HoldSeconds = known.HoldSeconds; // an older server: keep what the open said
            }

            Volatile.Write(ref place, result.Queue);
            QueueChanged?.Invoke(result.Queue);
        }

        if (result.Msg2 is { } msg2 && engine is null)
        {
            _ = Answer(msg2);
        }

        // The pump re-sends exactly the bytes the server does not have yet, in order, once this connection is current.
        engine?.Resumed(result.NextSequence);
    }

    /// <summary>
    /// Whether this seeker has been away about as long as the hold: the server notices a lost connection up to
    /// half a minute after the client does (its keep-alive timeout), so the hold is counted that much shorter.
    /// </summary>
    private bool HoldRanOut() =>
        awaySince is { } since && QueueHold is { } hold && options.Time.GetUtcNow() - since >= hold - TimeSpan.FromSeconds(30);

    private static async Task WhenSentAsync(Task send)
    {
        try
        {
            await send;
        }
        catch (InvalidOperationException)
        {
            // The session ended first; its state says so.
        }
    }

    private void OnConnectionStatus(ConnectionStatus status)
    {
        switch (status)
        {
            case ConnectionStatus.Reconnecting when state != SeekerState.Ended:
                awaySince ??= options.Time.GetUtcNow();
                SetState(SeekerState.Reconnecting);
                break;
            case ConnectionStatus.Connected when state == SeekerState.Reconnecting:
                SetState(engine is null ? SeekerState.Waiting : SeekerState.Connected);
                break;
            case ConnectionStatus.Closed when state != SeekerState.Ended && state != SeekerState.New:
                End(SessionEndReasons.ConnectionLost);
                break;
        }
    }

    private void End(string reason)
    {
        lock (sync)
        {
            if (state == SeekerState.Ended)
            {
                return;
            }

            EndReason ??= reason;
            state = SeekerState.Ended;
        }

        // The engine stops its pump and fails the sends still waiting; its Ended event comes back here, a no-op.
        engine?.End(reason);
        StateChanged?.Invoke(SeekerState.Ended);
    }

    private void SetState(SeekerState next, SeekerState? onlyFrom = null)
    {
        lock (sync)
        {
            if (state == next || state == SeekerState.Ended || (onlyFrom is { } from && state != from))
            {
                return;
            }

            state = next;
        }

        StateChanged?.Invoke(next);
    }

    /// <summary>The seeker hub's calls for its one session.</summary>
    private sealed class Transport(ReconnectingConnection connection) : ISessionTransport
    {
        public async Task SendAsync(byte[] envelope, CancellationToken cancellationToken) =>
            await (await connection.ActiveAsync(cancellationToken)).Seeker(cancellationToken).Send(envelope);

        public async Task AcknowledgeAsync(ulong through, CancellationToken cancellationToken) =>
            await (await connection.ActiveAsync(cancellationToken)).Seeker(cancellationToken).Acknowledge(through);

        public async Task CloseAsync(CancellationToken cancellationToken) =>
            await (await connection.ActiveAsync(cancellationToken)).Seeker(cancellationToken).Close();
    }
}
