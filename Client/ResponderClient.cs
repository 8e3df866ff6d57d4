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

    /// <summary>The sessions this responder holds now.</summary>
    public IReadOnlyCollection<ResponderSession> Sessions => [.. sessions.Values];

    internal HubConnection Hub => connection.Current;

    internal Task<HubConnection> ActiveHubAsync(CancellationToken cancellationToken) => connection.ActiveAsync(cancellationToken);

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
        await (await connection.ActiveAsync(cancellationToken)).InvokeAsync<QueueEntry[]>(ResponderHubMethods.GetQueue, [], cancellationToken);

    /// <summary>Takes the next waiting session and answers its handshake; null when the queue is empty.</summary>
    public async Task<ResponderSession?> TakeNextAsync(CancellationToken cancellationToken = default)
    {
        var taken = await (await connection.ActiveAsync(cancellationToken)).InvokeAsync<TakenSession?>(ResponderHubMethods.TakeNext, [], cancellationToken);
        return taken is null ? null : await AnswerAsync(taken, cancellationToken);
    }

    /// <summary>Takes a named waiting session; throws <see cref="TrustLineException"/> (<c>not_available</c>) if another responder was first.</summary>
    public async Task<ResponderSession> TakeAsync(byte[] sessionId, CancellationToken cancellationToken = default)
    {
        var taken = await (await connection.ActiveAsync(cancellationToken)).InvokeAsync<TakenSession?>(ResponderHubMethods.Take, [sessionId], cancellationToken);
        return await AnswerAsync(taken!, cancellationToken);
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
            session.Dispose();
        }
    }

    internal void Forget(Guid id) => sessions.TryRemove(id, out _);

    private async Task<ResponderSession> AnswerAsync(TakenSession taken, CancellationToken cancellationToken)
    {
        var accepted = ResponderHandshake.Accept(taken.Msg1, credentials, options.Time);
        if (!accepted.Succeeded)
        {
            // A msg1 for another organisation or with a bad key: end it rather than hold it.
            await connection.Current.CallAsync(ResponderHubMethods.Close, [taken.SessionId], cancellationToken);
            throw new TrustLineException("bad_msg1", $"The seeker's handshake was refused ({accepted.Error}); the session was closed.");
        }

        var session = new ResponderSession(this, taken, accepted.Channel!);
        sessions[session.Id] = session;
        await connection.Current.CallAsync(ResponderHubMethods.Answer, [taken.SessionId, accepted.Msg2], cancellationToken);
        return session;
    }

    private void Register(HubConnection hub)
    {
        hub.On<QueueSnapshot>(nameof(IResponderClient.QueueChanged), queue => QueueChanged?.Invoke(queue));
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
        // Hold every session's send gate: no text goes out before its session is resumed and resent.
        var held = sessions.Values.OrderBy(s => s.Id).ToList();
        foreach (var session in held)
        {
            await session.HoldSendsAsync();
        }

        try
        {
            foreach (var session in held)
            {
                try
                {
                    await hub.InvokeAsync<ResumeSessionResult>(ResponderHubMethods.ResumeSession,
                        [new ResumeSessionRequest { SessionId = session.Id.ToByteArray(bigEndian: true), ReceivedThrough = session.ReceivedThrough }],
                        CancellationToken.None);
                }
                catch (TrustLineException)
                {
                    // That session ended while we were away.
                    sessions.TryRemove(session.Id, out _);
                    session.OnEnded("resume_refused");
                }
            }

            connection.Activate(hub);
            foreach (var session in held.Where(s => s.EndReason is null))
            {
                await session.ResendHeldAsync(hub);
            }
        }
        finally
        {
            foreach (var session in held)
            {
                session.ReleaseSends();
            }
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
public sealed class ResponderSession : IDisposable
{
    private readonly ResponderClient client;
    private readonly SecureChannel channel;
    private readonly SemaphoreSlim gate = new(1, 1);

    // Held from sealing until the server has the envelope, so envelopes reach it in sequence order.
    private readonly SemaphoreSlim sendGate = new(1, 1);
    private readonly AckBatcher acks;
    private readonly GapWatch gaps;
    private readonly TaskCompletionSource<SeekerHello> established = new(TaskCreationOptions.RunContinuationsAsynchronously);

    internal ResponderSession(ResponderClient client, TakenSession taken, SecureChannel channel)
    {
        this.client = client;
        this.channel = channel;
        Id = new Guid(taken.SessionId, bigEndian: true);
        acks = new AckBatcher(through => client.Hub.CallAsync(ResponderHubMethods.Acknowledge, [Id.ToByteArray(bigEndian: true), through], CancellationToken.None),
            client.Options.Time);
        gaps = new GapWatch(gate, () => channel, MessagesMissingAsync, client.Options.Time);
        Language = taken.Language;
        Topic = taken.Topic;
        Urgent = taken.Urgent;
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
    /// await this rather than relying on having subscribed to <see cref="Established"/> in time).
    /// </summary>
    public Task<SeekerHello> WhenEstablished => established.Task;

    /// <summary>A text from the seeker.</summary>
    public event Action<string>? MessageReceived;

    /// <summary>The session ended, with a reason code.</summary>
    public event Action<string>? Ended;

    /// <summary>The seeker's HELLO, once received.</summary>
    public SeekerHello? Hello { get; private set; }

    /// <summary>Why it ended, or null while it runs.</summary>
    public string? EndReason { get; private set; }

    internal long ReceivedThrough => (long)channel.NextReceiveSequence - 1;

    /// <summary>Encrypts and sends a text to the seeker.</summary>
    public async Task SendTextAsync(string text, CancellationToken cancellationToken = default)
    {
        await sendGate.WaitAsync(cancellationToken);
        try
        {
            byte[] envelope;
            await gate.WaitAsync(cancellationToken);
            try
            {
                if (EndReason is not null)
                {
                    throw new InvalidOperationException("The session has ended.");
                }

                envelope = channel.SealText(text);
            }
            finally
            {
                gate.Release();
            }

            try
            {
                await client.Hub.InvokeAsync<SendResult>(ResponderHubMethods.Send, [envelope], cancellationToken);
            }
            catch (Exception e) when (e is InvalidOperationException or IOException or System.Net.WebSockets.WebSocketException)
            {
                // Offline: resent after the resume.
            }
        }
        finally
        {
            sendGate.Release();
        }
    }

    /// <summary>Ends the session for both sides.</summary>
    public async Task CloseAsync(CancellationToken cancellationToken = default)
    {
        var hub = await client.ActiveHubAsync(cancellationToken);
        await hub.CallAsync(ResponderHubMethods.Close, [Id.ToByteArray(bigEndian: true)], cancellationToken);
        client.Forget(Id);
        OnEnded(EndReasons.ResponderClosed);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        channel.Dispose();
        gate.Dispose();
        sendGate.Dispose();
    }

    internal Task HoldSendsAsync() => sendGate.WaitAsync();

    internal void ReleaseSends() => sendGate.Release();

    /// <summary>After a reconnect, with the send gate held: resend exactly the bytes not yet delivered, in order.</summary>
    internal async Task ResendHeldAsync(HubConnection hub)
    {
        IReadOnlyList<byte[]> pending;
        await gate.WaitAsync();
        try
        {
            pending = [.. channel.Unacknowledged.Select(u => u.Envelope)];
        }
        finally
        {
            gate.Release();
        }

        foreach (var envelope in pending)
        {
            await hub.InvokeAsync<SendResult>(ResponderHubMethods.Send, [envelope], CancellationToken.None);
        }
    }

    internal async Task OnEnvelopeAsync(byte[] envelope)
    {
        var texts = new List<string>();
        SeekerHello? hello = null;
        ulong? acknowledge = null;
        var missing = false;
        await gate.WaitAsync();
        try
        {
            var opened = channel.TryOpen(envelope);
            if (opened.Status == OpenStatus.Delivered)
            {
                foreach (var message in opened.Messages)
                {
                    if (message.Type == ContentType.Hello)
                    {
                        hello = message.Hello;
                    }
                    else if (message.Type == ContentType.Text)
                    {
                        texts.Add(message.Text);
                    }
                }

                acknowledge = channel.NextReceiveSequence - 1;
            }

            missing = opened.Status == OpenStatus.MessagesMissing;
            if (opened.Status == OpenStatus.Buffered)
            {
                gaps.Start();
            }
        }
        finally
        {
            gate.Release();
        }

        if (hello is not null)
        {
            Hello = hello;
            established.TrySetResult(hello);
            Established?.Invoke(hello);
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
        OnEnded("messages_missing");
        client.Forget(Id);
        try
        {
            await client.Hub.CallAsync(ResponderHubMethods.Close, [Id.ToByteArray(bigEndian: true)], CancellationToken.None);
        }
        catch (Exception e) when (e is TrustLineException or InvalidOperationException or IOException)
        {
            // Over for this side either way; the server's timers end it too.
        }
    }

    internal void OnDelivered(ulong sequence)
    {
        gate.Wait();
        try
        {
            channel.Acknowledge(sequence);
        }
        finally
        {
            gate.Release();
        }
    }

    internal void OnEnded(string reason)
    {
        if (EndReason is not null)
        {
            return;
        }

        EndReason = reason;
        Ended?.Invoke(reason);
    }
}
