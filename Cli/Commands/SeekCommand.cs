using System.CommandLine;
using TrustLine.Client;
using TrustLine.Protocol.Contracts;
using TrustLine.Protocol.Crypto;

namespace TrustLine.Cli.Commands;

/// <summary><c>trustline seek</c>: a help-seeker's chat in the terminal.</summary>
internal static class SeekCommand
{
    public static Command Create()
    {
        var server = new Option<string>("--server") { Description = "The TrustLine server, e.g. http://127.0.0.1:5080.", Required = true };
        var org = new Option<string>("--org") { Description = "The organisation id (32 hex).", Required = true };
        var pin = new Option<string>("--pin") { Description = "The organisation file with the pinned roots (not needed for the demo organisation)." };
        var language = new Option<string>("--language") { Description = "Language.", DefaultValueFactory = _ => "nl" };
        var topic = new Option<string>("--topic") { Description = "Topic.", DefaultValueFactory = _ => "" };
        var urgent = new Option<bool>("--urgent") { Description = "Ask to be answered first." };
        var partners = new Option<string[]>("--partner")
        {
            Description = "Organisation file of a partner your counsellor may transfer you to (repeat for several); without it such a transfer is declined.",
            AllowMultipleArgumentsPerToken = true,
        };
        var command = new Command("seek", "Open an anonymous, end-to-end encrypted chat with an organisation.")
        {
            server, org, pin, language, topic, urgent, partners,
        };
        command.SetAction(async (result, cancellationToken) =>
        {
            var (name, organisationPin) = Pins.Resolve(result.GetValue(org)!, result.GetValue(pin));
            KnownOrganisation[] targets = [.. (result.GetValue(partners) ?? []).Select(file => OrganisationFile.Load(file)).Select(o => new KnownOrganisation(o.Name, o.ToPin()))];
            await using var client = new SeekerClient(Shell.ServerUri(result.GetValue(server)!), organisationPin) { OrganisationName = name, TransferTargets = targets };
            var ended = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            client.QueueChanged += q => Shell.Say("yellow", $"[waiting] You are number {q.Position} in the queue ({q.Waiting} waiting). {Wait(q)}");
            client.MessageReceived += text => Shell.Say("cyan", $"counsellor: {text}");
            client.TransferProposed += offer => Shell.Say("yellow",
                $"[transfer] Your counsellor proposes to hand this chat to {(offer.SameOrganisation ? "a colleague at " : "")}{offer.Target.Name} (verified by your pinned keys). " +
                "Nothing of this chat goes along. Accept? Type y or n.");
            client.TransferDeclinedAutomatically += _ => Shell.Say("yellow",
                "[transfer] Your counsellor proposed another organisation, but you have no pinned keys for it, so it was declined. The chat goes on.");
            client.Transferred += target =>
            {
                name = target.Name;
                Shell.Say("yellow", $"[transferred] This chat has ended; you now wait for a counsellor of {target.Name}, ahead of people who came later.");
            };
            client.StateChanged += state =>
            {
                switch (state)
                {
                    case SeekerState.Connected:
                        Shell.Say("green", $"[connected] You are talking with a verified counsellor of {name} (counsellor key {client.ResponderFingerprint}). Type a message and press Enter; /quit ends the chat.");
                        break;
                    case SeekerState.Reconnecting:
                        Shell.Say("yellow", "[reconnecting] The connection dropped; coming back. Nothing you wrote is lost.");
                        break;
                    case SeekerState.Ended:
                        Shell.Say("red", $"[ended] {Describe(client.EndReason)}");
                        ended.TrySetResult();
                        break;
                }
            };

            Shell.Say($"Connecting to {name}…");
            // The server may ask for an admission puzzle when it is under pressure (PROTOCOL.md §9); 0 means solving began.
            var checking = new SyncProgress(tried =>
            {
                if (tried == 0)
                {
                    Shell.Say("yellow", "Checking your connection…");
                }
            });
            try
            {
                var place = await client.OpenAsync(result.GetValue(language)!, result.GetValue(topic)!, result.GetValue(urgent), checking, cancellationToken);
                Shell.Say("yellow", $"[waiting] You are number {place.Position} in the queue ({place.Waiting} waiting). {Wait(place)}");
                if (Hold(place) is { } hold)
                {
                    Shell.Say("yellow", $"[waiting] {hold}");
                }
            }
            catch (TrustLineException e) when (e.Code == ErrorCodes.UnknownOrganisation)
            {
                throw new CliException("This server does not serve that organisation.", ExitCodes.Refused);
            }
            catch (Exception e) when (e is HttpRequestException or System.Net.WebSockets.WebSocketException or IOException)
            {
                throw new CliException($"The server {result.GetValue(server)} cannot be reached.", ExitCodes.Unreachable);
            }

            await Chat.LoopAsync(async line =>
            {
                if (line == "/quit")
                {
                    try
                    {
                        await client.CloseAsync(cancellationToken);
                    }
                    catch (Exception e) when (e is TrustLineException or InvalidOperationException or IOException)
                    {
                        // Offline for good or already gone: the server's timers end the chat as well.
                        Shell.Say("yellow", "The server could not be told right now; the chat ends by itself shortly.");
                    }

                    return false;
                }

                if (client.State == SeekerState.Ended)
                {
                    return false;
                }

                if (client.PendingTransfer is not null && line is "y" or "n")
                {
                    try
                    {
                        if (line == "y")
                        {
                            await client.AcceptTransferAsync(cancellationToken);
                        }
                        else
                        {
                            await client.DeclineTransferAsync(cancellationToken);
                            Shell.Say("yellow", "[transfer] Declined; the chat goes on.");
                        }
                    }
                    catch (TrustLineException e)
                    {
                        Shell.Say("yellow", $"[transfer] It could not be done: {e.Message} The chat goes on.");
                    }

                    return true;
                }

                if (client.State != SeekerState.Connected)
                {
                    Shell.Say("yellow", "Please wait: no counsellor is connected yet.");
                    return true;
                }

                if (Chat.TooLong(line) is { } tooLong)
                {
                    Shell.Say("yellow", tooLong);
                    return true;
                }

                try
                {
                    await client.SendTextAsync(line, cancellationToken);
                }
                catch (InvalidOperationException)
                {
                    // The chat ended while this line was on its way; the end itself is shown by StateChanged.
                    return false;
                }

                return true;
            }, ended.Task, cancellationToken);
            return client.EndReason is EndReasons.SeekerClosed or EndReasons.ResponderClosed or SessionEndReasons.PeerClosed
                ? ExitCodes.Ok
                : client.State == SeekerState.Ended ? ExitCodes.Refused : ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>The likely wait in plain words: a range of minutes, or an honest "cannot say".</summary>
    public static string Wait(QueueStatus status)
    {
        if (status.WaitLowSeconds < 0 || status.WaitHighSeconds < 0)
        {
            return "We cannot estimate the wait right now.";
        }

        var low = (int)Math.Max(1, Math.Floor(status.WaitLowSeconds / 60.0));
        var high = (int)Math.Max(low + 1, Math.Ceiling(status.WaitHighSeconds / 60.0));
        return $"The wait is likely about {low}–{high} minutes.";
    }

    /// <summary>How long the place is kept while the connection is lost, said before it happens; null when the server does not say.</summary>
    public static string? Hold(QueueStatus status) => status.HoldSeconds > 0
        ? $"If your connection drops (a phone that switches apps), your place is kept for {Minutes(status.HoldSeconds)}."
        : null;

    private static string Minutes(int seconds)
    {
        var minutes = Math.Max(1, (int)Math.Round(seconds / 60.0));
        return minutes == 1 ? "1 minute" : $"{minutes} minutes";
    }

    public static string Describe(string? reason) => reason switch
    {
        EndReasons.QueueHoldExpired => "You were away longer than the queue keeps a place, so your place has ended. Please start a new chat.",
        EndReasons.SeekerClosed => "You ended the chat. Nothing of it remains on the server.",
        EndReasons.SeekerLeftQueue => "You left the queue.",
        EndReasons.ResponderClosed or SessionEndReasons.PeerClosed => "The counsellor ended the chat. Nothing of it remains on the server.",
        EndReasons.ResponderAbandoned => "The counsellor's connection was lost for too long.",
        EndReasons.Idle => "The chat ended after a long silence.",
        EndReasons.MaxLifetime => "The chat reached its maximum length.",
        EndReasons.QueueTimeout => "No counsellor became free in time, so your place in the line has ended. Please try again later.",
        EndReasons.SeekerAbandoned => "Your connection was away for too long, so your place has ended. Please start a new chat.",
        SessionEndReasons.MessagesMissing => "Messages went missing on the way, so the chat was ended to be safe. Please start a new one.",
        SessionEndReasons.ConnectionLost => "The connection could not be restored.",
        SessionEndReasons.ResumeRefused => "The chat ended while your connection was away.",
        SessionEndReasons.SendRefused => "The server could not take your message, so the chat was ended. Please start a new one.",
        { } r when r.StartsWith(SessionEndReasons.HandshakeFailed + ":", StringComparison.Ordinal) =>
            $"The other side could not prove it belongs to the organisation ({r[(SessionEndReasons.HandshakeFailed.Length + 1)..]}); the chat was stopped before anything was sent.",
        EndReasons.Transferred => "This chat was handed over.",
        EndReasons.StoreLost => "The service lost this chat when its storage restarted. Messages not yet marked delivered may not have arrived; please start a new chat.",
        _ => $"The chat ended ({reason}).",
    };
}

/// <summary>Organisation pins the command knows: a given organisation file, or the built-in demo.</summary>
internal static class Pins
{
    public const string DemoOrgId = "11111111111111111111111111111111";

    // RFC 8032 §7.1 TEST 1 public key: the demo organisation's root. A public test key: insecure by design.
    public const string DemoRoot = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

    public const string DemoName = "the demo organisation (INSECURE test keys)";

    public static (string Name, OrganisationPin Pin) Resolve(string orgId, string? pinFile)
    {
        if (!PublicText.TryParseOrgId(orgId, out var id))
        {
            throw new CliException($"'{orgId}' is not an organisation id (32 hex characters).");
        }

        if (pinFile is not null)
        {
            var organisation = OrganisationFile.Load(pinFile);
            if (!string.Equals(organisation.Id, orgId, StringComparison.OrdinalIgnoreCase))
            {
                throw new CliException($"{pinFile} is for organisation {organisation.Id}, not {orgId}.");
            }

            return (organisation.Name, organisation.ToPin());
        }

        if (string.Equals(orgId, DemoOrgId, StringComparison.OrdinalIgnoreCase))
        {
            return (DemoName, new OrganisationPin(id, [Convert.FromHexString(DemoRoot)]));
        }

        throw new CliException($"No pinned keys for organisation {orgId}: give its organisation file with --pin (never trust keys sent by the server).");
    }
}

/// <summary>Reports progress on the caller's thread (<see cref="Progress{T}"/> would post it to the pool, out of order).</summary>
internal sealed class SyncProgress(Action<long> report) : IProgress<long>
{
    public void Report(long value) => report(value);
}

/// <summary>Reads the user's lines until they quit, standard input ends, or the session ends.</summary>
internal static class Chat
{
    /// <summary>A sentence refusing a line too long for one envelope (PROTOCOL.md §3), or null when it fits.</summary>
    public static string? TooLong(string line)
    {
        var size = System.Text.Encoding.UTF8.GetByteCount(line);
        return size > Wire.MaxBodySize
            ? $"That message is too long to send ({size} bytes; at most {Wire.MaxBodySize}); please split it into shorter ones."
            : null;
    }

    public static async Task LoopAsync(Func<string, Task<bool>> onLine, Task ended, CancellationToken cancellationToken)
    {
        while (!ended.IsCompleted)
        {
            // Console.In reads synchronously even through ReadLineAsync: read on the pool so an end is noticed.
            var read = Task.Run(Console.In.ReadLine, cancellationToken);
            var first = await Task.WhenAny(read, ended);
            if (first == ended)
            {
                return;
            }

            var line = await read;
            if (line is null)
            {
                // End of input (a script): wait for the session to end rather than cutting it.
                await ended.WaitAsync(cancellationToken);
                return;
            }

            if (line.Length > 0 && !await onLine(line.Trim()))
            {
                return;
            }
        }
    }
}
