using System.Runtime.InteropServices;
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
    static ChainKey()
    {
        // Touching an NSec algorithm runs sodium_init before the first raw call.
        _ = MacAlgorithm.HmacSha256;
    }

    private readonly byte[] key = GC.AllocateArray<byte>(32, pinned: true);

    public ChainKey(ReadOnlySpan<byte> initial) => initial.CopyTo(key);

    /// <summary>The sequence number whose message key this chain yields next.</summary>
    public ulong Next { get; private set; }

    public void MessageKey(Span<byte> destination) => ExpandOneBlock(key, Wire.MessageKeyLabel, destination[..32]);

    public void Advance()
    {
        Span<byte> next = stackalloc byte[32];
        ExpandOneBlock(key, Wire.ChainKeyLabel, next);
        next.CopyTo(key);
        CryptographicOperations.ZeroMemory(next);
        Next++;
    }

    /// <summary>
    /// HKDF-Expand (RFC 5869) for a 32-byte output is one HMAC-SHA-256: <c>T(1) = HMAC(prk, info ‖ 0x01)</c>.
    /// Computed with libsodium's one-shot HMAC (the library NSec loads), which is what NSec's HKDF does
    /// underneath, without its per-call overhead; the §8 known answers pin the result.
    /// </summary>
    internal static void ExpandOneBlock(ReadOnlySpan<byte> prk, ReadOnlySpan<byte> info, Span<byte> output32)
    {
        if (prk.Length != 32 || output32.Length != 32 || info.Length > 64)
        {
            throw new ArgumentException("A chain key is 32 bytes, and so is what it derives.");
        }

        Span<byte> input = stackalloc byte[info.Length + 1];
        info.CopyTo(input);
        input[^1] = 0x01;
        MessageCipher.HmacSha256(prk, input, output32);
    }

    /// <summary>A copy of the current chain key, for the known-answer tests only.</summary>
    internal byte[] CopyForTests() => (byte[])key.Clone();

    public void Dispose() => CryptographicOperations.ZeroMemory(key);
}

/// <summary>
/// ChaCha20-Poly1305 with a one-message key (PROTOCOL.md §3): nonce = 0x00000000 ‖ seq. The message key is
/// used once, raw, through the libsodium that NSec loads (PROTOCOL.md §6 allows it): an NSec <c>Key</c> per
/// message would cost two guarded-memory mappings and about 50 µs. The caller keeps the key in stack memory
/// and zeroes it right after this one call; the start-up self-test runs RFC 8439 §2.8.2 through this path.
/// </summary>
internal static class MessageCipher
{
    public const int KeySize = 32;

    static MessageCipher()
    {
        // Touching an NSec algorithm runs sodium_init before the first raw call.
        _ = AeadAlgorithm.ChaCha20Poly1305;
    }

    public static void Encrypt(ReadOnlySpan<byte> messageKey, ulong sequence, ReadOnlySpan<byte> header, ReadOnlySpan<byte> plaintext, Span<byte> ciphertext)
    {
        Span<byte> nonce = stackalloc byte[Wire.NonceSize];
        WriteNonce(nonce, sequence);
        Encrypt(messageKey, nonce, header, plaintext, ciphertext);
    }

    public static bool TryDecrypt(ReadOnlySpan<byte> messageKey, ulong sequence, ReadOnlySpan<byte> header, ReadOnlySpan<byte> ciphertext, Span<byte> plaintext)
    {
        Span<byte> nonce = stackalloc byte[Wire.NonceSize];
        WriteNonce(nonce, sequence);
        return TryDecrypt(messageKey, nonce, header, ciphertext, plaintext);
    }

    /// <summary>IETF ChaCha20-Poly1305 with a raw 32-byte key; <paramref name="ciphertext"/> is the plaintext's length plus the 16-byte tag.</summary>
    internal static void Encrypt(ReadOnlySpan<byte> key, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> plaintext, Span<byte> ciphertext)
    {
        Check(key, nonce);
        if (ciphertext.Length != plaintext.Length + Wire.TagSize)
        {
            throw new ArgumentException("The ciphertext is the plaintext's length plus the tag.", nameof(ciphertext));
        }

        var result = Sodium.crypto_aead_chacha20poly1305_ietf_encrypt(
            ref MemoryMarshal.GetReference(ciphertext), out _,
            in MemoryMarshal.GetReference(plaintext), (ulong)plaintext.Length,
            in MemoryMarshal.GetReference(associatedData), (ulong)associatedData.Length,
            IntPtr.Zero, in MemoryMarshal.GetReference(nonce), in MemoryMarshal.GetReference(key));
        if (result != 0)
        {
            throw new CryptographicException("ChaCha20-Poly1305 encryption failed.");
        }
    }

    /// <summary>False, with <paramref name="plaintext"/> cleared, when the tag does not verify.</summary>
    internal static bool TryDecrypt(ReadOnlySpan<byte> key, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> ciphertext, Span<byte> plaintext)
    {
        Check(key, nonce);
        if (ciphertext.Length < Wire.TagSize || plaintext.Length != ciphertext.Length - Wire.TagSize)
        {
            return false;
        }

        var result = Sodium.crypto_aead_chacha20poly1305_ietf_decrypt(
            ref MemoryMarshal.GetReference(plaintext), out _, IntPtr.Zero,
            in MemoryMarshal.GetReference(ciphertext), (ulong)ciphertext.Length,
            in MemoryMarshal.GetReference(associatedData), (ulong)associatedData.Length,
            in MemoryMarshal.GetReference(nonce), in MemoryMarshal.GetReference(key));
        if (result != 0)
        {
            plaintext.Clear();
            return false;
        }

        return true;
    }

    private static void Check(ReadOnlySpan<byte> key, ReadOnlySpan<byte> nonce)
    {
        if (key.Length != KeySize || nonce.Length != Wire.NonceSize)
        {
            throw new ArgumentException("A message key is 32 bytes and a nonce 12.");
        }
    }

    private static void WriteNonce(Span<byte> nonce, ulong sequence)
    {
        nonce[..4].Clear();
        Wire.WriteUInt64(nonce[4..], sequence);
    }

    /// <summary>HMAC-SHA-256 with a 32-byte key (libsodium's <c>crypto_auth_hmacsha256</c>).</summary>
    internal static void HmacSha256(ReadOnlySpan<byte> key32, ReadOnlySpan<byte> message, Span<byte> mac32)
    {
        if (key32.Length != 32 || mac32.Length != 32)
        {
            throw new ArgumentException("HMAC-SHA-256 here takes a 32-byte key and gives 32 bytes.");
        }

        if (Sodium.crypto_auth_hmacsha256(ref MemoryMarshal.GetReference(mac32), in MemoryMarshal.GetReference(message), (ulong)message.Length,
                in MemoryMarshal.GetReference(key32)) != 0)
        {
            throw new CryptographicException("HMAC-SHA-256 failed.");
        }
    }

    /// <summary>The libsodium functions used raw; the library is the one NSec's package ships and loads.</summary>
    private static class Sodium
    {
        private const string Library = "libsodium";

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        [DefaultDllImportSearchPaths(DllImportSearchPath.AssemblyDirectory | DllImportSearchPath.SafeDirectories)]
        internal static extern int crypto_auth_hmacsha256(ref byte @out, in byte @in, ulong inlen, in byte k);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        [DefaultDllImportSearchPaths(DllImportSearchPath.AssemblyDirectory | DllImportSearchPath.SafeDirectories)]
        internal static extern int crypto_aead_chacha20poly1305_ietf_encrypt(
            ref byte c, out ulong clen, in byte m, ulong mlen, in byte ad, ulong adlen, IntPtr nsec, in byte npub, in byte k);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        [DefaultDllImportSearchPaths(DllImportSearchPath.AssemblyDirectory | DllImportSearchPath.SafeDirectories)]
        internal static extern int crypto_aead_chacha20poly1305_ietf_decrypt(
            ref byte m, out ulong mlen, IntPtr nsec, in byte c, ulong clen, in byte ad, ulong adlen, in byte npub, in byte k);
    }
}
