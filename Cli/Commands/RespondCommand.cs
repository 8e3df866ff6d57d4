using System.CommandLine;
using NSec.Cryptography;
using TrustLine.Client;
using TrustLine.Protocol.Contracts;
using TrustLine.Protocol.Crypto;

namespace TrustLine.Cli.Commands;

/// <summary><c>trustline respond</c>: a counsellor's console with several sessions at once.</summary>
internal static class RespondCommand
{
    private const string Help = "Commands: /queue, /take [n], /sessions, /switch n, /transfer colleague|<org id>, /close [n], /available, /away, /accept, /decline, /status, /quit; anything else goes to the current session.";

    public static Command Create()
    {
        var server = new Option<string>("--server") { Description = "The TrustLine server.", Required = true };
        var keyFile = new Option<string>("--key") { Description = "This device's responder key file." };
        var certificates = new Option<string>("--cert") { Description = "The certificate file from the admin (default: the key file's name with .cert)." };
        var demo = new Option<bool>("--demo") { Description = "Answer for the Development demo organisation with its public test keys (INSECURE; for trying only)." };
        var command = new Command("respond", "Sign in as a counsellor and answer sessions from the queue.") { server, keyFile, certificates, demo };
        command.SetAction(async (result, cancellationToken) =>
        {
            if (result.GetValue(demo))
            {
                Shell.Say("yellow", "Answering for the demo organisation with public test keys: INSECURE, for trying TrustLine only.");
                using var demoCredentials = DemoCommand.DemoCredentials();
                await using var demoConsole = await SignInAsync(Shell.ServerUri(result.GetValue(server)!), demoCredentials, result.GetValue(server)!, cancellationToken);
                return await demoConsole.RunAsync(cancellationToken);
            }

            var keyPath = result.GetValue(keyFile) ?? throw new CliException("Give this device's responder key file with --key (or --demo for the demo organisation).");
            var (issuer, responder) = CertificateBundle.Load(result.GetValue(certificates) ?? Path.ChangeExtension(keyPath, ".cert"));
            var key = Files.OpenKey(keyPath, KeyKind.Responder, Shell.Passphrase($"Passphrase for {Path.GetFileName(keyPath)}"));
            if (!responder.SubjectPublicKey.SequenceEqual(key.PublicKey.Export(KeyBlobFormat.RawPublicKey)))
            {
                key.Dispose();
                throw new CliException("The certificate file certifies another key than this key file's.");
            }

            var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
            if (responder.NotAfter < now || issuer.NotAfter < now)
            {
                key.Dispose();
                throw new CliException("Your certificate has expired; ask your organisation's admin for a new one ('trustline org certify').", ExitCodes.Refused);
            }

            using var credentials = new ResponderCredentials(key, issuer, responder);
            await using var console = await SignInAsync(Shell.ServerUri(result.GetValue(server)!), credentials, result.GetValue(server)!, cancellationToken);
            return await console.RunAsync(cancellationToken);
        });
        return command;
    }

    private static async Task<Console> SignInAsync(Uri server, ResponderCredentials credentials, string shown, CancellationToken cancellationToken)
    {
        try
        {
            var client = await ResponderClient.SignInAsync(server, credentials, cancellationToken: cancellationToken);
            Shell.Say("green", $"Signed in to {shown} as {Certificate.Fingerprint(credentials.Responder.SubjectPublicKey)}. {Help}");
            return new Console(client, credentials.Responder.OrgId.ToArray());
        }
        catch (TrustLineException e)
        {
            throw new CliException($"Sign-in refused: {e.Message} ({e.Code})", ExitCodes.Refused);
        }
        catch (Exception e) when (e is HttpRequestException or System.Net.WebSockets.WebSocketException or IOException or TaskCanceledException)
        {
            throw new CliException($"The server {shown} cannot be reached.", ExitCodes.Unreachable);
        }
    }

    private sealed class Console(ResponderClient client, byte[] ownOrgId) : IAsyncDisposable
    {
        private readonly List<ResponderSession> sessions = [];
        private QueueEntry[] lastQueue = [];
        private ResponderSession? current;

        public async Task<int> RunAsync(CancellationToken cancellationToken)
        {
            client.QueueChanged += queue => Shell.Say("grey", $"[queue] {queue.Waiting} waiting.");
            client.StatusChanged += status => Shell.Say("yellow", $"[{status.ToString().ToLowerInvariant()}]");
            client.Offered += offer => Shell.Say("magenta",
                $"[offer] {offer.Language} {(offer.Topic.Length > 0 ? offer.Topic : "-")}{(offer.Urgent ? " URGENT" : "")}, waiting {offer.WaitingSeconds} s: /accept or /decline within {offer.ExpiresInSeconds} s.");
            client.OfferWithdrawn += (_, reason) => Shell.Say("magenta", $"[offer] {DescribeOfferEnd(reason)}");
            client.AvailabilityChanged += status =>
            {
                if (status.Reason == OfferEndReasons.Lapsed)
                {
                    Shell.Say("yellow", "[away] Offers ran out unanswered, so you were set away; /available to receive offers again.");
                }
            };

            // Every connection starts away; this also tells whether the organisation makes offers, and the capacity.
            ShowStatus(await client.SetAvailabilityAsync(false, cancellationToken));
            await ShowQueueAsync(cancellationToken);
            var quit = new TaskCompletionSource();
            await Chat.LoopAsync(async line =>
            {
                try
                {
                    return await HandleAsync(line, cancellationToken);
                }
                catch (TrustLineException e)
                {
                    Shell.Say("red", $"Refused: {e.Message} ({e.Code})");
                    return true;
                }
                catch (InvalidOperationException)
                {
                    // The session ended while the line was on its way; its end is shown on its own line.
                    Shell.Say("That session has ended; /sessions shows the open ones.");
                    return true;
                }
            }, quit.Task, cancellationToken);
            await EndOpenSessionsAsync(cancellationToken);
            return ExitCodes.Ok;
        }

        /// <summary>Why a session ended, as a counsellor reads it.</summary>
        public static string Describe(string reason) => reason switch
        {
            EndReasons.SeekerClosed or SessionEndReasons.PeerClosed => "the seeker ended the chat.",
            EndReasons.ResponderClosed => "you ended the chat.",
            EndReasons.SeekerLeftQueue => "the seeker left the queue.",
            EndReasons.SeekerAbandoned => "the seeker's connection was lost for too long.",
            EndReasons.ResponderAbandoned => "your connection was lost for too long.",
            EndReasons.Idle => "it ended after a long silence.",
            EndReasons.MaxLifetime => "it reached its maximum length.",
            SessionEndReasons.MessagesMissing => "messages went missing on the way, so it was ended to be safe.",
            SessionEndReasons.BadHello => "the seeker's app sent a malformed hello, so it was ended.",
            SessionEndReasons.ResumeRefused => "it ended while your connection was away.",
            SessionEndReasons.ConnectionLost => "the connection could not be restored.",
            SessionEndReasons.SendRefused => "the server could not take a message, so it was ended.",
            EndReasons.Transferred => "the seeker accepted the transfer; the chat goes on with the other counsellor.",
            _ => $"it ended ({reason}).",
        };

        /// <summary>Why an offer went, as a counsellor reads it.</summary>
        public static string DescribeOfferEnd(string reason) => reason switch
        {
            OfferEndReasons.Lapsed => "the offer ran out; it goes to a colleague.",
            OfferEndReasons.Gone => "the offered seeker was taken by a colleague or left.",
            OfferEndReasons.Away => "the offer was withdrawn as you went away.",
            _ => $"the offer ended ({reason}).",
        };

        public ValueTask DisposeAsync() => client.DisposeAsync();

        private async Task<bool> HandleAsync(string line, CancellationToken cancellationToken)
        {
            var parts = line.Split(' ', 2, StringSplitOptions.RemoveEmptyEntries);
            switch (parts[0])
            {
                case "/quit":
                    return false;
                case "/queue":
                    await ShowQueueAsync(cancellationToken);
                    return true;
                case "/take":
                    ResponderSession? taken;
                    if (parts.Length > 1)
                    {
                        var index = Index(parts[1], lastQueue.Length, "/queue entry");
                        taken = await client.TakeAsync(lastQueue[index].SessionId, cancellationToken);
                    }
                    else
                    {
                        taken = await client.TakeNextAsync(cancellationToken);
                    }

                    if (taken is null)
                    {
                        Shell.Say("Nobody is waiting.");
                        return true;
                    }

                    Track(taken);
                    return true;
                case "/available" or "/away":
                    ShowStatus(await client.SetAvailabilityAsync(parts[0] == "/available", cancellationToken));
                    return true;
                case "/status":
                    ShowStatus(await client.SetAvailabilityAsync(client.Available, cancellationToken));
                    return true;
                case "/accept" or "/decline":
                    if (client.PendingOffer is not { } offer)
                    {
                        Shell.Say("No offer is waiting for an answer.");
                        return true;
                    }

                    if (parts[0] == "/accept")
                    {
                        Track(await client.AcceptOfferAsync(offer.SessionId, cancellationToken));
                    }
                    else
                    {
                        await client.DeclineOfferAsync(offer.SessionId, cancellationToken);
                        Shell.Say("Declined; it goes to a colleague.");
                    }

                    return true;
                case "/sessions":
                    for (var i = 0; i < sessions.Count; i++)
                    {
                        Shell.Say($"{(sessions[i] == current ? "*" : " ")} {i + 1}. {sessions[i].Language} {sessions[i].Topic}{(sessions[i].EndReason is { } r ? $" (ended: {Describe(r)})" : "")}");
                    }

                    return true;
                case "/switch":
                    current = sessions[Index(parts.Length > 1 ? parts[1] : "", sessions.Count, "session")];
                    Shell.Say($"Now writing to session {sessions.IndexOf(current) + 1}.");
                    return true;
                case "/transfer":
                    await TransferAsync(parts.Length > 1 ? parts[1].Trim() : "", cancellationToken);
                    return true;
                case "/close":
                    var closing = parts.Length > 1 ? sessions[Index(parts[1], sessions.Count, "session")] : current;
                    if (closing is null || closing.EndReason is not null)
                    {
                        Shell.Say("No open session to close.");
                        return true;
                    }

                    await closing.CloseAsync(cancellationToken);
                    return true;
                default:
                    if (line.StartsWith('/'))
                    {
                        Shell.Say($"Unknown command {parts[0]}. {Help}");
                    }
                    else if (current is null || current.EndReason is not null)
                    {
                        Shell.Say("No current session: /take one first.");
                    }
                    else if (Chat.TooLong(line) is { } tooLong)
                    {
                        Shell.Say("yellow", tooLong);
                    }
                    else
                    {
                        await current.SendTextAsync(line, cancellationToken);
                    }

                    return true;
            }
        }

        /// <summary>
        /// Proposes to hand the current chat to a colleague (the own organisation's queue) or to a partner organisation
        /// by its id; the seeker's app asks them. Tell the seeker in the chat first.
        /// </summary>
        private async Task TransferAsync(string target, CancellationToken cancellationToken)
        {
            if (current is null || current.EndReason is not null)
            {
                Shell.Say("No current session: /take one first.");
                return;
            }

            byte[] orgId;
            if (target == "colleague")
            {
                orgId = ownOrgId;
            }
            else if (!PublicText.TryParseOrgId(target, out orgId))
            {
                Shell.Say("Give /transfer colleague (your own organisation's queue) or /transfer <org id> (32 hex) of a partner organisation.");
                return;
            }

            await current.TransferAsync(orgId, cancellationToken);
            Shell.Say("yellow", $"[session {sessions.IndexOf(current) + 1}] transfer proposed to {(target == "colleague" ? "a colleague" : target)}; waiting for the seeker's answer.");
        }

        private static void ShowStatus(ResponderStatus status)
        {
            var chats = $"{status.OpenChats} open chat{(status.OpenChats == 1 ? "" : "s")}{(status.Capacity > 0 ? $" of at most {status.Capacity}" : "")}";
            Shell.Say(!status.OffersOn
                ? $"Your organisation does not offer chats: /take them from the queue. {chats}."
                : status.Available
                    ? $"Available: waiting seekers are offered to you. {chats}."
                    : $"Away: no offers (you may still /take). {chats}. /available to receive offers.");
        }

        private async Task ShowQueueAsync(CancellationToken cancellationToken)
        {
            lastQueue = await client.GetQueueAsync(cancellationToken);
            Shell.Say(lastQueue.Length == 0 ? "Nobody is waiting." : $"{lastQueue.Length} waiting:");
            for (var i = 0; i < lastQueue.Length; i++)
            {
                var q = lastQueue[i];
                Shell.Say($"  {i + 1}. {q.Language} {(q.Topic.Length > 0 ? q.Topic : "-")}{(q.Urgent ? " URGENT" : "")}, waiting {q.WaitingSeconds} s");
            }
        }

        /// <summary>On leaving, end every open chat properly, so each seeker is told rather than left waiting.</summary>
        private async Task EndOpenSessionsAsync(CancellationToken cancellationToken)
        {
            var open = sessions.Where(s => s.EndReason is null).ToList();
            if (open.Count == 0)
            {
                return;
            }

            Shell.Say("yellow", $"You have {open.Count} open chat{(open.Count == 1 ? "" : "s")}; ending {(open.Count == 1 ? "it" : "them")} so the seeker{(open.Count == 1 ? " is" : "s are")} told.");
            foreach (var session in open)
            {
                try
                {
                    await session.CloseAsync(cancellationToken);
                }
                catch (Exception e) when (e is TrustLineException or InvalidOperationException or IOException)
                {
                    // The server's timers end it for the seeker as well.
                }
            }
        }

        private void Track(ResponderSession session)
        {
            sessions.Add(session);
            current = session;
            var number = sessions.Count;
            Shell.Say("green", $"[session {number}] taken ({session.Language} {session.Topic}{(session.Urgent ? ", urgent" : "")}); waiting for the seeker's hello.");
            // The HELLO can arrive before the take returns: wait on the task, not the event.
            _ = session.WhenEstablished.ContinueWith(
                done => Shell.Say("green", $"[session {number}] connected{(done.Result.IsReturning ? ": a returning seeker (verified pseudonym)" : ": a new seeker")}."),
                CancellationToken.None, TaskContinuationOptions.OnlyOnRanToCompletion, TaskScheduler.Default);
            session.MessageReceived += text => Shell.Say("cyan", $"[session {number}] seeker: {text}");
            session.Ended += reason => Shell.Say("red", $"[session {number}] ended: {Describe(reason)}");
            session.TransferOutcome += outcome => Shell.Say("yellow", $"[session {number}] " + outcome switch
            {
                TransferOutcomes.Accepted => "the seeker accepted the transfer.",
                TransferOutcomes.Declined => "the seeker declined the transfer; the chat goes on with you.",
                TransferOutcomes.TimedOut => "the seeker did not answer the transfer in time; the chat goes on with you.",
                TransferOutcomes.Failed => "the transfer could not be made (the target is closed or full); the chat goes on with you.",
                _ => $"transfer: {outcome}.",
            });
            session.SeekerConnectionChanged += connected => Shell.Say("yellow", connected
                ? $"[session {number}] the seeker is back."
                : $"[session {number}] the seeker's connection dropped; they may come back in a moment.");
        }

        private static int Index(string text, int count, string what) =>
            int.TryParse(text, out var n) && n >= 1 && n <= count ? n - 1 : throw new TrustLineException("bad_input", $"There is no {what} '{text}'.");
    }
}
