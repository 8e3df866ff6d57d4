using System.Runtime.InteropServices;
using System.Security.Cryptography;
using NSec.Cryptography;

namespace TrustLine.Protocol.Crypto;

/// <summary>
/// One handshake's X25519 key (PROTOCOL.md §2), raw in a pinned array that is zeroed on dispose, computed
/// through the libsodium that NSec loads. An NSec <c>Key</c> and the <c>SharedSecret</c> of its agreement each
/// live in guarded memory whose mapping and unmapping cost more than the curve arithmetic itself (about 40 µs
/// each on a 2 GHz core, against 14 µs for the public key and 34 µs for an agreement): a handshake made two
/// of each on either side. The same reasoning PROTOCOL.md §6 applies to message keys applies to a key that
/// lives for one handshake; long-lived secrets (signing keys, pseudonyms) stay NSec keys. The start-up
/// self-test runs RFC 7748 §6.1 through this path.
/// </summary>
internal sealed class EphemeralKey : IDisposable
{
    public const int Size = 32;

    static EphemeralKey()
    {
        // Touching an NSec algorithm runs sodium_init before the first raw call.
        _ = KeyAgreementAlgorithm.X25519;
    }

    private readonly byte[] privateKey = GC.AllocateArray<byte>(Size, pinned: true);
    private readonly byte[] publicKey = new byte[Size];
    private bool disposed;

    private EphemeralKey(ReadOnlySpan<byte> scalar)
    {
        scalar.CopyTo(privateKey);
        if (Sodium.crypto_scalarmult_curve25519_base(ref MemoryMarshal.GetArrayDataReference(publicKey), in MemoryMarshal.GetArrayDataReference(privateKey)) != 0)
        {
            CryptographicOperations.ZeroMemory(privateKey);
            throw new CryptographicException("X25519 could not compute a public key.");
        }
    }

    /// <summary>The public key, 32 bytes, as sent on the wire.</summary>
    public ReadOnlySpan<byte> PublicKey => publicKey;

    /// <summary>A fresh key from the OS CSPRNG (NSec 26 has no generator of its own).</summary>
    public static EphemeralKey Create()
    {
        Span<byte> scalar = stackalloc byte[Size];
        RandomNumberGenerator.Fill(scalar);
        try
        {
            return new EphemeralKey(scalar);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(scalar);
        }
    }

    /// <summary>A key from given private bytes: for known-answer tests and the self-test only.</summary>
    public static EphemeralKey Import(ReadOnlySpan<byte> privateKey) =>
        privateKey.Length == Size ? new EphemeralKey(privateKey) : throw new ArgumentException("An X25519 private key is 32 bytes.", nameof(privateKey));

    /// <summary>
    /// <c>X25519(own, peer)</c> into <paramref name="shared"/>. False, with <paramref name="shared"/> cleared, for
    /// a peer key that is not 32 bytes, has its top bit (bit 255) set, or is a low-order point (all-zero result).
    /// </summary>
    public bool TryAgree(ReadOnlySpan<byte> peerPublic, Span<byte> shared)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (shared.Length != Size)
        {
            throw new ArgumentException("An X25519 result is 32 bytes.", nameof(shared));
        }

        if (peerPublic.Length != Size || (peerPublic[31] & 0x80) != 0)
        {
            shared.Clear();
            return false;
        }

        // libsodium answers -1 when the result is all zero (a low-order point); check it again regardless.
        var result = Sodium.crypto_scalarmult_curve25519(ref MemoryMarshal.GetReference(shared),
            in MemoryMarshal.GetArrayDataReference(privateKey), in MemoryMarshal.GetReference(peerPublic));
        if (result != 0 || !shared.ContainsAnyExcept((byte)0))
        {
            CryptographicOperations.ZeroMemory(shared);
            return false;
        }

        return true;
    }

    /// <summary>A copy of the private key, for the tests that check it is zeroed.</summary>
    internal byte[] CopyForTests() => (byte[])privateKey.Clone();

    /// <summary>Whether the private key is all zero now: for tests.</summary>
    internal bool IsZeroedForTests => !privateKey.AsSpan().ContainsAnyExcept((byte)0);

    public void Dispose()
    {
        CryptographicOperations.ZeroMemory(privateKey);
        disposed = true;
    }

    /// <summary>The libsodium functions used raw; the library is the one NSec's package ships and loads.</summary>
    private static class Sodium
    {
        private const string Library = "libsodium";

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        [DefaultDllImportSearchPaths(DllImportSearchPath.AssemblyDirectory | DllImportSearchPath.SafeDirectories)]
        internal static extern int crypto_scalarmult_curve25519_base(ref byte q, in byte n);

        [DllImport(Library, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        [DefaultDllImportSearchPaths(DllImportSearchPath.AssemblyDirectory | DllImportSearchPath.SafeDirectories)]
        internal static extern int crypto_scalarmult_curve25519(ref byte q, in byte n, in byte p);
    }
}
