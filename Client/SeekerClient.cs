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
    private readonly OrganisationPin pin;
    private readonly ClientOptions options;
    private readonly Pseudonym? pseudonym;
    private readonly ReconnectingConnection connection;
    private readonly SemaphoreSlim gate = new(1, 1);

    // Held from sealing until the server has the envelope, so envelopes reach it in sequence order.
    private readonly SemaphoreSlim sendGate = new(1, 1);
    private readonly AckBatcher acks;
    private readonly GapWatch gaps;
    private SeekerHandshake? handshake;
    private SecureChannel? channel;
    private byte[] resumeToken = [];
    private SeekerState state = SeekerState.New;
    private int disposed;

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
        acks = new AckBatcher(through => connection.Current.CallAsync(SeekerHubMethods.Acknowledge, [through], CancellationToken.None), this.options.Time);
        gaps = new GapWatch(gate, () => channel, MessagesMissingAsync, this.options.Time);
    }

    /// <summary>The state changed.</summary>
    public event Action<SeekerState>? StateChanged;

    /// <summary>The place in the queue changed.</summary>
    public event Action<QueueStatus>? QueueChanged;

    /// <summary>A text from the counsellor, decrypted and verified.</summary>
    public event Action<string>? MessageReceived;

    /// <summary>The counsellor received the seeker's messages up to this sequence.</summary>
    public event Action<ulong>? Delivered;

    /// <summary>
    /// Every envelope this client sent (true) or received (false), as the relay sees it: the clear header and
    /// the size, nothing else. For diagnostics and demonstrations.
    /// </summary>
    public event Action<EnvelopeHeader, bool>? EnvelopeObserved;

    /// <summary>Current state.</summary>
    public SeekerState State => state;

    /// <summary>Why the session ended: an <see cref="EndReasons"/> code, <c>messages_missing</c>, or <c>handshake_failed:…</c>.</summary>
    public string? EndReason { get; private set; }

    /// <summary>The 16-byte session id.</summary>
    public Guid SessionId { get; private set; }

    /// <summary>The responder's key fingerprint once verified (a counsellor may read theirs aloud).</summary>
    public string? ResponderFingerprint { get; private set; }

    /// <summary>The highest envelope seq received in order from the responder, −1 for none.</summary>
    public long ReceivedThrough => channel is null ? -1 : (long)channel.NextReceiveSequence - 1;

    /// <summary>Opens the session and joins the queue.</summary>
    public async Task<QueueStatus> OpenAsync(string language, string topic = "", bool urgent = false, CancellationToken cancellationToken = default)
    {
        if (state != SeekerState.New)
        {
            throw new InvalidOperationException("A SeekerClient opens one session; create a new one for another.");
        }

        handshake = SeekerHandshake.Start(pin, options.Time);
        SessionId = handshake.SessionGuid;
        await connection.StartAsync(cancellationToken);
        var result = await connection.Current.InvokeAsync<OpenSessionResult>(SeekerHubMethods.OpenSession,
            [new OpenSessionRequest { Msg1 = handshake.Msg1.ToArray(), Language = language, Topic = topic, Urgent = urgent }], cancellationToken);
        resumeToken = result.ResumeToken;
        SetState(SeekerState.Waiting);
        return result.Queue;
    }

    /// <summary>Encrypts and sends a text. It is delivered even across reconnects; it is refused once the session ended.</summary>
    public async Task SendTextAsync(string text, CancellationToken cancellationToken = default)
    {
        await sendGate.WaitAsync(cancellationToken);
        try
        {
            byte[] envelope;
            await gate.WaitAsync(cancellationToken);
            try
            {
                if (state == SeekerState.Ended || channel is null)
                {
                    throw new InvalidOperationException("Messages can be sent once a counsellor is connected, and not after the end.");
                }

                envelope = channel.SealText(text);
            }
            finally
            {
                gate.Release();
            }

            await SendEnvelopeAsync(envelope, cancellationToken);
        }
        finally
        {
            sendGate.Release();
        }
    }

    /// <summary>Ends the session (or leaves the queue). The server deletes everything of it at once.</summary>
    public async Task CloseAsync(CancellationToken cancellationToken = default)
    {
        if (state == SeekerState.Ended)
        {
            return;
        }

        var hub = await connection.ActiveAsync(cancellationToken);
        await hub.CallAsync(SeekerHubMethods.Close, [], cancellationToken);
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
        handshake?.Dispose();
        channel?.Dispose();
        gate.Dispose();
        sendGate.Dispose();
    }

    private void Register(HubConnection hub)
    {
        hub.On<QueueStatus>(nameof(ISeekerClient.QueuePosition), status => QueueChanged?.Invoke(status));
        hub.On<byte[]>(nameof(ISeekerClient.Answered), OnAnsweredAsync);
        hub.On<byte[]>(nameof(ISeekerClient.Envelope), OnEnvelopeAsync);
        hub.On<ulong>(nameof(ISeekerClient.Delivered), OnDeliveredAsync);
        hub.On<SessionEnd>(nameof(ISeekerClient.SessionEnded), end => End(end.Reason));
    }

    private async Task OnAnsweredAsync(byte[] msg2)
    {
        await sendGate.WaitAsync();
        try
        {
            await AnswerAsync(msg2);
        }
        finally
        {
            sendGate.Release();
        }
    }

    private async Task AnswerAsync(byte[] msg2)
    {
        byte[]? hello = null;
        await gate.WaitAsync();
        try
        {
            if (channel is not null || handshake is null || state == SeekerState.Ended)
            {
                return;
            }

            var result = handshake.Complete(msg2);
            if (!result.Succeeded)
            {
                // A msg2 that does not verify is never trusted; the session cannot go on safely.
                EndReason = $"handshake_failed:{(result.Error == HandshakeError.CertificateChain ? result.ChainError.ToString() : result.Error.ToString())}";
            }
            else
            {
                channel = result.Channel;
                ResponderFingerprint = Certificate.Fingerprint(result.ResponderPublicKey);
                hello = channel!.SealHello(pseudonym);
                handshake.Dispose();
                handshake = null;
            }
        }
        finally
        {
            gate.Release();
        }

        if (hello is null)
        {
            await connection.Current.CallAsync(SeekerHubMethods.Close, [], CancellationToken.None);
            End(EndReason!);
            return;
        }

        // HELLO goes first: only then may the app's texts follow (PROTOCOL.md §2).
        await SendEnvelopeAsync(hello, CancellationToken.None);
        SetState(SeekerState.Connected);
    }

    private async Task OnEnvelopeAsync(byte[] envelope)
    {
        if (EnvelopeHeader.TryParse(envelope, out var seen))
        {
            EnvelopeObserved?.Invoke(seen, false);
        }

        var texts = new List<string>();
        ulong? acknowledge = null;
        var missing = false;
        await gate.WaitAsync();
        try
        {
            if (channel is null)
            {
                return;
            }

            var opened = channel.TryOpen(envelope);
            switch (opened.Status)
            {
                case OpenStatus.Delivered:
                    texts.AddRange(opened.Messages.Where(m => m.Type == ContentType.Text).Select(m => m.Text));
                    acknowledge = channel.NextReceiveSequence - 1;
                    break;
                case OpenStatus.MessagesMissing:
                    missing = true;
                    break;
                case OpenStatus.Buffered:
                    gaps.Start();
                    break;
            }
        }
        finally
        {
            gate.Release();
        }

        foreach (var text in texts)
        {
            MessageReceived?.Invoke(text);
        }

        if (missing)
        {
            await MessagesMissingAsync();
        }
        else if (acknowledge is { } through)
        {
            await acks.ReceivedAsync(through);
        }
    }

    private async Task MessagesMissingAsync()
    {
        End("messages_missing");
        try
        {
            await connection.Current.CallAsync(SeekerHubMethods.Close, [], CancellationToken.None);
        }
        catch (Exception e) when (e is TrustLineException or InvalidOperationException or IOException)
        {
            // The session is over for this side either way; the server's timers end it too.
        }
    }

    private async Task OnDeliveredAsync(ulong sequence)
    {
        await gate.WaitAsync();
        try
        {
            channel?.Acknowledge(sequence);
        }
        finally
        {
            gate.Release();
        }

        Delivered?.Invoke(sequence);
    }

    private async Task ResumeAsync(HubConnection hub)
    {
        // Under the send gate from start to end: the app's sends wait, then go out after the resend, in order.
        await sendGate.WaitAsync();
        try
        {
            var result = await hub.InvokeAsync<ResumeSessionResult>(SeekerHubMethods.ResumeSession,
                [new ResumeSessionRequest { SessionId = SessionId.ToByteArray(bigEndian: true), ResumeToken = resumeToken, ReceivedThrough = ReceivedThrough }],
                CancellationToken.None);
            connection.Activate(hub);
            if (result.Queued)
            {
                QueueChanged?.Invoke(result.Queue);
            }

            if (result.Msg2 is { } msg2 && channel is null)
            {
                await AnswerAsync(msg2);
            }

            // Resend exactly the bytes not yet delivered, in order; the server drops what it already has.
            IReadOnlyList<(ulong Sequence, byte[] Envelope)> pending;
            await gate.WaitAsync();
            try
            {
                pending = channel?.Unacknowledged ?? [];
            }
            finally
            {
                gate.Release();
            }

            foreach (var (_, envelope) in pending)
            {
                await hub.InvokeAsync<SendResult>(SeekerHubMethods.Send, [envelope], CancellationToken.None);
            }
        }
        finally
        {
            sendGate.Release();
        }
    }

    private async Task SendEnvelopeAsync(byte[] envelope, CancellationToken cancellationToken)
    {
        if (EnvelopeHeader.TryParse(envelope, out var header))
        {
            EnvelopeObserved?.Invoke(header, true);
        }

        try
        {
            await connection.Current.InvokeAsync<SendResult>(SeekerHubMethods.Send, [envelope], cancellationToken);
        }
        catch (Exception e) when (e is InvalidOperationException or IOException or System.Net.WebSockets.WebSocketException && state != SeekerState.Ended)
        {
            // Offline: the envelope stays in the channel's outbox and is resent after the resume.
        }
    }

    private void OnConnectionStatus(ConnectionStatus status)
    {
        switch (status)
        {
            case ConnectionStatus.Reconnecting when state != SeekerState.Ended:
                SetState(SeekerState.Reconnecting);
                break;
            case ConnectionStatus.Connected when state == SeekerState.Reconnecting:
                SetState(channel is null ? SeekerState.Waiting : SeekerState.Connected);
                break;
            case ConnectionStatus.Closed when state != SeekerState.Ended && state != SeekerState.New:
                End("connection_lost");
                break;
        }
    }

    private void End(string reason)
    {
        if (state == SeekerState.Ended)
        {
            return;
        }

        EndReason ??= reason;
        SetState(SeekerState.Ended);
    }

    private void SetState(SeekerState next)
    {
        if (state == next)
        {
            return;
        }

        state = next;
        StateChanged?.Invoke(next);
    }
}
