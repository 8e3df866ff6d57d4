using System.Net;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using TrustLine.Protocol.Contracts;
using TrustLine.Server.Tests.Infrastructure;

namespace TrustLine.Server.Tests.Relay;

/// <summary>Each limit of a node: refused with its code, and nothing else harmed.</summary>
public sealed class LimitTests
{
    private static readonly Dictionary<string, string?> Tight = new()
    {
        ["Limits:ClientTimeout"] = "00:00:02",
        ["Limits:KeepAliveInterval"] = "00:00:01",
        ["Limits:HandshakeTimeout"] = "00:00:02",
        ["Limits:CallBurst"] = "20",
        ["Limits:CallsPerSecond"] = "1",
        ["Limits:AllowedOrigins:0"] = "https://help.example.org",
    };

    private World world = null!;

    [OneTimeSetUp]
    public async Task StartAsync() => world = await World.StartAsync(StoreUnderTest.Redis, extra: Tight);

    [OneTimeTearDown]
    public async Task StopAsync() => await world.DisposeAsync();

    [Test]
    public async Task AHandshakedButSilentConnectionIsClosed()
    {
        using var socket = new ClientWebSocket();
        await socket.ConnectAsync(WebSocketAddress(Routes.SeekerHub), CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));
        await socket.SendAsync("{\"protocol\":\"messagepack\",\"version\":1}\u001e"u8.ToArray(), WebSocketMessageType.Binary, true, CancellationToken.None);

        Assert.That(await ClosedByServerAsync(socket, TimeSpan.FromSeconds(15)), Is.True, "closed after the client timeout");
    }

    /// <summary>
    /// A hostile client that ignores the server's close frame is cut after the close timeout (2 s), not after
    /// SignalR's default 5 s: a silent connection is gone within ClientTimeout + about 3 s (issue 10: 35 s).
    /// </summary>
    [Test]
    public async Task ASilentPeerThatIgnoresTheCloseFrameIsCutAfterTheCloseTimeout()
    {
        using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        var node = world.Nodes[0].BaseAddress;
        await socket.ConnectAsync(new DnsEndPoint(node.Host, node.Port)).WaitAsync(TimeSpan.FromSeconds(10));
        await using var stream = new System.Net.Sockets.NetworkStream(socket, ownsSocket: false);
        await stream.WriteAsync(Encoding.ASCII.GetBytes($"GET {Routes.SeekerHub} HTTP/1.1\r\nHost: {node.Authority}\r\nUpgrade: websocket\r\n" +
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"));
        var head = new StringBuilder();
        while (!head.ToString().EndsWith("\r\n\r\n", StringComparison.Ordinal))
        {
            head.Append((char)await ReadByteAsync(stream));
        }

        var handshake = "{\"protocol\":\"messagepack\",\"version\":1}\u001e"u8.ToArray();
        await stream.WriteAsync((byte[])[0x82, (byte)(0x80 | handshake.Length), 0, 0, 0, 0, .. handshake]); // masked with a zero mask

        // Read the server's frames (handshake answer, pings) until its close frame, never answering it.
        int opcode;
        do
        {
            opcode = await ReadFrameAsync(stream);
        }
        while (opcode != 0x8);

        var closeSent = System.Diagnostics.Stopwatch.StartNew();
        var buffer = new byte[256];
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        try
        {
            while (await stream.ReadAsync(buffer, deadline.Token) > 0)
            {
            }
        }
        catch (IOException)
        {
        }

        var cutAfter = closeSent.Elapsed;
        Assert.Multiple(() =>
        {
            Assert.That(head.ToString(), Does.StartWith("HTTP/1.1 101"));
            Assert.That(deadline.IsCancellationRequested, Is.False, "the server cut the connection");
            Assert.That(cutAfter, Is.LessThan(TimeSpan.FromSeconds(4)), "cut after the 2 s close timeout, not SignalR's 5 s");
        });
    }

    private static async Task<byte> ReadByteAsync(Stream stream)
    {
        var one = new byte[1];
        await stream.ReadExactlyAsync(one).AsTask().WaitAsync(TimeSpan.FromSeconds(15));
        return one[0];
    }

    /// <summary>Reads one unmasked server frame and returns its opcode.</summary>
    private static async Task<int> ReadFrameAsync(Stream stream)
    {
        var opcode = await ReadByteAsync(stream) & 0x0f;
        long length = await ReadByteAsync(stream) & 0x7f;
        if (length >= 126)
        {
            var extended = new byte[length == 126 ? 2 : 8];
            await stream.ReadExactlyAsync(extended).AsTask().WaitAsync(TimeSpan.FromSeconds(15));
            length = extended.Aggregate(0L, (value, b) => (value << 8) | b);
        }

        await stream.ReadExactlyAsync(new byte[length]).AsTask().WaitAsync(TimeSpan.FromSeconds(15));
        return opcode;
    }

    [Test]
    public async Task AWebSocketThatNeverHandshakesIsClosed()
    {
        using var socket = new ClientWebSocket();
        await socket.ConnectAsync(WebSocketAddress(Routes.SeekerHub), CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));

        Assert.That(await ClosedByServerAsync(socket, TimeSpan.FromSeconds(15)), Is.True, "closed after the handshake timeout");
    }

    [Test]
    public async Task TheJsonProtocolHandshakeIsRefused()
    {
        using var socket = new ClientWebSocket();
        await socket.ConnectAsync(WebSocketAddress(Routes.SeekerHub), CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));
        await socket.SendAsync("{\"protocol\":\"json\",\"version\":1}\u001e"u8.ToArray(), WebSocketMessageType.Text, true, CancellationToken.None);

        var buffer = new byte[1024];
        var received = await socket.ReceiveAsync(buffer, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.That(Encoding.UTF8.GetString(buffer, 0, received.Count), Does.Contain("error"));
    }

    [Test]
    public async Task CallingTooFastIsRefusedRateLimitedAndTheConnectionRecovers()
    {
        await using var hub = await RawHub.SeekerAsync(world.Nodes[0]);
        var codes = new List<string>();
        for (var i = 0; i < 40; i++)
        {
            codes.Add(await RawHub.CodeOfAsync(hub.InvokeAsync(SeekerHubMethods.Close)));
        }

        Assert.Multiple(() =>
        {
            Assert.That(codes.Take(20), Is.All.EqualTo(ErrorCodes.NoSuchSession), "the burst passes to the handler");
            Assert.That(codes.Skip(20), Has.Some.EqualTo(ErrorCodes.RateLimited));
            Assert.That(hub.State, Is.EqualTo(HubConnectionState.Connected), "a refusal does not drop the connection");
        });
        await Eventually.TrueAsync(async () => await RawHub.CodeOfAsync(hub.InvokeAsync(SeekerHubMethods.Close)) == ErrorCodes.NoSuchSession,
            TimeSpan.FromSeconds(10), "calls pass again after a pause");
    }

    [Test]
    public async Task AFrameLargerThanTheLargestEnvelopeClosesTheConnection()
    {
        await using var hub = await RawHub.SeekerAsync(world.Nodes[0]);
        var closed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        hub.Closed += _ =>
        {
            closed.TrySetResult();
            return Task.CompletedTask;
        };

        _ = hub.InvokeAsync<SendResult>(SeekerHubMethods.Send, new byte[18 * 1024]);

        await closed.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await using var other = await RawHub.SeekerAsync(world.Nodes[0]);
        Assert.That(await RawHub.CodeOfAsync(other.InvokeAsync(SeekerHubMethods.Close)), Is.EqualTo(ErrorCodes.NoSuchSession), "other connections are unharmed");
    }

    [Test]
    public async Task AForeignWebOriginIsRefusedAndAppsAndAllowedOriginsAreNot()
    {
        await Assert.MultipleAsync(async () =>
        {
            Assert.That(await UpgradeStatusAsync("https://evil.example"), Is.EqualTo(HttpStatusCode.Forbidden));
            Assert.That(await UpgradeStatusAsync("null"), Is.EqualTo(HttpStatusCode.Forbidden));
            Assert.That(await UpgradeStatusAsync("https://help.example.org"), Is.EqualTo(HttpStatusCode.SwitchingProtocols));
            Assert.That(await UpgradeStatusAsync(null), Is.EqualTo(HttpStatusCode.SwitchingProtocols), "apps and the CLI send no Origin");
            Assert.That(await UpgradeStatusAsync(world.Nodes[0].BaseAddress.GetLeftPart(UriPartial.Authority)), Is.EqualTo(HttpStatusCode.SwitchingProtocols), "the server's own pages");
        });
        using var request = new HttpRequestMessage(HttpMethod.Post, Routes.Challenge);
        request.Headers.Add("Origin", "https://evil.example");
        using var response = await world.Nodes[0].Http.SendAsync(request);
        Assert.That((await response.Content.ReadFromJsonAsync<ErrorResponse>())!.Code, Is.EqualTo(ErrorCodes.ForbiddenOrigin));
    }

    [Test]
    public async Task NegotiationIsOff()
    {
        using var response = await world.Nodes[0].Http.PostAsync(Routes.SeekerHub + "/negotiate?negotiateVersion=1", null);

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
    }

    [Test]
    public async Task ResponsesNameNoServer()
    {
        using var response = await world.Nodes[0].Http.GetAsync("/health/live");

        Assert.That(response.Headers.Server, Is.Empty);
    }

    [Test]
    public async Task AnOversizedSignInBodyIsRefusedBeforeItIsRead()
    {
        using var content = new ByteArrayContent(new byte[40 * 1024]);
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");

        using var response = await world.Nodes[0].Http.PostAsync(Routes.SignIn, content);

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.RequestEntityTooLarge));
    }

    [Test]
    public async Task AMalformedSignInBodyGetsACodeAndNoStackTraceEvenInDevelopment()
    {
        await using var node = await TrustLineNode.StartAsync(NodeSettings.Embedded() with { Environment = "Development" });
        using var content = new StringContent("{\"challenge\": [1, 2", Encoding.UTF8, "application/json");

        using var response = await node.Http.PostAsync(Routes.SignIn, content);
        var body = await response.Content.ReadAsStringAsync();

        Assert.Multiple(() =>
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
            Assert.That(body, Does.Contain(ErrorCodes.BadRequest));
            Assert.That(body, Does.Not.Contain(" at ").And.Not.Contain("Exception"));
        });
    }

    [Test]
    public async Task AFloodOfChallengesStoresNothing()
    {
        var before = (await RedisInspection.KeysAsync(world.Prefix)).Count;
        var tasks = Enumerable.Range(0, 500).Select(async _ =>
        {
            using var response = await world.Nodes[0].Http.PostAsync(Routes.Challenge, null);
            return response.StatusCode;
        });

        var statuses = await Task.WhenAll(tasks).WaitAsync(TimeSpan.FromSeconds(60));

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(statuses, Is.All.EqualTo(HttpStatusCode.OK));
            Assert.That((await RedisInspection.KeysAsync(world.Prefix)).Count, Is.LessThanOrEqualTo(before + 1), "at most the day's challenge key");
        });
    }

    [Test]
    public async Task AChallengeIsSpentOnlyByASuccessfulSignInAndOnlyOnce()
    {
        using var credentials = world.Org.Credentials();
        var node = world.Nodes[0];
        using var challengeResponse = await node.Http.PostAsync(Routes.Challenge, null);
        var challenge = Convert.FromBase64String((await challengeResponse.Content.ReadFromJsonAsync<ChallengeResponse>())!.Challenge);
        var good = new SignInRequest
        {
            IssuerCertificate = Protocol.Crypto.PublicText.Certificate(credentials.Issuer),
            ResponderCertificate = Protocol.Crypto.PublicText.Certificate(credentials.Responder),
            Challenge = Convert.ToBase64String(challenge),
            Signature = Convert.ToBase64String(ResponderSignIn.Sign(credentials.SigningKey, challenge)),
        };
        var forged = new SignInRequest
        {
            IssuerCertificate = good.IssuerCertificate,
            ResponderCertificate = good.ResponderCertificate,
            Challenge = good.Challenge,
            Signature = Convert.ToBase64String(new byte[64]),
        };
        var tampered = (byte[])challenge.Clone();
        tampered[0] ^= 1;

        using var forgedResponse = await node.Http.PostAsJsonAsync(Routes.SignIn, forged);
        using var first = await node.Http.PostAsJsonAsync(Routes.SignIn, good);
        using var replay = await node.Http.PostAsJsonAsync(Routes.SignIn, good);
        using var made = await node.Http.PostAsJsonAsync(Routes.SignIn, new SignInRequest
        {
            IssuerCertificate = good.IssuerCertificate,
            ResponderCertificate = good.ResponderCertificate,
            Challenge = Convert.ToBase64String(tampered),
            Signature = Convert.ToBase64String(ResponderSignIn.Sign(credentials.SigningKey, tampered)),
        });

        await Assert.MultipleAsync(async () =>
        {
            Assert.That((await forgedResponse.Content.ReadFromJsonAsync<ErrorResponse>())!.Code, Is.EqualTo(ErrorCodes.BadSignature));
            Assert.That(first.StatusCode, Is.EqualTo(HttpStatusCode.OK), "a refused attempt does not spend the challenge");
            Assert.That((await replay.Content.ReadFromJsonAsync<ErrorResponse>())!.Code, Is.EqualTo(ErrorCodes.BadChallenge));
            Assert.That((await made.Content.ReadFromJsonAsync<ErrorResponse>())!.Code, Is.EqualTo(ErrorCodes.BadChallenge), "a challenge the server did not make");
        });
    }

    private Uri WebSocketAddress(string path) => new(new Uri(world.Nodes[0].BaseAddress.ToString().Replace("http", "ws", StringComparison.Ordinal)), path);

    private async Task<HttpStatusCode> UpgradeStatusAsync(string? origin)
    {
        using var socket = new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;
        if (origin is not null)
        {
            socket.Options.SetRequestHeader("Origin", origin);
        }

        try
        {
            await socket.ConnectAsync(WebSocketAddress(Routes.SeekerHub), CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));
        }
        catch (WebSocketException)
        {
        }

        return socket.HttpStatusCode;
    }

    private static async Task<bool> ClosedByServerAsync(ClientWebSocket socket, TimeSpan limit)
    {
        var buffer = new byte[4096];
        using var deadline = new CancellationTokenSource(limit);
        try
        {
            while (true)
            {
                var received = await socket.ReceiveAsync(buffer, deadline.Token);
                if (received.MessageType == WebSocketMessageType.Close)
                {
                    return true;
                }
            }
        }
        catch (OperationCanceledException)
        {
            return false;
        }
        catch (WebSocketException)
        {
            return true;
        }
    }
}
