using System.CommandLine;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;
using TrustLine.Protocol.Crypto;

namespace TrustLine.Cli.Commands;

/// <summary><c>trustline org init | issuer | certify</c>: what an organisation admin does, on the admin machine.</summary>
internal static class OrgCommands
{
    private const string RootActive = "root-active.key";
    private const string RootBackup = "root-backup.key";

    public static Command Create()
    {
        var org = new Command("org", "Set up an organisation: roots, issuer, responder certificates.");
        org.Add(Init());
        org.Add(Issuer());
        org.Add(Certify());
        return org;
    }

    private static Command Init()
    {
        var directory = new Option<string>("--dir") { Description = "Folder for the organisation's files (created).", Required = true };
        var name = new Option<string>("--name") { Description = "The organisation's name as apps show it.", Required = true };
        var languages = new Option<string>("--languages") { Description = "Languages, comma-separated.", DefaultValueFactory = _ => "nl,en" };
        var topics = new Option<string>("--topics") { Description = "Topics, comma-separated.", DefaultValueFactory = _ => "" };
        var command = new Command("init", "Create an organisation: its id and two roots (active and backup) in passphrase-protected key files.")
        {
            directory, name, languages, topics,
        };
        command.SetAction(result =>
        {
            var dir = result.GetValue(directory)!;
            if (Directory.Exists(dir) && Directory.EnumerateFileSystemEntries(dir).Any())
            {
                throw new CliException($"'{dir}' is not empty; choose a new folder for the organisation.");
            }

            var passphrase = Shell.Passphrase("Passphrase for the root key files", confirm: true);
            var orgId = RandomNumberGenerator.GetBytes(16);
            var active = KeyFile.Create(KeyKind.Root, passphrase, out var activeKey);
            var backup = KeyFile.Create(KeyKind.Root, passphrase, out var backupKey);
            using (activeKey)
            using (backupKey)
            {
                var organisation = new OrganisationFile(PublicText.OrgId(orgId), result.GetValue(name)!,
                    [PublicText.Key(Files.PublicOf(activeKey)), PublicText.Key(Files.PublicOf(backupKey))],
                    Split(result.GetValue(languages)), Split(result.GetValue(topics)));
                if (organisation.Languages.Length == 0)
                {
                    throw new CliException("Give at least one language with --languages.");
                }

                Files.Write(Path.Combine(dir, RootActive), active, secret: true);
                Files.Write(Path.Combine(dir, RootBackup), backup, secret: true);
                Files.Write(Path.Combine(dir, OrganisationFile.FileName), organisation.ToJson());

                Shell.Say("green", $"Organisation '{organisation.Name}' created in {dir}.");
                Shell.Say($"Organisation id: {organisation.Id}");
                Shell.Say($"Root fingerprints: {string.Join(", ", organisation.Roots.Select(r => Certificate.Fingerprint(Convert.FromHexString(r))))}");
                Shell.Say("");
                Shell.Say("Server configuration (appsettings.json), for every node:");
                Shell.Say(ServerSnippet(organisation));
                Shell.Say("");
                Shell.Say($"The pin apps embed is {Path.Combine(dir, OrganisationFile.FileName)} (id and both roots).");
                Shell.Say("Keep both root key files offline, apart, and never on a server. Next: trustline org issuer.");
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command Issuer()
    {
        var directory = new Option<string>("--dir") { Description = "The organisation's folder (from org init).", Required = true };
        var root = new Option<string>("--root-key") { Description = "Root key file to sign with (default: the active root in --dir)." };
        var days = new Option<int>("--days") { Description = "Validity in days (at most 90).", DefaultValueFactory = _ => 90 };
        var command = new Command("issuer", "Create an issuer key and certify it with a root (writes issuer.key and issuer.cert).") { directory, root, days };
        command.SetAction(result =>
        {
            var dir = result.GetValue(directory)!;
            var organisation = OrganisationFile.Load(Path.Combine(dir, OrganisationFile.FileName));
            var lifetime = result.GetValue(days);
            if (lifetime is < 1 or > 90)
            {
                throw new CliException("An issuer certificate lasts 1 to 90 days.");
            }

            var rootPath = result.GetValue(root) ?? Path.Combine(dir, RootActive);
            using var rootKey = Files.OpenKey(rootPath, KeyKind.Root, Shell.Passphrase($"Passphrase for {Path.GetFileName(rootPath)}"));
            if (!organisation.Roots.Contains(PublicText.Key(Files.PublicOf(rootKey))))
            {
                throw new CliException($"{Path.GetFileName(rootPath)} is not a root of organisation {organisation.Id}.");
            }

            var passphrase = Shell.Passphrase("Passphrase for the new issuer key file", confirm: true);
            var text = KeyFile.Create(KeyKind.Issuer, passphrase, out var issuerKey);
            using (issuerKey)
            {
                var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
                var certificate = Certificate.Issue(rootKey, CertificateRole.Issuer, Convert.FromHexString(organisation.Id), Files.PublicOf(issuerKey), now - 60, now + (lifetime * 86400L) - 60);
                Files.Write(Path.Combine(dir, "issuer.key"), text, secret: true);
                Files.Write(Path.Combine(dir, "issuer.cert"), PublicText.Certificate(certificate) + "\n");
                Shell.Say("green", $"Issuer created: {Path.Combine(dir, "issuer.key")} and issuer.cert, valid until {certificate.ValidUntil:yyyy-MM-dd HH:mm} UTC.");
                Shell.Say("Next: each counsellor runs 'trustline responder keygen' and sends you the .pub file.");
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command Certify()
    {
        var directory = new Option<string>("--dir") { Description = "The organisation's folder (with issuer.key and issuer.cert).", Required = true };
        var publicKey = new Option<string>("--responder-pub") { Description = "The counsellor's .pub file (from responder keygen).", Required = true };
        var fingerprint = new Option<string>("--fingerprint") { Description = "The fingerprint the counsellor read to you from their screen (asked if not given)." };
        var days = new Option<int>("--days") { Description = "Validity in days (at most 14).", DefaultValueFactory = _ => 14 };
        var output = new Option<string>("--out") { Description = "Where to write the certificate file for the counsellor.", Required = true };
        var command = new Command("certify", "Certify a counsellor's responder key, after comparing its fingerprint out of band.")
        {
            directory, publicKey, fingerprint, days, output,
        };
        command.SetAction(result =>
        {
            var dir = result.GetValue(directory)!;
            var organisation = OrganisationFile.Load(Path.Combine(dir, OrganisationFile.FileName));
            if (!PublicText.TryParseKey(Files.Read(result.GetValue(publicKey)!, "public key file").Trim(), out var responderPublic))
            {
                throw new CliException($"'{result.GetValue(publicKey)}' does not hold a responder public key (64 hex characters).");
            }

            var typed = result.GetValue(fingerprint);
            if (typed is null)
            {
                if (Console.IsInputRedirected)
                {
                    Console.Error.Write("Fingerprint read by the counsellor: ");
                    typed = Console.In.ReadLine() ?? "";
                    Console.Error.WriteLine();
                }
                else
                {
                    typed = Shell.Out.Prompt(new TextPrompt<string>("Fingerprint the counsellor reads from their screen:"));
                }
            }

            // The out-of-band comparison is what stops a relay from getting its own key certified (PROTOCOL.md §1).
            if (!Certificate.FingerprintMatches(responderPublic, typed))
            {
                throw new CliException("The fingerprint does not match this public key: do not certify it; ask the counsellor to send the .pub file again.", ExitCodes.Refused);
            }

            var lifetime = result.GetValue(days);
            if (lifetime is < 1 or > 14)
            {
                throw new CliException("A responder certificate lasts 1 to 14 days.");
            }

            if (!PublicText.TryParseCertificate(Files.Read(Path.Combine(dir, "issuer.cert"), "issuer certificate").Trim(), out var issuerCertificate))
            {
                throw new CliException("issuer.cert is not a certificate; run 'trustline org issuer' again.");
            }

            var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
            if (issuerCertificate!.NotAfter <= now)
            {
                throw new CliException("The issuer certificate has expired; create a new issuer with 'trustline org issuer'.", ExitCodes.Refused);
            }

            using var issuerKey = Files.OpenKey(Path.Combine(dir, "issuer.key"), KeyKind.Issuer, Shell.Passphrase("Passphrase for issuer.key"));
            var notAfter = Math.Min(now + (lifetime * 86400L) - 60, issuerCertificate.NotAfter);
            var certificate = Certificate.Issue(issuerKey, CertificateRole.Responder, Convert.FromHexString(organisation.Id), responderPublic, now - 60, notAfter);
            Files.Write(result.GetValue(output)!, CertificateBundle.Format(issuerCertificate, certificate));
            Shell.Say("green", $"Certified {Certificate.Fingerprint(responderPublic)} until {DateTimeOffset.FromUnixTimeSeconds(notAfter):yyyy-MM-dd HH:mm} UTC: {result.GetValue(output)}.");
            Shell.Say("Give that file to the counsellor; it is public. They sign in with 'trustline respond'.");
            return ExitCodes.Ok;
        });
        return command;
    }

    internal static string ServerSnippet(OrganisationFile organisation)
    {
        var slug = new string([.. organisation.Name.ToLowerInvariant().Where(char.IsAsciiLetterOrDigit)]);
        var json = new JsonObject
        {
            ["Organisations"] = new JsonObject
            {
                [slug.Length > 0 ? slug : "org"] = new JsonObject
                {
                    ["Id"] = organisation.Id,
                    ["Name"] = organisation.Name,
                    ["Languages"] = new JsonArray([.. organisation.Languages.Select(l => JsonValue.Create(l))]),
                    ["Topics"] = new JsonArray([.. organisation.Topics.Select(t => JsonValue.Create(t))]),
                    ["Roots"] = new JsonArray([.. organisation.Roots.Select(r => JsonValue.Create(r))]),
                },
            },
        };
        return json.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    private static string[] Split(string? list) =>
        [.. (list ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(s => s.ToLowerInvariant())];
}

/// <summary><c>trustline responder keygen</c>: run by a counsellor, on their own machine.</summary>
internal static class ResponderCommands
{
    public static Command Create()
    {
        var responder = new Command("responder", "Counsellor key management.");
        var output = new Option<string>("--out") { Description = "The key file to create (a .pub file is written beside it).", Required = true };
        var keygen = new Command("keygen", "Create this device's responder key; it never leaves the device.") { output };
        keygen.SetAction(result =>
        {
            var path = result.GetValue(output)!;
            var passphrase = Shell.Passphrase("Passphrase for the new responder key file", confirm: true);
            var text = KeyFile.Create(KeyKind.Responder, passphrase, out var key);
            using (key)
            {
                var publicKey = Files.PublicOf(key);
                var publicPath = Path.ChangeExtension(path, ".pub");
                Files.Write(path, text, secret: true);
                Files.Write(publicPath, PublicText.Key(publicKey) + "\n");
                Shell.Say("green", $"Responder key created: {path}");
                Shell.Say($"Fingerprint: {Certificate.Fingerprint(publicKey)}");
                Shell.Say($"Send {publicPath} to your organisation's admin, then read them this fingerprint (by phone or in person).");
            }

            return ExitCodes.Ok;
        });
        responder.Add(keygen);
        return responder;
    }
}
