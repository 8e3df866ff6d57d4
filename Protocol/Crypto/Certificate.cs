using NSec.Cryptography;

namespace TrustLine.Protocol.Crypto;

/// <summary>Role of a certificate's subject (PROTOCOL.md §1).</summary>
public enum CertificateRole : byte
{
    /// <summary>An organisation's issuer key, certified by a root.</summary>
    Issuer = 0x01,

    /// <summary>A counsellor device's responder key, certified by an issuer.</summary>
    Responder = 0x02,
}

/// <summary>
/// A 133-byte TrustLine certificate: <c>"TLC1" ‖ role ‖ org_id ‖ subject_pub ‖ not_before ‖ not_after ‖ sig</c>,
/// where <c>sig = Ed25519(parent, "TrustLine/v1/cert\0" ‖ TBS)</c> (PROTOCOL.md §1).
/// </summary>
public sealed class Certificate
{
    /// <summary>The longest an issuer certificate may last: 90 days.</summary>
    public static readonly TimeSpan MaxIssuerLifetime = TimeSpan.FromDays(90);

    /// <summary>The longest a responder certificate may last: 14 days.</summary>
    public static readonly TimeSpan MaxResponderLifetime = TimeSpan.FromDays(14);

    /// <summary>
    /// Validity times are below 2^40 (PROTOCOL.md §1): with <c>0 ≤ not_before ≤ not_after &lt; 2^40</c> every
    /// lifetime and comparison is exact, whatever a peer puts in the 64-bit fields.
    /// </summary>
    public const long TimeLimit = 1L << 40;

    private readonly byte[] encoded;

    private Certificate(byte[] encoded) => this.encoded = encoded;

    /// <summary>The raw role byte; <see cref="CertificateRole"/> names the valid ones.</summary>
    public byte RoleByte => encoded[4];

    /// <summary>The role, if the role byte is a known one.</summary>
    public CertificateRole Role => (CertificateRole)encoded[4];

    /// <summary>The organisation this certificate belongs to.</summary>
    public ReadOnlySpan<byte> OrgId => encoded.AsSpan(5, Wire.OrgIdSize);

    /// <summary>The certified Ed25519 public key.</summary>
    public ReadOnlySpan<byte> SubjectPublicKey => encoded.AsSpan(21, Wire.PublicKeySize);

    /// <summary>Start of validity, Unix seconds.</summary>
    public long NotBefore => (long)Wire.ReadUInt64(encoded.AsSpan(53, 8));

    /// <summary>End of validity, Unix seconds.</summary>
    public long NotAfter => (long)Wire.ReadUInt64(encoded.AsSpan(61, 8));

    /// <summary>End of validity as a time; a <see cref="NotAfter"/> past the year 9999 reads as <see cref="DateTimeOffset.MaxValue"/>.</summary>
    public DateTimeOffset ValidUntil => ToTime(NotAfter);

    /// <summary>The parent's signature.</summary>
    public ReadOnlySpan<byte> Signature => encoded.AsSpan(Wire.CertificateTbsSize, Wire.SignatureSize);

    /// <summary>All 133 bytes.</summary>
    public ReadOnlySpan<byte> Encoded => encoded;

    /// <summary>A copy of all 133 bytes.</summary>
    public byte[] ToArray() => (byte[])encoded.Clone();

    /// <summary>
    /// Reads a certificate; false unless it is 133 bytes, starts with <c>"TLC1"</c> and its validity window
    /// holds <c>0 ≤ not_before ≤ not_after &lt; 2^40</c> (PROTOCOL.md §1). Checks no signature.
    /// </summary>
    public static bool TryParse(ReadOnlySpan<byte> bytes, out Certificate? certificate)
    {
        certificate = null;
        if (bytes.Length != Wire.CertificateSize || !bytes[..4].SequenceEqual(Wire.CertMagic))
        {
            return false;
        }

        // Compared as unsigned 64-bit values: a negative signed time is a huge unsigned one, so one bound covers both.
        var notBefore = Wire.ReadUInt64(bytes.Slice(53, 8));
        var notAfter = Wire.ReadUInt64(bytes.Slice(61, 8));
        if (!IsValidWindow(notBefore, notAfter))
        {
            return false;
        }

        certificate = new Certificate(bytes.ToArray());
        return true;
    }

    /// <summary>Signs a new certificate for <paramref name="subjectPublicKey"/> with <paramref name="parentKey"/> (an Ed25519 key).</summary>
    public static Certificate Issue(
        Key parentKey,
        CertificateRole role,
        ReadOnlySpan<byte> orgId,
        ReadOnlySpan<byte> subjectPublicKey,
        long notBefore,
        long notAfter)
    {
        ArgumentNullException.ThrowIfNull(parentKey);
        if (parentKey.Algorithm is not Ed25519)
        {
            throw new ArgumentException("The parent key must be an Ed25519 key.", nameof(parentKey));
        }

        if (orgId.Length != Wire.OrgIdSize)
        {
            throw new ArgumentException($"An organisation id is {Wire.OrgIdSize} bytes.", nameof(orgId));
        }

        if (subjectPublicKey.Length != Wire.PublicKeySize)
        {
            throw new ArgumentException($"A subject public key is {Wire.PublicKeySize} bytes.", nameof(subjectPublicKey));
        }

        if (notBefore < 0 || notAfter < 0 || !IsValidWindow((ulong)notBefore, (ulong)notAfter))
        {
            throw new ArgumentOutOfRangeException(nameof(notAfter), "A validity window needs 0 ≤ not_before ≤ not_after < 2^40 (PROTOCOL.md §1).");
        }

        var bytes = new byte[Wire.CertificateSize];
        Wire.CertMagic.CopyTo(bytes);
        bytes[4] = (byte)role;
        orgId.CopyTo(bytes.AsSpan(5));
        subjectPublicKey.CopyTo(bytes.AsSpan(21));
        Wire.WriteUInt64(bytes.AsSpan(53, 8), (ulong)notBefore);
        Wire.WriteUInt64(bytes.AsSpan(61, 8), (ulong)notAfter);

        Span<byte> signed = stackalloc byte[Wire.CertSigLabel.Length + Wire.CertificateTbsSize];
        Wire.CertSigLabel.CopyTo(signed);
        bytes.AsSpan(0, Wire.CertificateTbsSize).CopyTo(signed[Wire.CertSigLabel.Length..]);
        SignatureAlgorithm.Ed25519.Sign(parentKey, signed, bytes.AsSpan(Wire.CertificateTbsSize, Wire.SignatureSize));
        return new Certificate(bytes);
    }

    /// <summary>A Unix time of a valid certificate as a <see cref="DateTimeOffset"/>, saturating at the year 9999.</summary>
    public static DateTimeOffset ToTime(long unixSeconds) =>
        unixSeconds >= DateTimeOffset.MaxValue.ToUnixTimeSeconds() ? DateTimeOffset.MaxValue : DateTimeOffset.FromUnixTimeSeconds(Math.Max(0, unixSeconds));

    private static bool IsValidWindow(ulong notBefore, ulong notAfter) => notBefore <= notAfter && notAfter < TimeLimit;

    /// <summary>True when the signature verifies under <paramref name="parentPublicKey"/> (32 raw Ed25519 bytes).</summary>
    public bool IsSignedBy(ReadOnlySpan<byte> parentPublicKey)
    {
        if (!PublicKey.TryImport(SignatureAlgorithm.Ed25519, parentPublicKey, KeyBlobFormat.RawPublicKey, out var parent) || parent is null)
        {
            return false;
        }

        Span<byte> signed = stackalloc byte[Wire.CertSigLabel.Length + Wire.CertificateTbsSize];
        Wire.CertSigLabel.CopyTo(signed);
        encoded.AsSpan(0, Wire.CertificateTbsSize).CopyTo(signed[Wire.CertSigLabel.Length..]);
        return SignatureAlgorithm.Ed25519.Verify(parent, signed, Signature);
    }

    /// <summary>
    /// The fingerprint of a public key as people compare it out of band: the first 8 bytes of its SHA-256,
    /// in hex, in groups of 4 (e.g. <c>1a2b 3c4d 5e6f 7a8b</c>).
    /// </summary>
    public static string Fingerprint(ReadOnlySpan<byte> publicKey)
    {
        Span<byte> hash = stackalloc byte[32];
        NSec.Cryptography.HashAlgorithm.Sha256.Hash(publicKey, hash);
        var hex = Convert.ToHexStringLower(hash[..8]);
        return $"{hex[..4]} {hex[4..8]} {hex[8..12]} {hex[12..16]}";
    }

    /// <summary>True when a typed fingerprint names the same key, ignoring case, spaces and dashes.</summary>
    public static bool FingerprintMatches(ReadOnlySpan<byte> publicKey, string typed)
    {
        ArgumentNullException.ThrowIfNull(typed);
        var normalised = new string(typed.Where(c => c is not (' ' or '-' or ':')).ToArray()).ToLowerInvariant();
        return normalised == Fingerprint(publicKey).Replace(" ", "", StringComparison.Ordinal);
    }
}
