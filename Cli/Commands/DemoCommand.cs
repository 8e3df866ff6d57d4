using System.CommandLine;
using NSec.Cryptography;
using Spectre.Console;
using TrustLine.Client;
using TrustLine.Protocol.Crypto;

namespace TrustLine.Cli.Commands;

/// <summary>
/// <c>trustline demo</c>: a seeker and a responder of the Development demo organisation talk through a
/// running server; the output shows what each end saw and what the relay saw (headers and sizes only).
/// </summary>
internal static class DemoCommand
{
    // RFC 8032 §7.1 TEST 2 and TEST 3 secret keys: the demo issuer and responder. Public test vectors, insecure by design.
    private const string DemoIssuerSeed = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb";
    private const string DemoResponderSeed = "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7";
    private const string DemoRootSeed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";

    private static readonly (bool FromSeeker, string Text)[] Script =
    [
        (true, "Hoi. Ik weet niet of ik dit mag vragen."),
        (false, "Hoi, fijn dat je schrijft. Alles mag hier, en niemand anders kan dit lezen."),
        (true, "Mijn werkgever houdt mijn paspoort vast."),
        (false, "Dat mag hij niet. Zullen we samen kijken wat je veilig kunt doen?"),
    ];

    public static Command Create()
    {
        var server = new Option<string>("--server") { Description = "A server started with 'dotnet run --project Server' (Development).", DefaultValueFactory = _ => "http://127.0.0.1:5080" };
        var command = new Command("demo", "Run a short scripted conversation through a server and show what each side and the relay saw.") { server };
        command.SetAction(async (result, cancellationToken) =>
        {
            var uri = Shell.ServerUri(result.GetValue(server)!);
            Shell.Say("yellow", "Demo organisation: its keys are public RFC 8032 test vectors. INSECURE; for trying TrustLine only.");
            using var credentials = DemoCredentials();
            var pin = Pins.Resolve(Pins.DemoOrgId, null).Pin;
            var rows = new List<(string Seeker, string Relay, string Responder)>();
            var gate = new Lock();
            void Row(string seeker, string relay, string responder)
            {
                lock (gate)
                {
                    rows.Add((seeker, relay, responder));
                }
            }

            await using var seeker = new SeekerClient(uri, pin);
            var seekerInbox = new Queue<string>();
            var connected = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            seeker.StateChanged += s =>
            {
                if (s == SeekerState.Connected)
                {
                    connected.TrySetResult();
                }
            };
            seeker.EnvelopeObserved += (header, sent) =>
                Row("", $"{(header.Direction == Direction.ClientToServer ? "seeker → responder" : "responder → seeker")} seq {header.Sequence}, {header.Size} bytes", "");
            var received = new SemaphoreSlim(0);
            seeker.MessageReceived += text =>
            {
                Row($"received: {text}", "", "");
                received.Release();
            };

            try
            {
                var place = await seeker.OpenAsync("nl", "safety", cancellationToken: cancellationToken);
                Row($"waiting, number {place.Position} in the queue", "msg1: 67 bytes (org id, session id, ephemeral key)", "");
                await using var responder = await ResponderClient.SignInAsync(uri, credentials, cancellationToken: cancellationToken);
                Row("", "sign-in: certificates + signed challenge → token", "signed in");
                var session = await responder.TakeNextAsync(cancellationToken) ?? throw new CliException("The queue was empty: is another console taking demo sessions?");
                var responderReceived = new SemaphoreSlim(0);
                session.MessageReceived += text =>
                {
                    Row("", "", $"received: {text}");
                    responderReceived.Release();
                };
                Row("", "msg2: 364 bytes (ephemeral key, certificates, signature)", "took the session, answered msg2");
                await connected.Task.WaitAsync(TimeSpan.FromSeconds(15), cancellationToken);
                Row($"verified the counsellor ({seeker.ResponderFingerprint})", "", "");

                foreach (var (fromSeeker, text) in Script)
                {
                    if (fromSeeker)
                    {
                        Row($"sent: {text}", "", "");
                        await seeker.SendTextAsync(text, cancellationToken);
                        await responderReceived.WaitAsync(TimeSpan.FromSeconds(15), cancellationToken);
                    }
                    else
                    {
                        Row("", "", $"sent: {text}");
                        await session.SendTextAsync(text, cancellationToken);
                        await received.WaitAsync(TimeSpan.FromSeconds(15), cancellationToken);
                    }
                }

                await seeker.CloseAsync(cancellationToken);
                Row("closed the chat", "session ended: every key deleted at once", "told: seeker_closed");
            }
            catch (Exception e) when (e is HttpRequestException or System.Net.WebSockets.WebSocketException or IOException)
            {
                throw new CliException($"The server {uri} cannot be reached: start it with 'dotnet run --project Server'.", ExitCodes.Unreachable);
            }
            catch (TrustLineException e) when (e.Code is "unknown_organisation" or "bad_certificate")
            {
                throw new CliException("The server does not serve the demo organisation: start it in Development ('dotnet run --project Server').", ExitCodes.Refused);
            }

            var table = new Table().AddColumn("seeker saw").AddColumn("relay saw (headers and sizes only)").AddColumn("responder saw");
            foreach (var (s, r, p) in rows)
            {
                table.AddRow(Markup.Escape(s), Markup.Escape(r), Markup.Escape(p));
            }

            Shell.Out.Write(table);
            Shell.Say("green", "Demo finished: the relay only ever saw sizes and headers; the text existed only at the two ends.");
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>The demo issuer and responder certificates, made fresh for now from the public test keys.</summary>
    internal static ResponderCredentials DemoCredentials()
    {
        var orgId = Convert.FromHexString(Pins.DemoOrgId);
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        using var root = Key.Import(SignatureAlgorithm.Ed25519, Convert.FromHexString(DemoRootSeed), KeyBlobFormat.RawPrivateKey);
        using var issuer = Key.Import(SignatureAlgorithm.Ed25519, Convert.FromHexString(DemoIssuerSeed), KeyBlobFormat.RawPrivateKey);
        var responder = Key.Import(SignatureAlgorithm.Ed25519, Convert.FromHexString(DemoResponderSeed), KeyBlobFormat.RawPrivateKey);
        var issuerCertificate = Certificate.Issue(root, CertificateRole.Issuer, orgId, Files.PublicOf(issuer), now - 60, now + 86400);
        var responderCertificate = Certificate.Issue(issuer, CertificateRole.Responder, orgId, Files.PublicOf(responder), now - 60, now + 3600);
        return new ResponderCredentials(responder, issuerCertificate, responderCertificate);
    }
}
