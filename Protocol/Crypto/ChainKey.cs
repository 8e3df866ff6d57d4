using System.Security.Cryptography;
using NSec.Cryptography;

namespace TrustLine.Protocol.Crypto;

/// <summary>
/// One direction's symmetric ratchet (PROTOCOL.md §3): <c>mk[i] = HKDF-Expand(ck[i], "…/mk")</c>,
/// <c>ck[i+1] = HKDF-Expand(ck[i], "…/ck")</c>. The chain key lives in a pinned array that is zeroed on
/// every step and on dispose.
/// </summary>
internal sealed class ChainKey : IDisposable
{
    private readonly byte[] key = GC.AllocateArray<byte>(32, pinned: true);

    public ChainKey(ReadOnlySpan<byte> initial) => initial.CopyTo(key);

    /// <summary>The sequence number whose message key this chain yields next.</summary>
    public ulong Next { get; private set; }

    public void MessageKey(Span<byte> destination) => KeyDerivationAlgorithm.HkdfSha256.Expand(key, Wire.MessageKeyLabel, destination[..32]);

    public void Advance()
    {
        Span<byte> next = stackalloc byte[32];
        KeyDerivationAlgorithm.HkdfSha256.Expand(key, Wire.ChainKeyLabel, next);
        next.CopyTo(key);
        CryptographicOperations.ZeroMemory(next);
        Next++;
    }

    /// <summary>A copy of the current chain key, for the known-answer tests only.</summary>
    internal byte[] CopyForTests() => (byte[])key.Clone();

    public void Dispose() => CryptographicOperations.ZeroMemory(key);
}

/// <summary>ChaCha20-Poly1305 with a one-message key (PROTOCOL.md §3): nonce = 0x00000000 ‖ seq.</summary>
internal static class MessageCipher
{
    public static void Encrypt(ReadOnlySpan<byte> messageKey, ulong sequence, ReadOnlySpan<byte> header, ReadOnlySpan<byte> plaintext, Span<byte> ciphertext)
    {
        using var key = Key.Import(AeadAlgorithm.ChaCha20Poly1305, messageKey, KeyBlobFormat.RawSymmetricKey);
        Span<byte> nonce = stackalloc byte[Wire.NonceSize];
        WriteNonce(nonce, sequence);
        AeadAlgorithm.ChaCha20Poly1305.Encrypt(key, nonce, header, plaintext, ciphertext);
    }

    public static bool TryDecrypt(ReadOnlySpan<byte> messageKey, ulong sequence, ReadOnlySpan<byte> header, ReadOnlySpan<byte> ciphertext, Span<byte> plaintext)
    {
        using var key = Key.Import(AeadAlgorithm.ChaCha20Poly1305, messageKey, KeyBlobFormat.RawSymmetricKey);
        Span<byte> nonce = stackalloc byte[Wire.NonceSize];
        WriteNonce(nonce, sequence);
        return AeadAlgorithm.ChaCha20Poly1305.Decrypt(key, nonce, header, ciphertext, plaintext);
    }

    private static void WriteNonce(Span<byte> nonce, ulong sequence)
    {
        nonce[..4].Clear();
        Wire.WriteUInt64(nonce[4..], sequence);
    }
}
