namespace TrustLine.Protocol.Crypto;

/// <summary>
/// Public material as one line of text that fits a configuration file or an app's source: keys and
/// organisation ids as lowercase hex, certificates as base64.
/// </summary>
public static class PublicText
{
    /// <summary>Hex of a 32-byte public key.</summary>
    public static string Key(ReadOnlySpan<byte> publicKey) => Convert.ToHexStringLower(publicKey);

    /// <summary>Reads a 32-byte public key written by <see cref="Key"/>.</summary>
    public static bool TryParseKey(string? text, out byte[] publicKey) => TryHex(text, Wire.PublicKeySize, out publicKey);

    /// <summary>Hex of a 16-byte organisation id.</summary>
    public static string OrgId(ReadOnlySpan<byte> orgId) => Convert.ToHexStringLower(orgId);

    /// <summary>Reads a 16-byte organisation id written by <see cref="OrgId"/>.</summary>
    public static bool TryParseOrgId(string? text, out byte[] orgId) => TryHex(text, Wire.OrgIdSize, out orgId);

    /// <summary>Base64 of a certificate.</summary>
    public static string Certificate(Certificate certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        return Convert.ToBase64String(certificate.Encoded);
    }

    /// <summary>Reads a certificate written by <see cref="Certificate(Crypto.Certificate)"/>; checks its format, not its signature.</summary>
    public static bool TryParseCertificate(string? text, out Certificate? certificate)
    {
        certificate = null;
        var buffer = new byte[Wire.CertificateSize + 3];
        return text is not null
            && Convert.TryFromBase64String(text.Trim(), buffer, out var written)
            && Crypto.Certificate.TryParse(buffer.AsSpan(0, written), out certificate);
    }

    private static bool TryHex(string? text, int size, out byte[] bytes)
    {
        bytes = [];
        var trimmed = text?.Trim() ?? "";
        if (trimmed.Length != size * 2)
        {
            return false;
        }

        try
        {
            bytes = Convert.FromHexString(trimmed);
            return true;
        }
        catch (FormatException)
        {
            return false;
        }
    }
}
