using System.Buffers.Binary;

namespace TrustLine.Protocol.Crypto;

/// <summary>Sizes and labels of the TrustLine v1 wire format (PROTOCOL.md §1–§3).</summary>
public static class Wire
{
    /// <summary>Protocol version byte carried in <c>msg1</c>, <c>msg2</c> and every envelope.</summary>
    public const byte Version = 0x01;

    /// <summary>The only cipher suite of v1 (X25519, Ed25519, HKDF-SHA-256, ChaCha20-Poly1305).</summary>
    public const byte Suite = 0x01;

    /// <summary>Size of an organisation id.</summary>
    public const int OrgIdSize = 16;

    /// <summary>Size of a session id (<c>sid</c>).</summary>
    public const int SessionIdSize = 16;

    /// <summary>Size of an X25519 or Ed25519 public key.</summary>
    public const int PublicKeySize = 32;

    /// <summary>Size of an Ed25519 signature.</summary>
    public const int SignatureSize = 64;

    /// <summary>Size of a certificate (69 bytes to be signed plus the signature).</summary>
    public const int CertificateSize = 133;

    /// <summary>Size of the signed part of a certificate.</summary>
    public const int CertificateTbsSize = 69;

    /// <summary>Size of <c>msg1</c> (ClientHello).</summary>
    public const int Msg1Size = 67;

    /// <summary>Size of <c>msg2</c> (ServerHello).</summary>
    public const int Msg2Size = 364;

    /// <summary>How many leading bytes of <c>msg2</c> the handshake signature covers.</summary>
    public const int Msg2SignedSize = 300;

    /// <summary>Size of an envelope header.</summary>
    public const int HeaderSize = 27;

    /// <summary>Size of the ChaCha20-Poly1305 tag.</summary>
    public const int TagSize = 16;

    /// <summary>Size of the AEAD nonce.</summary>
    public const int NonceSize = 12;

    /// <summary>The largest body an envelope can carry (16384 − 3).</summary>
    public const int MaxBodySize = 16381;

    /// <summary>Sequence numbers run from 0 up to, not including, this cap (2^32).</summary>
    public const ulong SequenceCap = 1UL << 32;

    /// <summary>The padded plaintext sizes, smallest first.</summary>
    public static ReadOnlySpan<int> Buckets => [256, 1024, 4096, 16384];

    /// <summary>The four possible envelope sizes (bucket + header + tag): 299, 1067, 4139, 16427.</summary>
    public static ReadOnlySpan<int> EnvelopeSizes => [299, 1067, 4139, 16427];

    /// <summary>Message type byte of <c>msg1</c>.</summary>
    public const byte TypeClientHello = 0x01;

    /// <summary>Message type byte of <c>msg2</c>.</summary>
    public const byte TypeServerHello = 0x02;

    /// <summary>Message type byte of a data envelope.</summary>
    public const byte TypeData = 0x10;

    /// <summary>True when <paramref name="size"/> is one of the four envelope sizes.</summary>
    public static bool IsEnvelopeSize(int size) => EnvelopeSizes.Contains(size);

    /// <summary>The smallest bucket that holds <paramref name="paddedLength"/> bytes, or −1 if none does.</summary>
    public static int BucketFor(int paddedLength)
    {
        foreach (var bucket in Buckets)
        {
            if (paddedLength <= bucket)
            {
                return bucket;
            }
        }

        return -1;
    }

    internal static ReadOnlySpan<byte> CertMagic => "TLC1"u8;
    internal static ReadOnlySpan<byte> CertSigLabel => "TrustLine/v1/cert\0"u8;
    internal static ReadOnlySpan<byte> HandshakeSigLabel => "TrustLine/v1/hs-sig\0"u8;
    internal static ReadOnlySpan<byte> HandshakeSalt => "TrustLine/v1/hs"u8;
    internal static ReadOnlySpan<byte> C2sLabel => "TrustLine/v1/c2s"u8;
    internal static ReadOnlySpan<byte> S2cLabel => "TrustLine/v1/s2c"u8;
    internal static ReadOnlySpan<byte> MessageKeyLabel => "TrustLine/v1/mk"u8;
    internal static ReadOnlySpan<byte> ChainKeyLabel => "TrustLine/v1/ck"u8;
    internal static ReadOnlySpan<byte> ReturningLabel => "TrustLine/v1/ret"u8;

    internal static void WriteUInt64(Span<byte> destination, ulong value) => BinaryPrimitives.WriteUInt64BigEndian(destination, value);

    internal static ulong ReadUInt64(ReadOnlySpan<byte> source) => BinaryPrimitives.ReadUInt64BigEndian(source);
}
