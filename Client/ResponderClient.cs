using System.Collections.Concurrent;
using System.Net.Http.Json;
using Microsoft.AspNetCore.SignalR.Client;
using TrustLine.Protocol.Contracts;
using TrustLine.Protocol.Crypto;

namespace TrustLine.Client;

/// <summary>
/// A counsellor's console connection: signs in with the responder key (no password), sees the queue,
/// takes sessions (several at once), answers each handshake and exchanges end-to-end encrypted text.
/// Reconnects and resumes every held session by itself.
/// </summary>
public sealed class ResponderClient : IAsyncDisposable
{
    private readonly ResponderCredentials credentials;
    private readonly ClientOptions options;
    private readonly ReconnectingConnection connection;
    private readonly ConcurrentDictionary<Guid, ResponderSession> sessions = new();
    private string token = "";
    private int disposed;
    private volatile bool available;
    private volatile Offer? pendingOffer;

    private ResponderClient(Uri server, ResponderCredentials credentials, ClientOptions options)
    {
        this.credentials = credentials;
        this.options = options;
        connection = new ReconnectingConnection([server, .. options.FallbackServers], Routes.ResponderHub, options,
            () => Task.FromResult<string?>(token), Register, ResumeAsync, s => StatusChanged?.Invoke(s));
    }

    /// <summary>The organisation's queue changed.</summary>
    public event Action<QueueSnapshot>? QueueChanged;

    /// <summary>The connection dropped, came back, or closed.</summary>
    public event Action<ConnectionStatus>? StatusChanged;

    /// <summary>A waiting session is offered to this responder alone: accept or decline it within its time.</summary>
    public event Action<Offer>? Offered;

    /// <summary>An offer is gone (session id, reason: one of <see cref="OfferEndReasons"/>).</summary>
    public event Action<Guid, string>? OfferWithdrawn;

    /// <summary>The server set this responder away (after offers ran out unanswered), or a call changed the availability.</summary>
    public event Action<ResponderStatus>? AvailabilityChanged;

    /// <summary>True while available for offers (as last set or told by the server); every connection starts away.</summary>
    public bool Available => available;

    /// <summary>The offer waiting for an answer, or null.</summary>
    public Offer? PendingOffer => pendingOffer;

    /// <summary>The sessions this responder holds now.</summary>
    public IReadOnlyCollection<ResponderSession> Sessions => [.. sessions.Values];

    internal ReconnectingConnection Connection => connection;

    internal ClientOptions Options => options;

    /// <summary>
    /// Signs in (challenge, signature, certificates) and connects. Throws <see cref="TrustLineException"/>
    /// with the server's code when it refuses (expired or foreign certificate, denied key, …).
    /// </summary>
    public static async Task<ResponderClient> SignInAsync(Uri server, ResponderCredentials credentials, ClientOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(server);
        ArgumentNullException.ThrowIfNull(credentials);
        var client = new ResponderClient(server, credentials, options ?? new ClientOptions());
        try
        {
            client.token = await RequestTokenAsync(server, credentials, cancellationToken);
            await client.connection.StartAsync(cancellationToken);
            return client;
        }
        catch
        {
            await client.DisposeAsync();
            throw;
        }
    }

    /// <summary>The sign-in exchange alone: returns the access token.</summary>
    public static async Task<string> RequestTokenAsync(Uri server, ResponderCredentials credentials, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(credentials);
        using var http = new HttpClient { BaseAddress = server, Timeout = TimeSpan.FromSeconds(30) };
        using var challengeResponse = await http.PostAsync(new Uri(Routes.Challenge, UriKind.Relative), null, cancellationToken);
        await ThrowIfRefusedAsync(challengeResponse, cancellationToken);
        var challenge = Convert.FromBase64String((await challengeResponse.Content.ReadFromJsonAsync<ChallengeResponse>(cancellationToken))!.Challenge);
        var request = new SignInRequest
        {
            IssuerCertificate = PublicText.Certificate(credentials.Issuer),
            ResponderCertificate = PublicText.Certificate(credentials.Responder),
            Challenge = Convert.ToBase64String(challenge),
            Signature = Convert.ToBase64String(ResponderSignIn.Sign(credentials.SigningKey, challenge)),
        };
        using var signIn = await http.PostAsJsonAsync(new Uri(Routes.SignIn, UriKind.Relative), request, cancellationToken);
        await ThrowIfRefusedAsync(signIn, cancellationToken);
        return (await signIn.Content.ReadFromJsonAsync<SignInResponse>(cancellationToken))!.Token;
    }

    /// <summary>The queue: routing fields only (language, topic, urgency, waiting time).</summary>
    public async Task<QueueEntry[]> GetQueueAsync(CancellationToken cancellationToken = default) =>
        await (await connection.ActiveAsync(cancellationToken)).Responder(cancellationToken).GetQueue();

    /// <summary>Takes the next waiting session and answers its handshake; null when the queue is empty.</summary>
    public async Task<ResponderSession?> TakeNextAsync(CancellationToken cancellationToken = default)
    {
        var taken = await (await connection.ActiveAsync(cancellationToken)).Responder(cancellationToken).TakeNext();
        return taken is null ? null : await AnswerAsync(taken, cancellationToken);
    }

    /// <summary>Takes a named waiting session; throws <see cref="TrustLineException"/> (<c>not_available</c>) if another responder was first.</summary>
    public async Task<ResponderSession> TakeAsync(byte[] sessionId, CancellationToken cancellationToken = default)
    {
        var taken = await (await connection.ActiveAsync(cancellationToken)).Responder(cancellationToken).Take(sessionId)
            ?? throw new TrustLineException(ErrorCodes.NotAvailable, "That session is no longer waiting.");
        return await AnswerAsync(taken, cancellationToken);
    }

    /// <summary>
    /// Sets this responder available for offers or away; kept across reconnects. Returns the server's view: open chats,
    /// capacity and whether the organisation makes offers at all.
    /// </summary>
    public async Task<ResponderStatus> SetAvailabilityAsync(bool isAvailable, CancellationToken cancellationToken = default)
    {
        var status = await (await connection.ActiveAsync(cancellationToken)).Responder(cancellationToken).SetAvailability(isAvailable);
        available = status.Available;
        if (!isAvailable)
        {
            pendingOffer = null;
        }

        AvailabilityChanged?.Invoke(status);
        return status;
    }

    /// <summary>Accepts the offered session and answers its handshake; throws <see cref="TrustLineException"/> (<c>no_offer</c>, <c>offer_expired</c>, <c>at_capacity</c>).</summary>
    public async Task<ResponderSession> AcceptOfferAsync(byte[] sessionId, CancellationToken cancellationToken = default)
    {
        var taken = await (await connection.ActiveAsync(cancellationToken)).Responder(cancellationToken).AcceptOffer(sessionId);
        ClearOffer(sessionId);
        return await AnswerAsync(taken, cancellationToken);
    }

    /// <summary>Declines the offered session: it goes to the next responder.</summary>
    public async Task DeclineOfferAsync(byte[] sessionId, CancellationToken cancellationToken = default)
    {
        await (await connection.ActiveAsync(cancellationToken)).Responder(cancellationToken).DeclineOffer(sessionId);
        ClearOffer(sessionId);
    }

    /// <summary>Cuts the network connection as a lost signal would; the client comes back by itself.</summary>
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
        foreach (var session in sessions.Values)
        {
            await session.DisposeAsync();
        }
    }

    internal void Forget(Guid id) => sessions.TryRemove(id, out _);

    private async Task<ResponderSession> AnswerAsync(TakenSession taken, CancellationToken cancellationToken)
    {
        var hub = (await connection.ActiveAsync(cancellationToken)).Responder(cancellationToken);
        var accepted = ResponderHandshake.Accept(taken.Msg1, credentials, options.Time);
        if (!accepted.Succeeded)
        {
            // A msg1 for another organisation or with a bad key: end it rather than hold it.
            await hub.Close(taken.SessionId);
            throw new TrustLineException(ErrorCodes.BadMsg1, $"The seeker's handshake was refused ({accepted.Error}); the session was closed.");
        }

        var session = new ResponderSession(this, taken, accepted.Channel!);
        sessions[session.Id] = session;
        await hub.Answer(taken.SessionId, accepted.Msg2!);
        return session;
    }

    private void ClearOffer(byte[] sessionId)
    {
        if (pendingOffer is { } offer && offer.SessionId.AsSpan().SequenceEqual(sessionId))
        {
            pendingOffer = null;
        }
    }

    private void Register(HubConnection hub)
    {
        hub.On<QueueSnapshot>(nameof(IResponderClient.QueueChanged), queue => QueueChanged?.Invoke(queue));
        hub.On<Offer>(nameof(IResponderClient.Offered), offer =>
        {
            if (offer.SessionId is { Length: Wire.SessionIdSize })
            {
                pendingOffer = offer;
                Offered?.Invoke(offer);
            }
        });
        hub.On<byte[], string>(nameof(IResponderClient.OfferWithdrawn), (id, reason) =>
        {
            if (id is { Length: Wire.SessionIdSize })
            {
                ClearOffer(id);
                OfferWithdrawn?.Invoke(new Guid(id, bigEndian: true), reason);
            }
        });
        hub.On<ResponderStatus>(nameof(IResponderClient.AvailabilityChanged), status =>
        {
            available = status.Available;
            AvailabilityChanged?.Invoke(status);
        });
        hub.On<byte[]>(nameof(IResponderClient.Envelope), async envelope =>
        {
            if (EnvelopeHeader.TryParse(envelope, out var header) && sessions.TryGetValue(header.SessionId, out var session))
            {
                await session.OnEnvelopeAsync(envelope);
            }
        });
        hub.On<byte[], ulong>(nameof(IResponderClient.Delivered), (id, sequence) =>
        {
            if (id.Length == Wire.SessionIdSize && sessions.TryGetValue(new Guid(id, bigEndian: true), out var session))
            {
                session.OnDelivered(sequence);
            }
        });
        hub.On<byte[], bool>(nameof(IResponderClient.SeekerConnection), (id, connected) =>
        {
            if (id is { Length: Wire.SessionIdSize } && sessions.TryGetValue(new Guid(id, bigEndian: true), out var session))
            {
                session.OnSeekerConnection(connected);
            }
        });
        hub.On<TransferResult>(nameof(IResponderClient.TransferOutcome), result =>
        {
            if (result.SessionId is { Length: Wire.SessionIdSize } && sessions.TryGetValue(new Guid(result.SessionId, bigEndian: true), out var session))
            {
                session.OnTransferOutcome(result.Outcome);
            }
        });
        hub.On<SessionEnd>(nameof(IResponderClient.SessionEnded), end =>
        {
            if (end.SessionId.Length == Wire.SessionIdSize && sessions.TryRemove(new Guid(end.SessionId, bigEndian: true), out var session))
            {
                session.OnEnded(end.Reason);
            }
        });
    }

    private async Task ResumeAsync(HubConnection hub)
    {
        // A new connection starts away, and an offer to the old one went with it.
        pendingOffer = null;
        foreach (var session in sessions.Values.OrderBy(s => s.Id).ToList())
        {
            try
            {
                var result = await hub.Responder().ResumeSession(
                    new ResumeSessionRequest { SessionId = session.Id.ToByteArray(bigEndian: true), ReceivedThrough = session.ReceivedThrough });

                // The session's pump re-sends what the server lacks, in order, once this connection is current.
                session.Resumed(result.NextSequence);
            }
            catch (TrustLineException)
            {
                // That session ended while we were away.
                sessions.TryRemove(session.Id, out _);
                session.OnEnded(SessionEndReasons.ResumeRefused);
            }
        }

        if (available)
        {
            // After the resumes, so the server counts the open chats of the new connection.
            var status = await hub.Responder().SetAvailability(true);
            AvailabilityChanged?.Invoke(status);
        }
    }

    private static async Task ThrowIfRefusedAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        if (response.IsSuccessStatusCode)
        {
            return;
        }

        ErrorResponse? error = null;
        try
        {
            error = await response.Content.ReadFromJsonAsync<ErrorResponse>(cancellationToken);
        }
        catch (System.Text.Json.JsonException)
        {
            // Not ours (a proxy page): fall through to the status code.
        }

        throw new TrustLineException(error?.Code ?? "http_" + (int)response.StatusCode, error?.Message ?? $"The server answered {(int)response.StatusCode}.");
    }
}

/// <summary>One session a responder holds.</summary>
public sealed class ResponderSession : IAsyncDisposable
{
    private readonly SessionEngine engine;
    private readonly ResponderClient client;
    private readonly TaskCompletionSource<SeekerHello> established = new(TaskCreationOptions.RunContinuationsAsynchronously);

    internal ResponderSession(ResponderClient client, TakenSession taken, SecureChannel channel)
    {
        this.client = client;
        Id = new Guid(taken.SessionId, bigEndian: true);
        Language = taken.Language;
        Topic = taken.Topic;
        Urgent = taken.Urgent;
        engine = new SessionEngine(channel, new Transport(client.Connection, taken.SessionId), client.Options.Time);
        engine.HelloReceived += hello =>
        {
            Hello = hello;
            established.TrySetResult(hello);
            Established?.Invoke(hello);
        };
        engine.MessageReceived += text => MessageReceived?.Invoke(text);
        engine.Ended += reason =>
        {
            client.Forget(Id);
            established.TrySetCanceled();
            Ended?.Invoke(reason);
        };
    }

    /// <summary>The session id.</summary>
    public Guid Id { get; }

    /// <summary>Routing: language.</summary>
    public string Language { get; }

    /// <summary>Routing: topic.</summary>
    public string Topic { get; }

    /// <summary>Routing: urgent.</summary>
    public bool Urgent { get; }

    /// <summary>The seeker's HELLO arrived and decrypted: the session is established.</summary>
    public event Action<SeekerHello>? Established;

    /// <summary>
    /// Completes when the seeker's HELLO has arrived (it can arrive before <c>TakeNextAsync</c> returns, so
    /// await this rather than relying on having subscribed to <see cref="Established"/> in time); cancelled if
    /// the session ends first.
    /// </summary>
    public Task<SeekerHello> WhenEstablished => established.Task;

    /// <summary>A text from the seeker.</summary>
    public event Action<string>? MessageReceived;

    /// <summary>
    /// The session ended, with a reason: an <see cref="EndReasons"/> code from the server or one of
    /// <see cref="SessionEndReasons"/> (<c>peer_closed</c> when the seeker sent CLOSE, <c>bad_hello</c>, …).
    /// </summary>
    public event Action<string>? Ended;

    /// <summary>The seeker's connection dropped (false; it may come back within the grace period) or is back (true).</summary>
    public event Action<bool>? SeekerConnectionChanged;

    /// <summary>
    /// What became of a transfer this responder proposed (<see cref="TransferOutcomes"/>): on <c>accepted</c> the
    /// session ends next, as <c>transferred</c>; otherwise it goes on.
    /// </summary>
    public event Action<string>? TransferOutcome;

    /// <summary>False while the seeker's connection is away.</summary>
    public bool SeekerConnected { get; private set; } = true;

    /// <summary>The seeker's HELLO, once received.</summary>
    public SeekerHello? Hello { get; private set; }

    /// <summary>Why it ended, or null while it runs.</summary>
    public string? EndReason => engine.EndReason;

    /// <summary>Authentic envelopes of a content type this client does not know, dropped unread (PROTOCOL.md §3).</summary>
    public int UnknownEnvelopesDropped => engine.UnknownDropped;

    internal long ReceivedThrough => engine.ReceivedThrough;

    /// <summary>
    /// Encrypts and sends a text to the seeker; completes when the server has it, and it is delivered even
    /// across reconnects. Cancelling stops the wait, not the delivery. Throws <see cref="ArgumentException"/>
    /// for a text over <see cref="Wire.MaxBodySize"/> bytes of UTF-8 and <see cref="InvalidOperationException"/>
    /// after the end.
    /// </summary>
    public Task SendTextAsync(string text, CancellationToken cancellationToken = default) => engine.SendTextAsync(text, cancellationToken);

    /// <summary>
    /// Proposes to hand this chat to a colleague (<paramref name="orgId"/> is the own organisation's id) or to a
    /// partner organisation the configuration lists. Tell the seeker in the chat first; the seeker's app asks them,
    /// and the answer comes as <see cref="TransferOutcome"/>. Throws <see cref="TrustLineException"/> when refused
    /// (<c>not_a_partner</c>, <c>closed</c>, <c>queue_full</c>, a proposal already pending, …).
    /// </summary>
    public async Task TransferAsync(byte[] orgId, CancellationToken cancellationToken = default) =>
        await (await client.Connection.ActiveAsync(cancellationToken)).Responder(cancellationToken).Transfer(Id.ToByteArray(bigEndian: true), orgId);

    /// <summary>Ends the session for both sides: CLOSE to the seeker, then the server forgets it.</summary>
    public Task CloseAsync(CancellationToken cancellationToken = default) => engine.CloseAsync(EndReasons.ResponderClosed, cancellationToken);

    /// <inheritdoc />
    public ValueTask DisposeAsync() => engine.DisposeAsync();

    internal Task OnEnvelopeAsync(byte[] envelope) => engine.OnEnvelopeAsync(envelope);

    internal void OnSeekerConnection(bool connected)
    {
        if (SeekerConnected != connected && EndReason is null)
        {
            SeekerConnected = connected;
            SeekerConnectionChanged?.Invoke(connected);
        }
    }

    internal void OnDelivered(ulong sequence) => engine.OnDelivered(sequence);

    internal void OnTransferOutcome(string outcome) => TransferOutcome?.Invoke(outcome);

    internal void OnEnded(string reason) => engine.End(reason);

    internal void Resumed(ulong nextSequence) => engine.Resumed(nextSequence);

    /// <summary>The responder hub's calls for one held session.</summary>
    private sealed class Transport(ReconnectingConnection connection, byte[] sessionId) : ISessionTransport
    {
        public async Task SendAsync(byte[] envelope, CancellationToken cancellationToken) =>
            await (await connection.ActiveAsync(cancellationToken)).Responder(cancellationToken).Send(envelope);

        public async Task AcknowledgeAsync(ulong through, CancellationToken cancellationToken) =>
            await (await connection.ActiveAsync(cancellationToken)).Responder(cancellationToken).Acknowledge(sessionId, through);

        public async Task CloseAsync(CancellationToken cancellationToken) =>
            await (await connection.ActiveAsync(cancellationToken)).Responder(cancellationToken).Close(sessionId);
    }
}
