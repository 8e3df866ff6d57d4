using System.Text.Json;
using System.Text.RegularExpressions;
using TrustLine.Server.Tests.Infrastructure;

namespace TrustLine.Server.Tests.Cli;

/// <summary>The trustline command as real processes: set up an organisation, then a counsellor and a seeker talk.</summary>
[NonParallelizable]
public sealed partial class TrustLineCommandTests
{
    private const string AdminPass = "admin passphrase";
    private const string CounsellorPass = "counsellor passphrase";
    private string folder = null!;

    [SetUp]
    public void SetUp() => folder = Directory.CreateTempSubdirectory("trustline-cli-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(folder, recursive: true);

    [Test]
    public async Task OrganisationSetUpThenACounsellorAndASeekerTalkThroughARealServer()
    {
        var org = await SetUpOrganisationAsync();
        await using var node = await TrustLineNode.StartAsync(NodeSettings.WithRedis() with { Settings = ServerSettings(org) });

        await using var respond = CliProcess.Start("respond", "--server", node.BaseAddress.ToString(), "--key", Path.Combine(folder, "counsellor.key"));
        await respond.WriteLineAsync(CounsellorPass);
        await respond.WaitForOutputAsync("Signed in");
        await using var seek = CliProcess.Start("seek", "--server", node.BaseAddress.ToString(), "--org", org.Id, "--pin", Path.Combine(folder, "org", "organisation.json"), "--topic", "health");
        await seek.WaitForOutputAsync("[waiting] You are number 1");
        await seek.WaitForOutputAsync("your place is kept for 10 minutes"); // told before it can happen

        await respond.WriteLineAsync("/queue");
        await respond.WaitForOutputAsync("1. nl health");
        await respond.WriteLineAsync("/take");
        await seek.WaitForOutputAsync("[connected] You are talking with a verified counsellor of Test Line");
        await respond.WaitForOutputAsync("[session 1] connected: a new seeker");
        await seek.WriteLineAsync("Hallo, ik wil iets vragen.");
        await respond.WaitForOutputAsync("[session 1] seeker: Hallo, ik wil iets vragen.");
        await respond.WriteLineAsync("Natuurlijk, vertel.");
        await seek.WaitForOutputAsync("counsellor: Natuurlijk, vertel.");
        await seek.WriteLineAsync("/quit");

        Assert.That(await seek.WaitForExitAsync(), Is.Zero, seek.Errors);
        await respond.WaitForOutputAsync("[session 1] ended: the seeker ended the chat.");
        await respond.WriteLineAsync("/quit");
        await Assert.MultipleAsync(async () =>
        {
            Assert.That(await respond.WaitForExitAsync(), Is.Zero, respond.Errors);
            Assert.That(seek.Output, Does.Contain("[ended] You ended the chat."));
        });
    }

    [Test]
    public async Task DemoRunsAScriptedConversationAgainstADevelopmentServer()
    {
        await using var node = await TrustLineNode.StartAsync(NodeSettings.Embedded() with { Environment = "Development" });

        var result = await CliProcess.RunAsync([], "demo", "--server", node.BaseAddress.ToString());

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.Zero, result.Errors);
            Assert.That(result.Output, Does.Contain("INSECURE"));
            Assert.That(result.Output, Does.Contain("seeker → responder seq 0, 299 bytes"));
            Assert.That(result.Output, Does.Contain("received: Mijn werkgever houdt mijn paspoort vast."));
            Assert.That(result.Output, Does.Contain("Demo finished"));
        });
    }

    [Test]
    public async Task DemoCounsellorAndDemoSeekerTalkInTwoTerminals()
    {
        await using var node = await TrustLineNode.StartAsync(NodeSettings.Embedded() with { Environment = "Development" });
        await using var respond = CliProcess.Start("respond", "--server", node.BaseAddress.ToString(), "--demo");
        await respond.WaitForOutputAsync("Signed in");
        await using var seek = CliProcess.Start("seek", "--server", node.BaseAddress.ToString(), "--org", "11111111111111111111111111111111");
        await seek.WaitForOutputAsync("[waiting]");

        await respond.WriteLineAsync("/take");
        await seek.WaitForOutputAsync("[connected]");
        await respond.WriteLineAsync("Welkom.");
        await seek.WaitForOutputAsync("counsellor: Welkom.");
        await respond.WriteLineAsync("/close");

        await seek.WaitForOutputAsync("[ended] The counsellor ended the chat.");
        Assert.That(await seek.WaitForExitAsync(), Is.Zero, seek.Errors);
        Assert.That(seek.Output, Does.Contain("INSECURE"));
    }

    [Test]
    public async Task WrongPassphraseIsOneSentence()
    {
        await InitAsync();

        var result = await CliProcess.RunAsync(["not the passphrase", "new issuer pass"], "org", "issuer", "--dir", Path.Combine(folder, "org"));

        AssertOneSentence(result, "The passphrase is wrong");
    }

    [Test]
    public async Task UnreadableKeyFileIsOneSentence()
    {
        var result = await CliProcess.RunAsync([CounsellorPass], "respond", "--server", "http://127.0.0.1:9", "--key", Path.Combine(folder, "missing.key"), "--cert", Path.Combine(folder, "missing.cert"));

        AssertOneSentence(result, "cannot be read");
    }

    [Test]
    public async Task DamagedKeyFileIsOneSentence()
    {
        await SetUpOrganisationAsync();
        var key = Path.Combine(folder, "counsellor.key");
        await File.WriteAllTextAsync(key, (await File.ReadAllTextAsync(key)).Replace("\"ciphertext\": \"", "\"ciphertext\": \"AAAA", StringComparison.Ordinal));

        var result = await CliProcess.RunAsync([CounsellorPass], "respond", "--server", "http://127.0.0.1:9", "--key", key);

        AssertOneSentence(result, "damaged");
    }

    [Test]
    public async Task ExpiredCertificateIsOneSentence()
    {
        await SetUpOrganisationAsync();
        // A responder certificate that expired: issued by the organisation's real issuer, in the past.
        var expired = Path.Combine(folder, "expired.cert");
        await WriteExpiredCertificateAsync(expired);

        var result = await CliProcess.RunAsync([CounsellorPass], "respond", "--server", "http://127.0.0.1:9", "--key", Path.Combine(folder, "counsellor.key"), "--cert", expired);

        AssertOneSentence(result, "expired");
    }

    [Test]
    public async Task UnreachableServerIsOneSentence()
    {
        var result = await CliProcess.RunAsync([], "seek", "--server", "http://127.0.0.1:9", "--org", "11111111111111111111111111111111");

        AssertOneSentence(result, "cannot be reached");
        Assert.That(result.ExitCode, Is.EqualTo(3));
    }

    [Test]
    public async Task UnknownOrganisationIsOneSentence()
    {
        var org = await SetUpOrganisationAsync();
        await using var node = await TrustLineNode.StartAsync(NodeSettings.Embedded());

        var result = await CliProcess.RunAsync([], "seek", "--server", node.BaseAddress.ToString(), "--org", org.Id, "--pin", Path.Combine(folder, "org", "organisation.json"));

        AssertOneSentence(result, "does not serve that organisation");
    }

    [Test]
    public async Task CertificateOfAnotherOrganisationIsOneSentence()
    {
        await SetUpOrganisationAsync();
        await using var node = await TrustLineNode.StartAsync(NodeSettings.Embedded());

        var result = await CliProcess.RunAsync([CounsellorPass], "respond", "--server", node.BaseAddress.ToString(), "--key", Path.Combine(folder, "counsellor.key"));

        AssertOneSentence(result, "Sign-in refused");
        Assert.That(result.Errors, Does.Contain("unknown_organisation"));
    }

    [Test]
    public async Task FingerprintThatDoesNotMatchIsRefused()
    {
        await InitAsync();
        await IssuerAsync();
        await KeygenAsync();

        var result = await CliProcess.RunAsync([AdminPass], "org", "certify", "--dir", Path.Combine(folder, "org"), "--responder-pub", Path.Combine(folder, "counsellor.pub"),
            "--fingerprint", "0000 0000 0000 0000", "--out", Path.Combine(folder, "counsellor.cert"));

        AssertOneSentence(result, "does not match");
        Assert.That(File.Exists(Path.Combine(folder, "counsellor.cert")), Is.False, "nothing may be certified");
    }

    private static void AssertOneSentence((int ExitCode, string Output, string Errors) result, string text)
    {
        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.Not.Zero);
            Assert.That(result.Errors, Does.Contain(text));
            Assert.That(result.Errors.Split('\n', StringSplitOptions.RemoveEmptyEntries).Count(l => l.StartsWith("trustline: ", StringComparison.Ordinal)), Is.EqualTo(1));
            Assert.That(result.Errors + result.Output, Does.Not.Contain("   at "), "no stack trace");
        });
    }

    private async Task<OrgInfo> SetUpOrganisationAsync()
    {
        var org = await InitAsync();
        await IssuerAsync();
        var fingerprint = await KeygenAsync();
        var certify = await CliProcess.RunAsync([AdminPass], "org", "certify", "--dir", Path.Combine(folder, "org"), "--responder-pub", Path.Combine(folder, "counsellor.pub"),
            "--fingerprint", fingerprint, "--out", Path.Combine(folder, "counsellor.cert"));
        Assert.That(certify.ExitCode, Is.Zero, certify.Errors);
        Assert.That(certify.Output, Does.Contain("Certified " + fingerprint));
        return org;
    }

    private async Task<OrgInfo> InitAsync()
    {
        var init = await CliProcess.RunAsync([AdminPass], "org", "init", "--dir", Path.Combine(folder, "org"), "--name", "Test Line", "--languages", "nl,en", "--topics", "health,legal");
        Assert.That(init.ExitCode, Is.Zero, init.Errors);
        Assert.That(init.Output, Does.Contain("\"Organisations\""), "the server configuration snippet");
        using var json = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(folder, "org", "organisation.json")));
        var id = json.RootElement.GetProperty("id").GetString()!;
        Assert.That(init.Output, Does.Contain(id));
        return new OrgInfo(id, [.. json.RootElement.GetProperty("roots").EnumerateArray().Select(r => r.GetString()!)]);
    }

    private async Task IssuerAsync()
    {
        var issuer = await CliProcess.RunAsync([AdminPass, AdminPass], "org", "issuer", "--dir", Path.Combine(folder, "org"));
        Assert.That(issuer.ExitCode, Is.Zero, issuer.Errors);
    }

    private async Task<string> KeygenAsync()
    {
        var keygen = await CliProcess.RunAsync([CounsellorPass], "responder", "keygen", "--out", Path.Combine(folder, "counsellor.key"));
        Assert.That(keygen.ExitCode, Is.Zero, keygen.Errors);
        return Fingerprint().Match(keygen.Output).Groups[1].Value;
    }

    private async Task WriteExpiredCertificateAsync(string path)
    {
        // Properly signed by the organisation's issuer, but its validity ended yesterday.
        var bundle = (await File.ReadAllTextAsync(Path.Combine(folder, "counsellor.cert"))).Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => !l.StartsWith('#')).ToArray();
        Assert.That(TrustLine.Protocol.Crypto.PublicText.TryParseCertificate(bundle[1], out var current), Is.True);
        var opened = TrustLine.Protocol.Crypto.KeyFile.TryOpen(await File.ReadAllTextAsync(Path.Combine(folder, "org", "issuer.key")), AdminPass, out _, out var issuerKey);
        Assert.That(opened, Is.EqualTo(TrustLine.Protocol.Crypto.KeyFileError.None));
        using (issuerKey)
        {
            var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
            var expired = TrustLine.Protocol.Crypto.Certificate.Issue(issuerKey!, TrustLine.Protocol.Crypto.CertificateRole.Responder, current!.OrgId, current.SubjectPublicKey, now - (3 * 86400), now - 86400);
            await File.WriteAllTextAsync(path, $"{bundle[0]}\n{TrustLine.Protocol.Crypto.PublicText.Certificate(expired)}\n");
        }
    }

    private static Dictionary<string, string?> ServerSettings(OrgInfo org)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Organisations:testline:Id"] = org.Id,
            ["Organisations:testline:Name"] = "Test Line",
            ["Organisations:testline:Languages:0"] = "nl",
            ["Organisations:testline:Topics:0"] = "health",
        };
        for (var i = 0; i < org.Roots.Length; i++)
        {
            settings[$"Organisations:testline:Roots:{i}"] = org.Roots[i];
        }

        return settings;
    }

    private sealed record OrgInfo(string Id, string[] Roots);

    [GeneratedRegex(@"Fingerprint: ([0-9a-f]{4} [0-9a-f]{4} [0-9a-f]{4} [0-9a-f]{4})")]
    private static partial Regex Fingerprint();
}
