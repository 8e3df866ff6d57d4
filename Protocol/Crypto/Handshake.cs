using System.Security.Cryptography;
using NSec.Cryptography;

namespace TrustLine.Protocol.Crypto;

/// <summary>Why a handshake message was refused (PROTOCOL.md §2).</summary>
public enum HandshakeError
{
    /// <summary>Accepted.</summary>
    None = 0,

    /// <summary><c>msg1</c> is not 67 bytes of version 1, type ClientHello, suite 1.</summary>
    MalformedMsg1,

    /// <summary><c>msg2</c> is not 364 bytes of version 1, type ServerHello.</summary>
    MalformedMsg2,

    /// <summary><c>msg1</c> is for another organisation than the responder's.</summary>
    OtherOrganisation,

    /// <summary>The responder's certificate chain was refused; see <see cref="HandshakeResult.ChainError"/>.</summary>
    CertificateChain,

    /// <summary>The handshake signature does not verify under the responder's certified key.</summary>
    BadSignature,

    /// <summary>The peer's ephemeral key has its top bit set, is not 32 bytes, or is a low-order point.</summary>
    BadEphemeral,
}

/// <summary>The outcome of one handshake step: a channel on success, the reason otherwise.</summary>
public sealed class HandshakeResult
{
    internal HandshakeResult(HandshakeError error, ChainError chainError = ChainError.None)
    {
        Error = error;
        ChainError = chainError;
    }

    internal HandshakeResult(SecureChannel channel, byte[]? msg2, byte[] responderPublicKey)
    {
        Channel = channel;
        Msg2 = msg2;
        ResponderPublicKey = responderPublicKey;
    }

    /// <summary>True when the step succeeded and <see cref="Channel"/> is set.</summary>
    public bool Succeeded => Error == HandshakeError.None;

    /// <summary>Why it failed.</summary>
    public HandshakeError Error { get; }

    /// <summary>The certificate rule that failed, when <see cref="Error"/> is <see cref="HandshakeError.CertificateChain"/>.</summary>
    public ChainError ChainError { get; }

    /// <summary>The channel; the caller owns and disposes it.</summary>
    public SecureChannel? Channel { get; }

    /// <summary>The responder's <c>msg2</c>, to send to the seeker (responder side only).</summary>
    public byte[]? Msg2 { get; }

    /// <summary>The responder's certified public key (show its fingerprint if you like).</summary>
    public byte[]? ResponderPublicKey { get; }
}

/// <summary>
/// The seeker's side of the handshake: creates <c>msg1</c> with a fresh session id and ephemeral key,
/// then verifies the responder's <c>msg2</c> against the pinned roots before deriving any key.
/// </summary>
public sealed class SeekerHandshake : IDisposable
{
    private readonly OrganisationPin pin;
    private readonly byte[] msg1;
    private readonly TimeProvider time;
    private EphemeralKey? ephemeral;

    private SeekerHandshake(OrganisationPin pin, EphemeralKey ephemeral, ReadOnlySpan<byte> sessionId, TimeProvider time)
    {
        this.pin = pin;
        this.ephemeral = ephemeral;
        this.time = time;
        msg1 = new byte[Wire.Msg1Size];
        msg1[0] = Wire.Version;
        msg1[1] = Wire.TypeClientHello;
        msg1[2] = Wire.Suite;
        pin.OrgId.CopyTo(msg1, 3);
        sessionId.CopyTo(msg1.AsSpan(19));
        ephemeral.PublicKey.CopyTo(msg1.AsSpan(35));
    }

    /// <summary><c>msg1</c>, 67 bytes, to send when opening the session.</summary>
    public ReadOnlySpan<byte> Msg1 => msg1;

    /// <summary>The random session id inside <c>msg1</c>.</summary>
    public ReadOnlySpan<byte> SessionId => msg1.AsSpan(19, Wire.SessionIdSize);

    /// <summary>The session id as a <see cref="Guid"/> (big-endian).</summary>
    public Guid SessionGuid => new(SessionId, bigEndian: true);

    /// <summary>Starts a handshake with the organisation of <paramref name="pin"/>.</summary>
    public static SeekerHandshake Start(OrganisationPin pin, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(pin);
        Span<byte> sessionId = stackalloc byte[Wire.SessionIdSize];
        RandomNumberGenerator.Fill(sessionId); // the OS CSPRNG; NSec 26 has no generator of its own
        return new SeekerHandshake(pin, EphemeralKey.Create(), sessionId, time ?? TimeProvider.System);
    }

    /// <summary>Starts with a given ephemeral private key and session id: for known-answer tests only.</summary>
    internal static SeekerHandshake StartDeterministic(OrganisationPin pin, ReadOnlySpan<byte> ephemeralPrivate, ReadOnlySpan<byte> sessionId, TimeProvider time) =>
        new(pin, EphemeralKey.Import(ephemeralPrivate), sessionId, time);

    /// <summary>
    /// Verifies <c>msg2</c> (chain against the pinned roots at the current time, then the handshake
    /// signature) and derives the channel. A refused <c>msg2</c> leaves this handshake usable.
    /// </summary>
    public HandshakeResult Complete(ReadOnlySpan<byte> msg2)
    {
        ObjectDisposedException.ThrowIf(ephemeral is null, this);
        if (msg2.Length != Wire.Msg2Size || msg2[0] != Wire.Version || msg2[1] != Wire.TypeServerHello)
        {
            return new HandshakeResult(HandshakeError.MalformedMsg2);
        }

        var responderEphemeral = msg2.Slice(2, Wire.PublicKeySize);
        var issuerCertificate = msg2.Slice(34, Wire.CertificateSize);
        var responderCertificate = msg2.Slice(167, Wire.CertificateSize);
        var signature = msg2.Slice(Wire.Msg2SignedSize, Wire.SignatureSize);

        var chain = CertificateChain.Verify(issuerCertificate, responderCertificate, pin, time.GetUtcNow().ToUnixTimeSeconds(), out var responderKey);
        if (chain != ChainError.None)
        {
            return new HandshakeResult(HandshakeError.CertificateChain, chain);
        }

        if (!HandshakeMath.VerifySignature(responderKey!, msg1, msg2, signature))
        {
            return new HandshakeResult(HandshakeError.BadSignature);
        }

        Span<byte> shared = stackalloc byte[EphemeralKey.Size];
        try
        {
            if (!ephemeral.TryAgree(responderEphemeral, shared))
            {
                return new HandshakeResult(HandshakeError.BadEphemeral);
            }

            var channel = HandshakeMath.Derive(ChannelRole.Seeker, shared, msg1, msg2, null, time);
            ephemeral.Dispose();
            ephemeral = null;
            return new HandshakeResult(channel, null, responderKey!);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(shared);
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        ephemeral?.Dispose();
        ephemeral = null;
    }
}

/// <summary>
/// A responder's credentials on its own device: the responder signing key (never leaves the device) and
/// its issuer and responder certificates.
/// </summary>
public sealed class ResponderCredentials : IDisposable
{
    /// <summary>Wraps a responder key and its certificates; this object then owns <paramref name="signingKey"/>.</summary>
    public ResponderCredentials(Key signingKey, Certificate issuer, Certificate responder)
    {
        ArgumentNullException.ThrowIfNull(signingKey);
        ArgumentNullException.ThrowIfNull(issuer);
        ArgumentNullException.ThrowIfNull(responder);
        if (!responder.SubjectPublicKey.SequenceEqual(signingKey.PublicKey.Export(KeyBlobFormat.RawPublicKey)))
        {
            throw new ArgumentException("The responder certificate does not certify this key.", nameof(responder));
        }

        SigningKey = signingKey;
        Issuer = issuer;
        Responder = responder;
    }

    /// <summary>The responder's Ed25519 key.</summary>
    public Key SigningKey { get; }

    /// <summary>The issuer certificate.</summary>
    public Certificate Issuer { get; }

    /// <summary>The responder certificate.</summary>
    public Certificate Responder { get; }

    /// <summary>The organisation, from the responder certificate.</summary>
    public ReadOnlySpan<byte> OrgId => Responder.OrgId;

    /// <inheritdoc />
    public void Dispose() => SigningKey.Dispose();
}

/// <summary>The responder's side of the handshake: checks <c>msg1</c>, answers <c>msg2</c>, derives the channel.</summary>
public static class ResponderHandshake
{
    /// <summary>
    /// Answers <c>msg1</c>. The returned channel is established only once the seeker's HELLO opens
    /// (<see cref="SecureChannel.IsEstablished"/>).
    /// </summary>
    public static HandshakeResult Accept(ReadOnlySpan<byte> msg1, ResponderCredentials credentials, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(credentials);
        return Accept(msg1, credentials, EphemeralKey.Create(), time ?? TimeProvider.System);
    }

    /// <summary>Accepts with a given ephemeral private key: for known-answer tests only.</summary>
    internal static HandshakeResult AcceptDeterministic(ReadOnlySpan<byte> msg1, ResponderCredentials credentials, ReadOnlySpan<byte> ephemeralPrivate, TimeProvider time) =>
        Accept(msg1, credentials, EphemeralKey.Import(ephemeralPrivate), time);

    /// <summary>Reads the fixed fields of <c>msg1</c>; false unless it is 67 bytes of version 1, ClientHello, suite 1.</summary>
    public static bool TryParseMsg1(ReadOnlySpan<byte> msg1, out byte[] orgId, out Guid sessionId)
    {
        orgId = [];
        sessionId = Guid.Empty;
        if (msg1.Length != Wire.Msg1Size || msg1[0] != Wire.Version || msg1[1] != Wire.TypeClientHello || msg1[2] != Wire.Suite)
        {
            return false;
        }

        orgId = msg1.Slice(3, Wire.OrgIdSize).ToArray();
        sessionId = new Guid(msg1.Slice(19, Wire.SessionIdSize), bigEndian: true);
        return true;
    }

    private static HandshakeResult Accept(ReadOnlySpan<byte> msg1, ResponderCredentials credentials, EphemeralKey ephemeral, TimeProvider time)
    {
        var owned = ephemeral;
        Span<byte> shared = stackalloc byte[EphemeralKey.Size];
        try
        {
            if (!TryParseMsg1(msg1, out var orgId, out _))
            {
                return new HandshakeResult(HandshakeError.MalformedMsg1);
            }

            if (!orgId.AsSpan().SequenceEqual(credentials.OrgId))
            {
                return new HandshakeResult(HandshakeError.OtherOrganisation);
            }

            var msg2 = new byte[Wire.Msg2Size];
            msg2[0] = Wire.Version;
            msg2[1] = Wire.TypeServerHello;
            ephemeral.PublicKey.CopyTo(msg2.AsSpan(2));
            credentials.Issuer.Encoded.CopyTo(msg2.AsSpan(34));
            credentials.Responder.Encoded.CopyTo(msg2.AsSpan(167));

            if (!ephemeral.TryAgree(msg1.Slice(35, Wire.PublicKeySize), shared))
            {
                return new HandshakeResult(HandshakeError.BadEphemeral);
            }

            HandshakeMath.Sign(credentials.SigningKey, msg1, msg2);
            // The channel keeps e_R until the HELLO is processed: the returning proof needs it (§4).
            var channel = HandshakeMath.Derive(ChannelRole.Responder, shared, msg1, msg2, ephemeral, time);
            owned = null;
            return new HandshakeResult(channel, msg2, credentials.Responder.SubjectPublicKey.ToArray());
        }
        finally
        {
            CryptographicOperations.ZeroMemory(shared);
            owned?.Dispose();
        }
    }
}

/// <summary>The shared computations of PROTOCOL.md §2.</summary>
internal static class HandshakeMath
{
    public static void Sign(Key responderKey, ReadOnlySpan<byte> msg1, Span<byte> msg2)
    {
        Span<byte> signed = stackalloc byte[Wire.HandshakeSigLabel.Length + 32];
        SignedDigest(msg1, msg2, signed);
        SignatureAlgorithm.Ed25519.Sign(responderKey, signed, msg2.Slice(Wire.Msg2SignedSize, Wire.SignatureSize));
    }

    public static bool VerifySignature(ReadOnlySpan<byte> responderPublic, ReadOnlySpan<byte> msg1, ReadOnlySpan<byte> msg2, ReadOnlySpan<byte> signature)
    {
        if (!PublicKey.TryImport(SignatureAlgorithm.Ed25519, responderPublic, KeyBlobFormat.RawPublicKey, out var key) || key is null)
        {
            return false;
        }

        Span<byte> signed = stackalloc byte[Wire.HandshakeSigLabel.Length + 32];
        SignedDigest(msg1, msg2, signed);
        return SignatureAlgorithm.Ed25519.Verify(key, signed, signature);
    }

    /// <summary>TH, the two chain keys, and the channel; <c>prk</c> is zeroed before returning.</summary>
    public static SecureChannel Derive(ChannelRole role, ReadOnlySpan<byte> shared, ReadOnlySpan<byte> msg1, ReadOnlySpan<byte> msg2, EphemeralKey? ownEphemeral, TimeProvider time)
    {
        Span<byte> transcript = stackalloc byte[32];
        TranscriptHash(msg1, msg2, transcript);
        Span<byte> prk = stackalloc byte[32];
        Span<byte> c2s = stackalloc byte[32];
        Span<byte> s2c = stackalloc byte[32];
        Span<byte> info = stackalloc byte[Wire.C2sLabel.Length + 32];
        try
        {
            KeyDerivationAlgorithm.HkdfSha256.Extract(shared, Wire.HandshakeSalt, prk);
            Wire.C2sLabel.CopyTo(info);
            transcript.CopyTo(info[Wire.C2sLabel.Length..]);
            KeyDerivationAlgorithm.HkdfSha256.Expand(prk, info, c2s);
            Wire.S2cLabel.CopyTo(info);
            KeyDerivationAlgorithm.HkdfSha256.Expand(prk, info, s2c);
            var seeker = role == ChannelRole.Seeker;
            return new SecureChannel(role, msg1.Slice(19, Wire.SessionIdSize), seeker ? c2s : s2c, seeker ? s2c : c2s,
                transcript, msg2.Slice(2, Wire.PublicKeySize), ownEphemeral, time);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(prk);
            CryptographicOperations.ZeroMemory(c2s);
            CryptographicOperations.ZeroMemory(s2c);
        }
    }

    /// <summary><c>TH = SHA-256(msg1 ‖ msg2)</c>, all 364 bytes of msg2.</summary>
    public static void TranscriptHash(ReadOnlySpan<byte> msg1, ReadOnlySpan<byte> msg2, Span<byte> destination)
    {
        Span<byte> both = stackalloc byte[Wire.Msg1Size + Wire.Msg2Size];
        msg1.CopyTo(both);
        msg2.CopyTo(both[Wire.Msg1Size..]);
        NSec.Cryptography.HashAlgorithm.Sha256.Hash(both, destination);
    }

    /// <summary><c>"TrustLine/v1/hs-sig\0" ‖ SHA-256(msg1 ‖ msg2[0..300))</c>.</summary>
    private static void SignedDigest(ReadOnlySpan<byte> msg1, ReadOnlySpan<byte> msg2, Span<byte> destination)
    {
        Span<byte> covered = stackalloc byte[Wire.Msg1Size + Wire.Msg2SignedSize];
        msg1.CopyTo(covered);
        msg2[..Wire.Msg2SignedSize].CopyTo(covered[Wire.Msg1Size..]);
        Wire.HandshakeSigLabel.CopyTo(destination);
        NSec.Cryptography.HashAlgorithm.Sha256.Hash(covered, destination[Wire.HandshakeSigLabel.Length..]);
    }
}
