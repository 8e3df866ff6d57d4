using System.Security.Cryptography;
using NSec.Cryptography;

namespace TrustLine.Protocol.Crypto;

/// <summary>
/// A returning seeker's pseudonym key <c>s_U</c> for one organisation (PROTOCOL.md §4). The app stores it
/// on the device (<see cref="Export"/>) and may reset it at any time. It travels only inside the encrypted
/// channel, so the server never learns whether a seeker is returning.
/// </summary>
public sealed class Pseudonym : IDisposable
{
    private readonly Key key;

    private Pseudonym(Key key)
    {
        this.key = key;
        PublicKey = key.PublicKey.Export(KeyBlobFormat.RawPublicKey);
    }

    /// <summary><c>s_U_pub</c>, 32 bytes.</summary>
    public byte[] PublicKey { get; }

    /// <summary>Creates a fresh pseudonym.</summary>
    public static Pseudonym Create() =>
        new(Key.Create(KeyAgreementAlgorithm.X25519, new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextArchiving }));

    /// <summary>Loads a pseudonym saved with <see cref="Export"/>; false if the bytes are not a 32-byte X25519 private key.</summary>
    public static bool TryImport(ReadOnlySpan<byte> privateKey, out Pseudonym? pseudonym)
    {
        pseudonym = null;
        if (privateKey.Length != 32)
        {
            return false;
        }

        var key = Key.Import(KeyAgreementAlgorithm.X25519, privateKey, KeyBlobFormat.RawPrivateKey,
            new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextArchiving });
        pseudonym = new Pseudonym(key);
        return true;
    }

    /// <summary>The 32-byte private key, for the app's own protected storage.</summary>
    public byte[] Export() => key.Export(KeyBlobFormat.RawPrivateKey);

    /// <summary><c>tag = HMAC-SHA-256(k_ret, TH)</c> with <c>k_ret</c> from <c>X25519(s_U, e_R_pub)</c>.</summary>
    internal byte[] Prove(ReadOnlySpan<byte> responderEphemeral, ReadOnlySpan<byte> transcriptHash)
    {
        var peer = NSec.Cryptography.PublicKey.Import(KeyAgreementAlgorithm.X25519, responderEphemeral, KeyBlobFormat.RawPublicKey);
        using var shared = KeyAgreementAlgorithm.X25519.Agree(key, peer)
            ?? throw new InvalidOperationException("The responder's ephemeral key is a low-order point.");
        return Returning.Tag(shared, transcriptHash);
    }

    /// <inheritdoc />
    public void Dispose() => key.Dispose();
}

/// <summary>The returning-seeker proof of PROTOCOL.md §4, shared by both sides.</summary>
internal static class Returning
{
    public static byte[] Tag(SharedSecret shared, ReadOnlySpan<byte> transcriptHash)
    {
        using var macKey = DeriveKey(shared, transcriptHash);
        return MacAlgorithm.HmacSha256.Mac(macKey, transcriptHash);
    }

    /// <summary>
    /// Checks a tag in constant time; any malformed input means "new seeker". The responder's side works on its
    /// raw ephemeral key (<see cref="EphemeralKey"/>), NSec's HKDF over the raw X25519 result, and the
    /// raw HMAC of the channel; the seeker's side (<see cref="Tag"/>) computes the same with NSec keys, and the
    /// returning-seeker tests hold the two to each other.
    /// </summary>
    public static bool Verify(EphemeralKey responderEphemeral, ReadOnlySpan<byte> pseudonymPublic, ReadOnlySpan<byte> tag, ReadOnlySpan<byte> transcriptHash)
    {
        if (tag.Length != 32 || transcriptHash.Length != 32)
        {
            return false;
        }

        Span<byte> shared = stackalloc byte[32];
        Span<byte> kRet = stackalloc byte[32];
        Span<byte> expected = stackalloc byte[32];
        Span<byte> info = stackalloc byte[Wire.ReturningLabel.Length + 32];
        try
        {
            if (!responderEphemeral.TryAgree(pseudonymPublic, shared))
            {
                return false;
            }

            Wire.ReturningLabel.CopyTo(info);
            transcriptHash.CopyTo(info[Wire.ReturningLabel.Length..]);
            KeyDerivationAlgorithm.HkdfSha256.DeriveBytes(shared, Wire.ReturningLabel, info, kRet);
            MessageCipher.HmacSha256(kRet, transcriptHash, expected);
            return CryptographicOperations.FixedTimeEquals(expected, tag);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(shared);
            CryptographicOperations.ZeroMemory(kRet);
            CryptographicOperations.ZeroMemory(expected);
        }
    }

    private static Key DeriveKey(SharedSecret shared, ReadOnlySpan<byte> transcriptHash)
    {
        Span<byte> info = stackalloc byte[Wire.ReturningLabel.Length + 32];
        Wire.ReturningLabel.CopyTo(info);
        transcriptHash.CopyTo(info[Wire.ReturningLabel.Length..]);
        Span<byte> kRet = stackalloc byte[32];
        try
        {
            KeyDerivationAlgorithm.HkdfSha256.DeriveBytes(shared, Wire.ReturningLabel, info, kRet);
            return Key.Import(MacAlgorithm.HmacSha256, kRet, KeyBlobFormat.RawSymmetricKey);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(kRet);
        }
    }
}
