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
        var command = new Command("seek", "Open an anonymous, end-to-end encrypted chat with an organisation.")
        {
            server, org, pin, language, topic, urgent,
        };
        command.SetAction(async (result, cancellationToken) =>
        {
            var (name, organisationPin) = Pins.Resolve(result.GetValue(org)!, result.GetValue(pin));
            await using var client = new SeekerClient(Shell.ServerUri(result.GetValue(server)!), organisationPin);
            var ended = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            client.QueueChanged += q => Shell.Say("yellow", $"[waiting] You are number {q.Position} in the queue ({q.Waiting} waiting).");
            client.MessageReceived += text => Shell.Say("cyan", $"counsellor: {text}");
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
            try
            {
                var place = await client.OpenAsync(result.GetValue(language)!, result.GetValue(topic)!, result.GetValue(urgent), cancellationToken: cancellationToken);
                Shell.Say("yellow", $"[waiting] You are number {place.Position} in the queue ({place.Waiting} waiting).");
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
                    await client.CloseAsync(cancellationToken);
                    return false;
                }

                if (client.State != SeekerState.Connected)
                {
                    Shell.Say("yellow", "Please wait: no counsellor is connected yet.");
                    return true;
                }

                await client.SendTextAsync(line, cancellationToken);
                return true;
            }, ended.Task, cancellationToken);
            return client.EndReason is EndReasons.SeekerClosed or EndReasons.ResponderClosed ? ExitCodes.Ok : client.State == SeekerState.Ended ? ExitCodes.Refused : ExitCodes.Ok;
        });
        return command;
    }

    public static string Describe(string? reason) => reason switch
    {
        EndReasons.SeekerClosed => "You ended the chat. Nothing of it remains on the server.",
        EndReasons.SeekerLeftQueue => "You left the queue.",
        EndReasons.ResponderClosed => "The counsellor ended the chat. Nothing of it remains on the server.",
        EndReasons.ResponderAbandoned => "The counsellor's connection was lost for too long.",
        EndReasons.Idle => "The chat ended after a long silence.",
        EndReasons.MaxLifetime => "The chat reached its maximum length.",
        EndReasons.StoreLost => "The service lost this chat when its storage restarted. Messages not yet marked delivered may not have arrived; please start a new chat.",
        "messages_missing" => "Messages went missing on the way, so the chat was ended to be safe. Please start a new one.",
        "connection_lost" => "The connection could not be restored.",
        { } r when r.StartsWith("handshake_failed", StringComparison.Ordinal) =>
            $"The other side could not prove it belongs to the organisation ({r["handshake_failed:".Length..]}); the chat was stopped before anything was sent.",
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

/// <summary>Reads the user's lines until they quit, standard input ends, or the session ends.</summary>
internal static class Chat
{
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
