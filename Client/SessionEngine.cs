using System.Text;
using TrustLine.Protocol.Contracts;
using TrustLine.Protocol.Crypto;

namespace TrustLine.Client;

/// <summary>Why a session ended on this side, besides the server's <see cref="EndReasons"/>.</summary>
public static class SessionEndReasons
{
    /// <summary>The peer sent CLOSE: "closed by peer" (PROTOCOL.md §3).</summary>
    public const string PeerClosed = "peer_closed";

    /// <summary>A gap in the peer's envelopes was not filled in time (PROTOCOL.md §3).</summary>
    public const string MessagesMissing = "messages_missing";

    /// <summary>The seeker's HELLO was malformed: "bad hello" (PROTOCOL.md §3).</summary>
    public const string BadHello = "bad_hello";

    /// <summary>The connection could not be restored within the reconnect attempts.</summary>
    public const string ConnectionLost = "connection_lost";

    /// <summary>After a reconnect the server no longer knew the session (it ended while this side was away).</summary>
    public const string ResumeRefused = "resume_refused";

    /// <summary>The server refused an envelope for good (the session is gone there, or the envelope is not acceptable).</summary>
    public const string SendRefused = "send_refused";

    /// <summary>Prefix of the seeker's reason when <c>msg2</c> did not verify: <c>handshake_failed:</c> and the check that failed.</summary>
    public const string HandshakeFailed = "handshake_failed";
}

/// <summary>The calls one session makes on its hub; the seeker and responder clients each supply theirs.</summary>
internal interface ISessionTransport
{
    Task SendAsync(byte[] envelope, CancellationToken cancellationToken);

    Task AcknowledgeAsync(ulong through, CancellationToken cancellationToken);

    Task CloseAsync(CancellationToken cancellationToken);
}

/// <summary>
/// One established session, the same for both roles: the channel under one short lock, an outbox pump that
/// gives the server every envelope once and in order (re-sending on a transient refusal and after a
/// reconnect, never cancelled mid-envelope), receipts in batches, the gap timer, and the end of the session
/// (CLOSE sent when this side ends it, "closed by peer" when the peer does). Nothing the peer or the server
/// sends throws out of it: an unknown content type is dropped and counted, anything after the end is dropped.
/// </summary>
internal sealed class SessionEngine : IAsyncDisposable
{
    private static readonly TimeSpan[] Backoff =
        [TimeSpan.FromMilliseconds(250), TimeSpan.FromMilliseconds(500), TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(5)];

    // Refusals as out of order in a row, each after re-sending from the oldest unacknowledged, before giving up:
    // the server then lacks an envelope this side no longer has.
    private const int MaxOutOfOrder = 5;

    // How long closing waits for its CLOSE envelope to reach the server before closing the session anyway.
    private static readonly TimeSpan CloseWait = TimeSpan.FromSeconds(10);

    // Set on the engine's own tasks (pump, timers), so a dispose from an event handler they raised does not wait for itself.
    private static readonly AsyncLocal<SessionEngine?> Background = new();
    private readonly Lock sync = new();
    private readonly SecureChannel channel;
    private readonly ISessionTransport transport;
    private readonly TimeProvider time;
    private readonly CancellationTokenSource stopping = new();
    private readonly AckBatcher acks;
    private readonly GapWatch gaps;
    private readonly SortedDictionary<ulong, TaskCompletionSource> sent = [];
    private readonly Task pump;
    private TaskCompletionSource wake = NewSignal();
    private ulong cursor;
    private bool closing;
    private bool disposed;
    private int unknownDropped;

    public SessionEngine(SecureChannel channel, ISessionTransport transport, TimeProvider time)
    {
        this.channel = channel;
        this.transport = transport;
        this.time = time;
        cursor = channel.FirstUnacknowledged;
        acks = new AckBatcher(through => transport.AcknowledgeAsync(through, stopping.Token), time, stopping.Token);
        gaps = new GapWatch(sync, () => disposed ? null : channel, () =>
        {
            Background.Value = this;
            return EndAndCloseAsync(SessionEndReasons.MessagesMissing);
        }, time, stopping.Token);
        pump = PumpAsync();
    }

    public event Action<string>? MessageReceived;

    public event Action<SeekerHello>? HelloReceived;

    /// <summary>The peer received this side's envelopes up to a sequence (the server's receipt or the peer's ACK).</summary>
    public event Action<ulong>? Delivered;

    public event Action<string>? Ended;

    public event Action<EnvelopeHeader, bool>? EnvelopeObserved;

    public string? EndReason { get; private set; }

    /// <summary>Authentic envelopes of a content type this client does not know, dropped (PROTOCOL.md §3).</summary>
    public int UnknownDropped => Volatile.Read(ref unknownDropped);

    public long ReceivedThrough
    {
        get
        {
            lock (sync)
            {
                return disposed ? -1 : (long)channel.NextReceiveSequence - 1;
            }
        }
    }

    /// <summary>Seals the seeker's HELLO and queues it; completes when the server has it.</summary>
    public Task SendHelloAsync(Pseudonym? pseudonym) => Enqueue(c => c.SealHello(pseudonym), closes: false);

    /// <summary>
    /// Seals a text and queues it; completes when the server has it. Cancelling stops the wait, not the
    /// delivery. Throws <see cref="ArgumentException"/> for a text over <see cref="Wire.MaxBodySize"/> bytes of
    /// UTF-8 and <see cref="InvalidOperationException"/> once the session has ended.
    /// </summary>
    public Task SendTextAsync(string text, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(text);
        var size = Encoding.UTF8.GetByteCount(text);
        if (size > Wire.MaxBodySize)
        {
            throw new ArgumentException($"A message is at most {Wire.MaxBodySize} bytes of UTF-8; this one is {size}.", nameof(text));
        }

        return Enqueue(c => c.SealText(text), closes: false).WaitAsync(cancellationToken);
    }

    /// <summary>Ends the session from this side: CLOSE to the peer first (PROTOCOL.md §3), then the server's close.</summary>
    public async Task CloseAsync(string reason, CancellationToken cancellationToken)
    {
        lock (sync)
        {
            if (EndReason is not null || closing || disposed)
            {
                return;
            }
        }

        Task closeSent;
        try
        {
            closeSent = Enqueue(c => c.SealClose(), closes: true);
        }
        catch (InvalidOperationException)
        {
            closeSent = Task.CompletedTask; // the channel itself has ended: only the server's close is left
        }

        try
        {
            await closeSent.WaitAsync(CloseWait, time, cancellationToken);
        }
        catch (Exception e) when (e is TimeoutException or InvalidOperationException)
        {
            // Offline too long, or ended meanwhile: the server's close below still ends it for the peer.
        }

        // Ended here before the server hears of it, so the peer's own close (on our CLOSE) cannot rename the end.
        End(reason);
        try
        {
            await transport.CloseAsync(cancellationToken);
        }
        catch (TrustLineException e) when (e.Code == ErrorCodes.NoSuchSession)
        {
            // Already gone on the server (the peer closed it on our CLOSE).
        }
    }

    /// <summary>An envelope from the peer, through the server.</summary>
    public async Task OnEnvelopeAsync(byte[] envelope)
    {
        Observe(envelope, false);
        var texts = new List<string>();
        SeekerHello? hello = null;
        ulong? peerAck = null;
        ulong? received = null;
        string? end = null;
        lock (sync)
        {
            if (EndReason is not null || disposed)
            {
                return; // after the end (a CLOSE included), envelopes are dropped
            }

            var opened = channel.TryOpen(envelope);
            switch (opened.Status)
            {
                case OpenStatus.Delivered:
                    foreach (var message in opened.Messages)
                    {
                        switch (message.Type)
                        {
                            case ContentType.Text:
                                texts.Add(message.Text);
                                break;
                            case ContentType.Hello:
                                hello = message.Hello;
                                break;
                            case ContentType.Ack:
                                peerAck = message.AcknowledgedSequence;
                                channel.Acknowledge(message.AcknowledgedSequence);
                                break;
                            case ContentType.Close:
                                end = SessionEndReasons.PeerClosed;
                                break;
                            default:
                                unknownDropped++;
                                break;
                        }
                    }

                    received = channel.NextReceiveSequence - 1;
                    break;
                case OpenStatus.Buffered:
                    gaps.Start();
                    break;
                case OpenStatus.MessagesMissing:
                    end = SessionEndReasons.MessagesMissing;
                    break;
                case OpenStatus.Rejected when channel.EndReason == ChannelEndReason.BadHello:
                    end = SessionEndReasons.BadHello;
                    break;
            }
        }

        if (hello is not null)
        {
            HelloReceived?.Invoke(hello);
        }

        foreach (var text in texts)
        {
            MessageReceived?.Invoke(text);
        }

        if (peerAck is { } acknowledged)
        {
            Delivered?.Invoke(acknowledged);
        }

        if (end == SessionEndReasons.PeerClosed)
        {
            // The peer sent CLOSE and closes on the server itself, so the server records who ended the chat;
            // closing from here too would race it. If the peer's close never comes, its grace ends the session.
            End(end);
        }
        else if (end is not null)
        {
            await EndAndCloseAsync(end);
        }
        else if (received is { } through)
        {
            await acks.ReceivedAsync(through);
        }
    }

    /// <summary>The server's receipt: the peer received this side's envelopes up to <paramref name="sequence"/>.</summary>
    public void OnDelivered(ulong sequence)
    {
        lock (sync)
        {
            if (disposed)
            {
                return;
            }

            channel.Acknowledge(sequence);
        }

        Delivered?.Invoke(sequence);
    }

    /// <summary>After a resume: the server expects <paramref name="nextSequence"/> next; the pump re-sends from there.</summary>
    public void Resumed(ulong nextSequence)
    {
        lock (sync)
        {
            if (disposed)
            {
                return;
            }

            cursor = Math.Clamp(nextSequence, channel.FirstUnacknowledged, channel.NextSendSequence);
            CompleteBelow(cursor);
            Signal();
        }
    }

    /// <summary>Ends the session on this side (the server said so, or the connection is gone); idempotent.</summary>
    public void End(string reason)
    {
        List<TaskCompletionSource> abandoned;
        lock (sync)
        {
            if (EndReason is not null)
            {
                return;
            }

            EndReason = reason;
            abandoned = [.. sent.Values];
            sent.Clear();
            Signal();
        }

        foreach (var waiter in abandoned)
        {
            waiter.TrySetException(new InvalidOperationException("The session ended before the message reached the server."));
        }

        Ended?.Invoke(reason);
    }

    public async ValueTask DisposeAsync()
    {
        lock (sync)
        {
            if (disposed)
            {
                return;
            }

            disposed = true;
            Signal();
        }

        // Stop the pump and the timers and wait for them, so none touches the channel after it is disposed
        // (unless this dispose runs on one of them, from an event handler: then the lock below suffices).
        await stopping.CancelAsync();
        var waited = Background.Value != this;
        if (waited)
        {
            await Task.WhenAll(pump, gaps.Running, acks.Running);
        }

        lock (sync)
        {
            foreach (var waiter in sent.Values)
            {
                waiter.TrySetException(new ObjectDisposedException(nameof(SessionEngine)));
            }

            sent.Clear();
            channel.Dispose();
        }

        if (waited)
        {
            stopping.Dispose();
        }
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private static bool IsTransient(string code) => code is ErrorCodes.BufferFull or ErrorCodes.Unavailable or ErrorCodes.RateLimited;

    private static bool IsOffline(Exception e) =>
        e is InvalidOperationException or IOException or System.Net.WebSockets.WebSocketException or HttpRequestException or TimeoutException;

    private Task Enqueue(Func<SecureChannel, byte[]> seal, bool closes)
    {
        byte[] envelope;
        var done = NewSignal();
        lock (sync)
        {
            if (EndReason is not null || disposed || closing)
            {
                throw new InvalidOperationException("The session has ended.");
            }

            envelope = seal(channel);
            closing |= closes;
            sent[channel.NextSendSequence - 1] = done;
            Signal();
        }

        Observe(envelope, true);
        return done.Task;
    }

    private async Task PumpAsync()
    {
        Background.Value = this;
        await Task.Yield();
        var failures = 0;
        var outOfOrder = 0;
        while (true)
        {
            ulong sequence;
            byte[]? envelope = null;
            Task signal;
            lock (sync)
            {
                if (disposed || EndReason is not null)
                {
                    return;
                }

                signal = wake.Task;
                cursor = Math.Max(cursor, channel.FirstUnacknowledged);
                sequence = cursor;
                if (sequence < channel.NextSendSequence)
                {
                    channel.TryGetUnacknowledged(sequence, out envelope);
                }
            }

            if (envelope is null)
            {
                await signal;
                continue;
            }

            try
            {
                // The lifetime token, not a caller's: an envelope is never abandoned half sent.
                await transport.SendAsync(envelope, stopping.Token);
                failures = 0;
                outOfOrder = 0;
                lock (sync)
                {
                    if (cursor == sequence)
                    {
                        cursor = sequence + 1;
                    }

                    CompleteBelow(cursor);
                }
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                return;
            }
            catch (TrustLineException e) when (IsTransient(e.Code))
            {
                // The store failing over answers again within seconds: retry it at least every second.
                await PauseAsync(signal, e.Code == ErrorCodes.Unavailable ? Math.Min(failures++, 2) : failures++);
            }
            catch (TrustLineException e) when (e.Code == ErrorCodes.OutOfOrder && ++outOfOrder < MaxOutOfOrder)
            {
                // The server expects another sequence: begin again at the oldest unacknowledged; it drops what it has.
                lock (sync)
                {
                    cursor = channel.FirstUnacknowledged;
                }

                await PauseAsync(signal, failures++);
            }
            catch (TrustLineException e)
            {
                // The session is gone on the server or the envelope is unacceptable: nothing later can be delivered.
                End(e.Code == ErrorCodes.StoreLost ? EndReasons.StoreLost : SessionEndReasons.SendRefused);
                return;
            }
            catch (Exception e) when (IsOffline(e))
            {
                // Offline: the resume after the reconnect wakes the pump; the back-off covers a missed wake.
                await PauseAsync(signal, failures++);
            }
        }
    }

    private async Task PauseAsync(Task signal, int failures)
    {
        try
        {
            await Task.WhenAny(signal, Task.Delay(Backoff[Math.Min(failures, Backoff.Length - 1)], time, stopping.Token));
        }
        catch (OperationCanceledException)
        {
            // Disposed: the loop sees it.
        }
    }

    private async Task EndAndCloseAsync(string reason)
    {
        End(reason);
        try
        {
            // The server forgets the session at once; the peer hears of it from the server, not from an envelope.
            await transport.CloseAsync(stopping.Token);
        }
        catch (Exception e) when (e is TrustLineException or OperationCanceledException || IsOffline(e))
        {
            // Over for this side either way; the server's timers end it too.
        }
    }

    private void CompleteBelow(ulong next)
    {
        while (sent.Count > 0)
        {
            var (sequence, waiter) = sent.First();
            if (sequence >= next)
            {
                return;
            }

            sent.Remove(sequence);
            waiter.TrySetResult();
        }
    }

    private void Signal()
    {
        var woken = wake;
        wake = NewSignal();
        woken.TrySetResult();
    }

    private void Observe(byte[] envelope, bool outgoing)
    {
        if (EnvelopeHeader.TryParse(envelope, out var header))
        {
            EnvelopeObserved?.Invoke(header, outgoing);
        }
    }
}
