using System.Buffers.Binary;
using System.Net.WebSockets;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using TrustLine.Protocol.Contracts;
using TrustLine.Protocol.Crypto;

namespace TrustLine.Relay.Bench;

/// <summary>One sender → receiver path through a relay. Message i carries i as a big-endian integer at offset 19.</summary>
internal interface IPairLink : IAsyncDisposable
{
    /// <summary>Sends message i; closed loop waits for the server's answer where the protocol has one.</summary>
    Task SendAsync(int index);

    /// <summary>Sends message i without waiting for any answer (open loop).</summary>
    Task PostAsync(int index);
}

/// <summary>A relay under test: its server processes and how to connect pairs and idle connections to it.</summary>
internal interface ITarget : IAsyncDisposable
{
    string Name { get; }

    IReadOnlyList<Node> Nodes { get; }

    RedisProcess? Redis { get; }

    Task<IPairLink> ConnectAsync(int pair, int size, int messages, Action<int> onReceived);

    Task<IAsyncDisposable> IdleAsync(int index);
}

/// <summary>A SignalR target: a connection can stop right after the hub handshake.</summary>
internal interface IHubTarget : ITarget
{
    /// <summary>A connection to the target's (seeker) hub that completed the SignalR handshake and calls nothing.</summary>
    Task<HubConnection> HandshakedAsync(int index);
}

/// <summary>A target that can run whole session opens: a responder connection takes each one.</summary>
internal interface ISessionOpener : ITarget
{
    Task<HubConnection> ResponderAsync(int node);

    Task OpenSessionAsync(int index, HubConnection responder);
}

internal static class Payloads
{
    public static byte[] Make(int size, int index)
    {
        var payload = new byte[size];
        BinaryPrimitives.WriteUInt64BigEndian(payload.AsSpan(19, 8), (ulong)index);
        return payload;
    }

    public static int IndexOf(byte[] payload) => (int)BinaryPrimitives.ReadUInt64BigEndian(payload.AsSpan(19, 8));
}

/// <summary>B0: raw WebSockets, bytes forwarded between paired sockets.</summary>
internal sealed class RawWebSocketTarget(IReadOnlyList<Node> nodes) : ITarget
{
    public string Name => "B0 raw WebSocket relay";

    public IReadOnlyList<Node> Nodes => nodes;

    public RedisProcess? Redis => null;

    public async Task<IPairLink> ConnectAsync(int pair, int size, int messages, Action<int> onReceived)
    {
        var a = new ClientWebSocket();
        var b = new ClientWebSocket();
        var uri = nodes[0].BaseAddress;
        // Pair names are unique per connection: workloads connect pair 0, 1, … again for every run.
        var name = $"{pair}-{Guid.NewGuid():N}";
        await Task.WhenAll(
            a.ConnectAsync(new Uri($"ws://{uri.Authority}/ws?pair={name}&side=a"), CancellationToken.None),
            b.ConnectAsync(new Uri($"ws://{uri.Authority}/ws?pair={name}&side=b"), CancellationToken.None));
        var payloads = Enumerable.Range(0, messages).Select(i => Payloads.Make(size, i)).ToArray();
        var receiving = Task.Run(async () =>
        {
            var buffer = new byte[32 * 1024];
            var filled = 0;
            while (b.State == WebSocketState.Open)
            {
                var result = await b.ReceiveAsync(buffer.AsMemory(filled), CancellationToken.None);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    return;
                }

                filled += result.Count;
                if (result.EndOfMessage)
                {
                    onReceived(Payloads.IndexOf(buffer[..filled]));
                    filled = 0;
                }
            }
        });
        return new Link(a, b, payloads, receiving);
    }

    public async Task<IAsyncDisposable> IdleAsync(int index)
    {
        var socket = new ClientWebSocket();
        await socket.ConnectAsync(new Uri($"ws://{nodes[0].BaseAddress.Authority}/ws?pair=idle{index}&side=a"), CancellationToken.None);
        return new Idle(socket);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var node in nodes)
        {
            await node.DisposeAsync();
        }
    }

    private sealed class Link(ClientWebSocket a, ClientWebSocket b, byte[][] payloads, Task receiving) : IPairLink
    {
        private readonly SemaphoreSlim sending = new(1, 1);

        public async Task SendAsync(int index)
        {
            await sending.WaitAsync();
            try
            {
                await a.SendAsync(payloads[index], WebSocketMessageType.Binary, true, CancellationToken.None);
            }
            finally
            {
                sending.Release();
            }
        }

        public Task PostAsync(int index) => SendAsync(index);

        public async ValueTask DisposeAsync()
        {
            a.Abort();
            b.Abort();
            await Task.WhenAny(receiving, Task.Delay(1000));
            a.Dispose();
            b.Dispose();
        }
    }

    private sealed class Idle(ClientWebSocket socket) : IAsyncDisposable
    {
        public ValueTask DisposeAsync()
        {
            socket.Abort();
            socket.Dispose();
            return ValueTask.CompletedTask;
        }
    }
}

/// <summary>B1/B2: a bare SignalR relay hub; with two nodes and Redis, pairs are split across them.</summary>
internal sealed class SignalRTarget(string name, IReadOnlyList<Node> nodes, RedisProcess? redis, BenchOrganisation? org = null) : ISessionOpener, IHubTarget
{
    public string Name => name;

    public IReadOnlyList<Node> Nodes => nodes;

    public RedisProcess? Redis => redis;

    public async Task<IPairLink> ConnectAsync(int pair, int size, int messages, Action<int> onReceived)
    {
        var a = Connect(nodes[pair % nodes.Count]);
        var b = Connect(nodes[(pair + 1) % nodes.Count]);
        b.On<byte[]>("Receive", payload => onReceived(Payloads.IndexOf(payload)));
        await Task.WhenAll(a.StartAsync(), b.StartAsync());
        var (idA, idB) = (await a.InvokeAsync<string>("Id"), await b.InvokeAsync<string>("Id"));
        await a.InvokeAsync("SetPeer", idB);
        await b.InvokeAsync("SetPeer", idA);
        return new Link(a, b, [.. Enumerable.Range(0, messages).Select(i => Payloads.Make(size, i))]);
    }

    public async Task<IAsyncDisposable> IdleAsync(int index)
    {
        var connection = Connect(nodes[index % nodes.Count]);
        await connection.StartAsync();
        await connection.InvokeAsync<string>("Id");
        return connection;
    }

    public async Task<HubConnection> HandshakedAsync(int index)
    {
        var connection = Connect(nodes[index % nodes.Count]);
        await connection.StartAsync();
        return connection;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var node in nodes)
        {
            await node.DisposeAsync();
        }
    }

    /// <summary>
    /// The open baseline: the same connections, calls and client cryptography as <see cref="TrustLineTarget.OpenSessionAsync"/>,
    /// against the bare hub's in-memory sessions.
    /// </summary>
    public async Task OpenSessionAsync(int index, HubConnection responder)
    {
        var pin = (org ?? throw new InvalidOperationException("The open baseline needs the bench organisation.")).Pin;
        await using var seeker = Connect(nodes[index % nodes.Count], "/open");
        var answered = new TaskCompletionSource<byte[]>(TaskCreationOptions.RunContinuationsAsynchronously);
        seeker.On<byte[]>("Answered", msg2 => answered.TrySetResult(msg2));
        await seeker.StartAsync();
        using var handshake = SeekerHandshake.Start(pin);
        var sessionId = handshake.SessionGuid.ToByteArray();
        await seeker.InvokeAsync<byte[]>("Open", sessionId, handshake.Msg1.ToArray());
        var msg1 = await responder.InvokeAsync<byte[]?>("Take", sessionId);
        using var credentials = org.Credentials();
        var accepted = ResponderHandshake.Accept(msg1!, credentials);
        using var responderChannel = accepted.Channel!;
        await responder.InvokeAsync("Answer", sessionId, accepted.Msg2);
        using var channel = handshake.Complete(await answered.Task.WaitAsync(TimeSpan.FromSeconds(30))).Channel!;
        await seeker.InvokeAsync<ulong>("Send", channel.SealHello());
        await seeker.InvokeAsync("Close");
    }

    public async Task<HubConnection> ResponderAsync(int node)
    {
        var responder = Connect(nodes[node % nodes.Count], "/open");
        responder.On<byte[]>("Envelope", _ => { });
        responder.On<byte[]>("SessionEnded", _ => { });
        await responder.StartAsync();
        return responder;
    }

    private static HubConnection Connect(Node node, string path = "/relay") =>
        new HubConnectionBuilder()
            .WithUrl(new Uri(node.BaseAddress, path), HttpTransportType.WebSockets, o => o.SkipNegotiation = true)
            .AddMessagePackProtocol()
            .Build();

    private sealed class Link(HubConnection a, HubConnection b, byte[][] payloads) : IPairLink
    {
        public Task SendAsync(int index) => a.InvokeAsync("Send", payloads[index]);

        public Task PostAsync(int index) => a.SendAsync("Send", payloads[index]);

        public async ValueTask DisposeAsync()
        {
            await a.DisposeAsync();
            await b.DisposeAsync();
        }
    }
}

/// <summary>
/// TrustLine: every pair is a real session (PROTOCOL.md handshake: msg1, take, msg2 with certificate chain,
/// HELLO), then pre-sealed envelopes flow seeker → responder; the responder acknowledges every 64 like the SDK.
/// </summary>
internal sealed class TrustLineTarget(string name, IReadOnlyList<Node> nodes, RedisProcess? redis, BenchOrganisation org) : ISessionOpener, IHubTarget
{
    public string Name => name;

    public IReadOnlyList<Node> Nodes => nodes;

    public RedisProcess? Redis => redis;

    public async Task<IPairLink> ConnectAsync(int pair, int size, int messages, Action<int> onReceived)
    {
        var seeker = Connect(nodes[pair % nodes.Count], Routes.SeekerHub, null);
        var token = await ResponderTokenAsync(nodes[(pair + 1) % nodes.Count]);
        var responder = Connect(nodes[(pair + 1) % nodes.Count], Routes.ResponderHub, token);
        var answered = new TaskCompletionSource<byte[]>(TaskCreationOptions.RunContinuationsAsynchronously);
        seeker.On<byte[]>(nameof(ISeekerClient.Answered), msg2 => answered.TrySetResult(msg2));
        var hello = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        byte[]? sessionId = null;
        responder.On<byte[]>(nameof(IResponderClient.Envelope), envelope =>
        {
            var seq = (long)BinaryPrimitives.ReadUInt64BigEndian(envelope.AsSpan(19, 8));
            if (seq == 0)
            {
                hello.TrySetResult();
                return;
            }

            onReceived((int)seq - 1);
            if (seq % 64 == 0)
            {
                _ = responder.SendAsync(ResponderHubMethods.Acknowledge, sessionId, (ulong)seq);
            }
        });
        await Task.WhenAll(seeker.StartAsync(), responder.StartAsync());

        using var handshake = SeekerHandshake.Start(org.Pin);
        sessionId = handshake.SessionGuid.ToByteArray(bigEndian: true);
        await seeker.InvokeAsync<OpenSessionResult>(SeekerHubMethods.OpenSession, new OpenSessionRequest { Msg1 = handshake.Msg1.ToArray(), Language = "nl" });
        var taken = await responder.InvokeAsync<TakenSession?>(ResponderHubMethods.Take, sessionId);
        using var credentials = org.Credentials();
        var accepted = ResponderHandshake.Accept(taken!.Msg1, credentials);
        await responder.InvokeAsync(ResponderHubMethods.Answer, sessionId, accepted.Msg2);
        using var responderChannel = accepted.Channel!;
        using var channel = handshake.Complete(await answered.Task.WaitAsync(TimeSpan.FromSeconds(30))).Channel
            ?? throw new InvalidOperationException("The handshake failed.");
        await seeker.InvokeAsync<SendResult>(SeekerHubMethods.Send, channel.SealHello());
        await hello.Task.WaitAsync(TimeSpan.FromSeconds(30));

        // Sealed ahead: the relay is measured, not the clients' encryption.
        var body = new byte[BodyFor(size)];
        var envelopes = new byte[messages][];
        for (var i = 0; i < messages; i++)
        {
            envelopes[i] = channel.Seal(ContentType.Text, body);
            channel.Acknowledge((ulong)i + 1);
        }

        return new Link(seeker, responder, envelopes);
    }

    public async Task<IAsyncDisposable> IdleAsync(int index)
    {
        // An idle seeker: connected, with a session waiting in the queue.
        var seeker = Connect(nodes[index % nodes.Count], Routes.SeekerHub, null);
        await seeker.StartAsync();
        using var handshake = SeekerHandshake.Start(org.Pin);
        await seeker.InvokeAsync<OpenSessionResult>(SeekerHubMethods.OpenSession, new OpenSessionRequest { Msg1 = handshake.Msg1.ToArray(), Language = "nl" });
        return seeker;
    }

    public async Task<HubConnection> HandshakedAsync(int index)
    {
        // A seeker app that connected and has not opened or resumed yet; the node closes it after Limits:ClientTimeout.
        var seeker = Connect(nodes[index % nodes.Count], Routes.SeekerHub, null);
        await seeker.StartAsync();
        return seeker;
    }

    /// <summary>A whole session open: connect, msg1, take, msg2, verify, HELLO delivered.</summary>
    public async Task OpenSessionAsync(int index, HubConnection responder)
    {
        await using var seeker = Connect(nodes[index % nodes.Count], Routes.SeekerHub, null);
        var answered = new TaskCompletionSource<byte[]>(TaskCreationOptions.RunContinuationsAsynchronously);
        seeker.On<byte[]>(nameof(ISeekerClient.Answered), msg2 => answered.TrySetResult(msg2));
        await seeker.StartAsync();
        using var handshake = SeekerHandshake.Start(org.Pin);
        var sessionId = handshake.SessionGuid.ToByteArray(bigEndian: true);
        await seeker.InvokeAsync<OpenSessionResult>(SeekerHubMethods.OpenSession, new OpenSessionRequest { Msg1 = handshake.Msg1.ToArray(), Language = "nl" });
        var taken = await responder.InvokeAsync<TakenSession?>(ResponderHubMethods.Take, sessionId);
        using var credentials = org.Credentials();
        var accepted = ResponderHandshake.Accept(taken!.Msg1, credentials);
        using var responderChannel = accepted.Channel!;
        await responder.InvokeAsync(ResponderHubMethods.Answer, sessionId, accepted.Msg2);
        using var channel = handshake.Complete(await answered.Task.WaitAsync(TimeSpan.FromSeconds(30))).Channel!;
        await seeker.InvokeAsync<SendResult>(SeekerHubMethods.Send, channel.SealHello());
        await seeker.InvokeAsync(SeekerHubMethods.Close);
    }

    public async Task<HubConnection> ResponderAsync(int node)
    {
        var responder = Connect(nodes[node % nodes.Count], Routes.ResponderHub, await ResponderTokenAsync(nodes[node % nodes.Count]));
        await responder.StartAsync();
        return responder;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var node in nodes)
        {
            await node.DisposeAsync();
        }
    }

    private async Task<string> ResponderTokenAsync(Node node)
    {
        using var credentials = org.Credentials();
        return await TrustLine.Client.ResponderClient.RequestTokenAsync(node.BaseAddress, credentials);
    }

    private static int BodyFor(int envelopeSize) => envelopeSize - Wire.HeaderSize - Wire.TagSize - 3 - 16;

    private static HubConnection Connect(Node node, string path, string? token) =>
        new HubConnectionBuilder()
            .WithUrl(new Uri(node.BaseAddress, path), HttpTransportType.WebSockets, o =>
            {
                o.SkipNegotiation = true;
                if (token is not null)
                {
                    o.AccessTokenProvider = () => Task.FromResult<string?>(token);
                }
            })
            .AddMessagePackProtocol()
            .Build();

    private sealed class Link(HubConnection seeker, HubConnection responder, byte[][] envelopes) : IPairLink
    {
        public Task SendAsync(int index) => seeker.InvokeAsync<SendResult>(SeekerHubMethods.Send, envelopes[index]);

        public Task PostAsync(int index) => seeker.SendAsync(SeekerHubMethods.Send, envelopes[index]);

        public async ValueTask DisposeAsync()
        {
            await seeker.DisposeAsync();
            await responder.DisposeAsync();
        }
    }
}
