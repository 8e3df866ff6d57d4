using System.Text.Json;
using NSec.Cryptography;
using TrustLine.Protocol.Crypto;

namespace TrustLine.Cli;

/// <summary>The files the command reads and writes; all but key files hold only public material.</summary>
internal static class Files
{
    public static string Read(string path, string what)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CliException($"The {what} '{path}' cannot be read: {e.Message}");
        }
    }

    public static void Write(string path, string text, bool secret = false)
    {
        if (File.Exists(path))
        {
            throw new CliException($"'{path}' exists already; move it away or choose another path (nothing was overwritten).");
        }

        var directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (directory is not null)
        {
            Directory.CreateDirectory(directory);
        }

        File.WriteAllText(path, text);
        if (secret && !OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
    }

    /// <summary>Opens a passphrase-protected key file, with one clear sentence for each way it can fail.</summary>
    public static Key OpenKey(string path, KeyKind expected, string passphrase)
    {
        var text = Read(path, "key file");
        var error = KeyFile.TryOpen(text, passphrase, out var kind, out var key);
        if (error != KeyFileError.None)
        {
            throw new CliException($"{Path.GetFileName(path)}: {KeyFile.Describe(error)}");
        }

        if (kind != expected)
        {
            key!.Dispose();
            throw new CliException($"{Path.GetFileName(path)} holds a {kind.ToString().ToLowerInvariant()} key, not a {expected.ToString().ToLowerInvariant()} key.");
        }

        return key!;
    }

    public static byte[] PublicOf(Key key) => key.PublicKey.Export(KeyBlobFormat.RawPublicKey);
}

/// <summary>An organisation's public description: what apps pin and servers configure.</summary>
internal sealed record OrganisationFile(string Id, string Name, string[] Roots, string[] Languages, string[] Topics)
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    public const string FileName = "organisation.json";

    public OrganisationPin ToPin() => new(Convert.FromHexString(Id), Roots.Select(Convert.FromHexString));

    public string ToJson() => JsonSerializer.Serialize(this, Json) + "\n";

    public static OrganisationFile Load(string path)
    {
        try
        {
            var file = JsonSerializer.Deserialize<OrganisationFile>(Files.Read(path, "organisation file"), Json);
            if (file is null || !PublicText.TryParseOrgId(file.Id, out _) || file.Roots is not { Length: >= 1 } || file.Roots.Any(r => !PublicText.TryParseKey(r, out _)))
            {
                throw new CliException($"'{path}' is not a TrustLine organisation file.");
            }

            return file;
        }
        catch (JsonException)
        {
            throw new CliException($"'{path}' is not a TrustLine organisation file.");
        }
    }
}

/// <summary>The certificates a counsellor's console needs: the issuer's and its own, one base64 line each.</summary>
internal static class CertificateBundle
{
    public static string Format(Certificate issuer, Certificate responder) =>
        $"# TrustLine responder certificates (public)\n{PublicText.Certificate(issuer)}\n{PublicText.Certificate(responder)}\n";

    public static (Certificate Issuer, Certificate Responder) Load(string path)
    {
        var lines = Files.Read(path, "certificate file").Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Where(l => !l.StartsWith('#')).ToArray();
        if (lines.Length != 2 || !PublicText.TryParseCertificate(lines[0], out var issuer) || !PublicText.TryParseCertificate(lines[1], out var responder))
        {
            throw new CliException($"'{path}' is not a TrustLine certificate file (two base64 certificates).");
        }

        return (issuer!, responder!);
    }
}
