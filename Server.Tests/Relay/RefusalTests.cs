using System.Net;
using System.Net.Http.Json;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using TrustLine.Client;
using TrustLine.Protocol.Contracts;
using TrustLine.Protocol.Crypto;
using TrustLine.Server.Tests.Crypto;
using TrustLine.Server.Tests.Infrastructure;

namespace TrustLine.Server.Tests.Relay;

/// <summary>Every refusal of the relay and of sign-in: a stable code, and nothing else harmed.</summary>
public sealed class RefusalTests
{
    private World world = null!;

    [OneTimeSetUp]
    public async Task StartAsync() => world = await World.StartAsync(StoreUnderTest.Redis);

    [OneTimeTearDown]
    public async Task StopAsync() => await world.DisposeAsync();

    // ---- sign-in ----

    [Test]
    public async Task SignInWithAValidChainAndSignatureGivesAToken()
    {
        using var credentials = world.Org.Credentials();
        var (status, body) = await SignInAsync(credentials);

        Assert.That(status, Is.EqualTo(HttpStatusCode.OK), body);
    }

    [Test]
    public async Task SignInWithAnExpiredCertificateIsRefused()
    {
        var now = World.Now;
        var expired = Certificate.Issue(world.Org.IssuerKey, CertificateRole.Responder, world.Org.OrgId, world.Org.ResponderPublic, now - (3 * 86400), now - 86400);
        using var credentials = world.Org.Credentials(responderCertificate: expired);

        await AssertSignInRefusedAsync(credentials, HttpStatusCode.Forbidden, ErrorCodes.CertificateExpired);
    }

    [Test]
    public async Task SignInWithAForgedChainIsRefused()
    {
        using var impostor = new TestOrganisation(orgId: world.Org.OrgId, issuerNotBefore: World.Now - 60, issuerNotAfter: World.Now + 86400,
            responderNotBefore: World.Now - 60, responderNotAfter: World.Now + 86400, fresh: true);
        using var credentials = impostor.Credentials();

        await AssertSignInRefusedAsync(credentials, HttpStatusCode.Forbidden, ErrorCodes.BadCertificate);
    }

    [Test]
    public async Task SignInForAnotherOrganisationIsRefused()
    {
        using var other = new TestOrganisation(orgId: new byte[16], issuerNotBefore: World.Now - 60, issuerNotAfter: World.Now + 86400,
            responderNotBefore: World.Now - 60, responderNotAfter: World.Now + 86400, fresh: true);
        using var credentials = other.Credentials();

        await AssertSignInRefusedAsync(credentials, HttpStatusCode.Forbidden, ErrorCodes.UnknownOrganisation);
    }

    [Test]
    public async Task SignInWithADenylistedKeyIsRefused()
    {
        await using var denying = await World.StartAsync(StoreUnderTest.Embedded, denyOwnResponder: true);
        using var credentials = denying.Org.Credentials();

        await AssertSignInRefusedAsync(credentials, HttpStatusCode.Forbidden, ErrorCodes.Denied, denying.Nodes[0]);
    }

    [Test]
    public async Task ReplayedChallengeIsRefused()
    {
        using var credentials = world.Org.Credentials();
        var challenge = await ChallengeAsync(world.Nodes[0]);
        var request = Request(credentials, challenge, ResponderSignIn.Sign(credentials.SigningKey, challenge));
        using var first = await world.Nodes[0].Http.PostAsJsonAsync(Routes.SignIn, request);
        Assert.That(first.StatusCode, Is.EqualTo(HttpStatusCode.OK));

        using var replay = await world.Nodes[0].Http.PostAsJsonAsync(Routes.SignIn, request);

        await AssertErrorAsync(replay, HttpStatusCode.Unauthorized, ErrorCodes.BadChallenge);
    }

    [Test]
    public async Task WrongSignatureIsRefused()
    {
        using var credentials = world.Org.Credentials();
        var challenge = await ChallengeAsync(world.Nodes[0]);
        var otherChallenge = new byte[32];
        using var response = await world.Nodes[0].Http.PostAsJsonAsync(Routes.SignIn,
            Request(credentials, challenge, ResponderSignIn.Sign(credentials.SigningKey, otherChallenge)));

        await AssertErrorAsync(response, HttpStatusCode.Unauthorized, ErrorCodes.BadSignature);
    }

    [Test]
    public async Task MalformedSignInIsRefused()
    {
        using var response = await world.Nodes[0].Http.PostAsJsonAsync(Routes.SignIn, new SignInRequest { Challenge = "nope" });

        await AssertErrorAsync(response, HttpStatusCode.BadRequest, ErrorCodes.BadRequest);
    }

    [Test]
    public async Task ResponderHubRefusesAConnectionWithoutAValidToken()
    {
        await using var anonymous = Raw(Routes.ResponderHub, token: "not-a-token");

        var error = Assert.CatchAsync(async () => await anonymous.StartAsync().WaitAsync(TimeSpan.FromSeconds(10)));

        Assert.That(error!.Message, Does.Contain("401"));
    }

    // ---- seeker hub ----

    [Test]
    public async Task OpenSessionRefusesMalformedAndUnroutableRequests()
    {
        await using var hub = Raw(Routes.SeekerHub);
        await hub.StartAsync().WaitAsync(TimeSpan.FromSeconds(10));
        using var handshake = SeekerHandshake.Start(world.Org.Pin);
        using var strangers = SeekerHandshake.Start(new OrganisationPin(new byte[16], [world.Org.RootPublic]));

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(await CodeOf(hub.InvokeAsync<OpenSessionResult>(SeekerHubMethods.OpenSession, new OpenSessionRequest { Msg1 = new byte[66], Language = "nl" })), Is.EqualTo(ErrorCodes.BadMsg1));
            Assert.That(await CodeOf(hub.InvokeAsync<OpenSessionResult>(SeekerHubMethods.OpenSession, new OpenSessionRequest { Msg1 = strangers.Msg1.ToArray(), Language = "nl" })), Is.EqualTo(ErrorCodes.UnknownOrganisation));
            Assert.That(await CodeOf(hub.InvokeAsync<OpenSessionResult>(SeekerHubMethods.OpenSession, new OpenSessionRequest { Msg1 = handshake.Msg1.ToArray(), Language = "fr" })), Is.EqualTo(ErrorCodes.UnknownRouting));
            Assert.That(await CodeOf(hub.InvokeAsync<OpenSessionResult>(SeekerHubMethods.OpenSession, new OpenSessionRequest { Msg1 = handshake.Msg1.ToArray(), Language = "nl", Topic = "astrology" })), Is.EqualTo(ErrorCodes.UnknownRouting));
        });

        // None of that opened anything: the same msg1 still opens a session.
        var opened = await hub.InvokeAsync<OpenSessionResult>(SeekerHubMethods.OpenSession, new OpenSessionRequest { Msg1 = handshake.Msg1.ToArray(), Language = "nl" });
        Assert.That(opened.ResumeToken, Has.Length.EqualTo(32));
        Assert.That(await CodeOf(hub.InvokeAsync<OpenSessionResult>(SeekerHubMethods.OpenSession, new OpenSessionRequest { Msg1 = handshake.Msg1.ToArray(), Language = "nl" })), Is.EqualTo(ErrorCodes.AlreadyInSession));
        await using var second = Raw(Routes.SeekerHub);
        await second.StartAsync();
        Assert.That(await CodeOf(second.InvokeAsync<OpenSessionResult>(SeekerHubMethods.OpenSession, new OpenSessionRequest { Msg1 = handshake.Msg1.ToArray(), Language = "nl" })), Is.EqualTo(ErrorCodes.SessionExists));
        await hub.InvokeAsync(SeekerHubMethods.Close);
    }

    [Test]
    public async Task ResumeWithAWrongTokenIsRefusedAndTheSessionGoesOn()
    {
        var seeker = world.Seeker();
        await seeker.OpenAsync("nl").WaitAsync(TimeSpan.FromSeconds(10));
        await using var thief = Raw(Routes.SeekerHub);
        await thief.StartAsync();

        var code = await CodeOf(thief.InvokeAsync<ResumeSessionResult>(SeekerHubMethods.ResumeSession,
            new ResumeSessionRequest { SessionId = seeker.SessionId.ToByteArray(bigEndian: true), ResumeToken = new byte[32] }));

        Assert.That(code, Is.EqualTo(ErrorCodes.ResumeRefused));
        Assert.That(seeker.State, Is.EqualTo(SeekerState.Waiting));
        await seeker.CloseAsync();
    }

    [Test]
    public async Task RelayRefusesBadEnvelopesAndTheSessionCarriesOn()
    {
        var scenario = await ManualSeeker.ConnectAsync(world);
        await using var _ = scenario;
        var hub = scenario.Hub;
        var channel = scenario.Channel;
        var good = channel.SealText("first");

        byte[] Altered(int index, byte value)
        {
            var copy = (byte[])good.Clone();
            copy[index] = value;
            return copy;
        }

        var otherSession = Altered(5, (byte)(good[5] ^ 0xff));
        var ahead = (byte[])good.Clone();
        ahead[26] = 9;

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(await CodeOf(hub.InvokeAsync<SendResult>(SeekerHubMethods.Send, good[..298])), Is.EqualTo(ErrorCodes.BadEnvelope), "size");
            Assert.That(await CodeOf(hub.InvokeAsync<SendResult>(SeekerHubMethods.Send, Altered(0, 2))), Is.EqualTo(ErrorCodes.BadEnvelope), "version");
            Assert.That(await CodeOf(hub.InvokeAsync<SendResult>(SeekerHubMethods.Send, Altered(1, 0x11))), Is.EqualTo(ErrorCodes.BadEnvelope), "type");
            Assert.That(await CodeOf(hub.InvokeAsync<SendResult>(SeekerHubMethods.Send, Altered(2, 2))), Is.EqualTo(ErrorCodes.BadEnvelope), "direction");
            Assert.That(await CodeOf(hub.InvokeAsync<SendResult>(SeekerHubMethods.Send, otherSession)), Is.EqualTo(ErrorCodes.NoSuchSession), "sid");
            Assert.That(await CodeOf(hub.InvokeAsync<SendResult>(SeekerHubMethods.Send, ahead)), Is.EqualTo(ErrorCodes.OutOfOrder), "seq");
        });

        var sent = await hub.InvokeAsync<SendResult>(SeekerHubMethods.Send, good);
        var resent = await hub.InvokeAsync<SendResult>(SeekerHubMethods.Send, good);
        await hub.InvokeAsync<SendResult>(SeekerHubMethods.Send, channel.SealText("second"));

        var texts = await scenario.ResponderInbox.WaitForAsync(2, "texts at the responder");
        Assert.Multiple(() =>
        {
            Assert.That(sent.Duplicate, Is.False);
            Assert.That(resent.Duplicate, Is.True, "a resend is acknowledged");
            Assert.That(texts, Is.EqualTo(new[] { "first", "second" }), "never relayed twice, nothing harmed");
        });
    }

    [Test]
    public async Task SeekerCannotSendBeforeTheAnswer()
    {
        await using var hub = Raw(Routes.SeekerHub);
        await hub.StartAsync();
        using var handshake = SeekerHandshake.Start(world.Org.Pin);
        await hub.InvokeAsync<OpenSessionResult>(SeekerHubMethods.OpenSession, new OpenSessionRequest { Msg1 = handshake.Msg1.ToArray(), Language = "nl" });
        var early = new byte[299];
        early[0] = 1;
        early[1] = 0x10;
        early[2] = 1;
        handshake.SessionId.CopyTo(early.AsSpan(3));

        Assert.That(await CodeOf(hub.InvokeAsync<SendResult>(SeekerHubMethods.Send, early)), Is.EqualTo(ErrorCodes.WrongState));
        await hub.InvokeAsync(SeekerHubMethods.Close);
    }

    [Test]
    public async Task ResponderCannotActOnASessionItDoesNotHold()
    {
        var scenario = await ManualSeeker.ConnectAsync(world);
        await using var _ = scenario;
        var intruder = await world.ResponderAsync(credentials: world.Org.AnotherResponder());
        var id = scenario.SessionId.ToByteArray(bigEndian: true);

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(await CodeOf(intruder.Connection.Current.InvokeAsync(ResponderHubMethods.Close, id)), Is.EqualTo(ErrorCodes.NoSuchSession));
            Assert.That(await CodeOf(intruder.Connection.Current.InvokeAsync(ResponderHubMethods.Acknowledge, id, 0UL)), Is.EqualTo(ErrorCodes.NoSuchSession));
            Assert.That(await CodeOf(intruder.Connection.Current.InvokeAsync(ResponderHubMethods.Answer, id, new byte[364])), Is.EqualTo(ErrorCodes.NoSuchSession));
            Assert.That(await CodeOf(intruder.Connection.Current.InvokeAsync<TakenSession?>(ResponderHubMethods.Take, id)), Is.EqualTo(ErrorCodes.NotAvailable));
            Assert.That(await CodeOf(intruder.Connection.Current.InvokeAsync<ResumeSessionResult>(ResponderHubMethods.ResumeSession, new ResumeSessionRequest { SessionId = id })), Is.EqualTo(ErrorCodes.ResumeRefused));
        });

        // The session it tried to touch is unharmed.
        await scenario.Hub.InvokeAsync<SendResult>(SeekerHubMethods.Send, scenario.Channel.SealText("still here"));
        Assert.That(await scenario.ResponderInbox.WaitForAsync(1, "text after the intrusion"), Is.EqualTo(new[] { "still here" }));
    }

    [Test]
    public async Task AcknowledgingEnvelopesThatCannotExistIsRefused()
    {
        await using var scenario = await ManualSeeker.ConnectAsync(world);

        var code = await CodeOf(scenario.Hub.InvokeAsync(SeekerHubMethods.Acknowledge, 1_000_000UL));

        Assert.That(code, Is.EqualTo(ErrorCodes.BadRequest));
        await scenario.Hub.InvokeAsync<SendResult>(SeekerHubMethods.Send, scenario.Channel.SealText("unharmed"));
        Assert.That(await scenario.ResponderInbox.WaitForAsync(1, "text after the refusal"), Is.EqualTo(new[] { "unharmed" }));
    }

    [TestCase(0UL)]
    [TestCase(5UL)]
    public async Task AcknowledgingWhatThePeerNeverSentIsRefused(ulong through)
    {
        await using var scenario = await ManualSeeker.ConnectAsync(world);

        // The responder has sent nothing yet: no seq of it can have been received.
        var code = await CodeOf(scenario.Hub.InvokeAsync(SeekerHubMethods.Acknowledge, through));

        Assert.That(code, Is.EqualTo(ErrorCodes.BadRequest));
        await scenario.Hub.InvokeAsync<SendResult>(SeekerHubMethods.Send, scenario.Channel.SealText("unharmed")).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.That(await scenario.ResponderInbox.WaitForAsync(1, "text after the refusal"), Is.EqualTo(new[] { "unharmed" }));
    }

    [Test]
    public async Task OversizedFrameClosesOnlyThatConnection()
    {
        await using var scenario = await ManualSeeker.ConnectAsync(world);
        await using var flooder = Raw(Routes.SeekerHub);
        await flooder.StartAsync();
        var closed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        flooder.Closed += _ =>
        {
            closed.TrySetResult();
            return Task.CompletedTask;
        };

        _ = flooder.SendAsync(SeekerHubMethods.Send, new byte[64 * 1024]);
        await closed.Task.WaitAsync(TimeSpan.FromSeconds(10));

        await scenario.Hub.InvokeAsync<SendResult>(SeekerHubMethods.Send, scenario.Channel.SealText("unaffected"));
        Assert.That(await scenario.ResponderInbox.WaitForAsync(1, "text on the other session"), Is.EqualTo(new[] { "unaffected" }));
    }

    private HubConnection Raw(string path, string? token = null, int node = 0) =>
        new HubConnectionBuilder()
            .WithUrl(new Uri(world.Nodes[node].BaseAddress, path), HttpTransportType.WebSockets, o =>
            {
                o.SkipNegotiation = true;
                if (token is not null)
                {
                    o.AccessTokenProvider = () => Task.FromResult<string?>(token);
                }
            })
            .AddMessagePackProtocol()
            .Build();

    /// <summary>The error code of a refused call, or "accepted".</summary>
    internal static Task<string> CodeOf(Task call) => RawHub.CodeOfAsync(call);

    private async Task<(HttpStatusCode Status, string Body)> SignInAsync(ResponderCredentials credentials, TrustLineNode? node = null)
    {
        node ??= world.Nodes[0];
        var challenge = await ChallengeAsync(node);
        using var response = await node.Http.PostAsJsonAsync(Routes.SignIn, Request(credentials, challenge, ResponderSignIn.Sign(credentials.SigningKey, challenge)));
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    private async Task AssertSignInRefusedAsync(ResponderCredentials credentials, HttpStatusCode status, string code, TrustLineNode? node = null)
    {
        node ??= world.Nodes[0];
        var challenge = await ChallengeAsync(node);
        using var response = await node.Http.PostAsJsonAsync(Routes.SignIn, Request(credentials, challenge, ResponderSignIn.Sign(credentials.SigningKey, challenge)));
        await AssertErrorAsync(response, status, code);
    }

    private static async Task<byte[]> ChallengeAsync(TrustLineNode node)
    {
        using var response = await node.Http.PostAsync(Routes.Challenge, null);
        return Convert.FromBase64String((await response.Content.ReadFromJsonAsync<ChallengeResponse>())!.Challenge);
    }

    private static SignInRequest Request(ResponderCredentials credentials, byte[] challenge, byte[] signature) => new()
    {
        IssuerCertificate = PublicText.Certificate(credentials.Issuer),
        ResponderCertificate = PublicText.Certificate(credentials.Responder),
        Challenge = Convert.ToBase64String(challenge),
        Signature = Convert.ToBase64String(signature),
    };

    private static async Task AssertErrorAsync(HttpResponseMessage response, HttpStatusCode status, string code)
    {
        var error = await response.Content.ReadFromJsonAsync<ErrorResponse>();
        Assert.Multiple(() =>
        {
            Assert.That(response.StatusCode, Is.EqualTo(status));
            Assert.That(error!.Code, Is.EqualTo(code));
            Assert.That(error.Message, Is.Not.Empty);
        });
    }
}

/// <summary>A seeker driven by hand over a raw hub connection (to send crafted envelopes), with a real responder.</summary>
internal sealed class ManualSeeker : IAsyncDisposable
{
    private ManualSeeker(HubConnection hub, SecureChannel channel, Guid sessionId, Inbox<string> responderInbox, ResponderClient responder, ResponderSession session)
    {
        Responder = responder;
        Session = session;
        Hub = hub;
        Channel = channel;
        SessionId = sessionId;
        ResponderInbox = responderInbox;
    }

    /// <summary>The real responder's console that holds this session.</summary>
    public ResponderClient Responder { get; }

    /// <summary>This session as the real responder holds it.</summary>
    public ResponderSession Session { get; }

    public HubConnection Hub { get; }

    public SecureChannel Channel { get; }

    public Guid SessionId { get; }

    public Inbox<string> ResponderInbox { get; }

    /// <summary>The resume token the open returned.</summary>
    public byte[] ResumeToken { get; private init; } = [];

    public static async Task<ManualSeeker> ConnectAsync(World world)
    {
        var hub = new HubConnectionBuilder()
            .WithUrl(new Uri(world.Nodes[0].BaseAddress, Routes.SeekerHub), HttpTransportType.WebSockets, o => o.SkipNegotiation = true)
            .AddMessagePackProtocol()
            .Build();
        var answered = new TaskCompletionSource<byte[]>(TaskCreationOptions.RunContinuationsAsynchronously);
        hub.On<byte[]>(nameof(ISeekerClient.Answered), msg2 => answered.TrySetResult(msg2));
        await hub.StartAsync().WaitAsync(TimeSpan.FromSeconds(10));
        using var handshake = SeekerHandshake.Start(world.Org.Pin);
        var opened = await hub.InvokeAsync<OpenSessionResult>(SeekerHubMethods.OpenSession, new OpenSessionRequest { Msg1 = handshake.Msg1.ToArray(), Language = "nl" });
        var responder = await world.ResponderAsync();
        var session = await responder.TakeAsync(handshake.SessionGuid.ToByteArray(bigEndian: true));
        var inbox = new Inbox<string>();
        session.MessageReceived += inbox.Add;
        var result = handshake.Complete(await answered.Task.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.That(result.Succeeded, Is.True);
        var channel = result.Channel!;
        await hub.InvokeAsync<SendResult>(SeekerHubMethods.Send, channel.SealHello());
        return new ManualSeeker(hub, channel, handshake.SessionGuid, inbox, responder, session) { ResumeToken = opened.ResumeToken };
    }

    public async ValueTask DisposeAsync()
    {
        await Hub.DisposeAsync();
        Channel.Dispose();
    }
}
