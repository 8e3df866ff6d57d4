using NSec.Cryptography;

namespace TrustLine.Protocol.Contracts;

/// <summary>The body of <c>POST /v1/responders/challenge</c>'s answer.</summary>
public sealed class ChallengeResponse
{
    /// <summary>32 random bytes, base64; valid once, for a minute.</summary>
    public string Challenge { get; set; } = "";
}

/// <summary>The body of <c>POST /v1/responders/sign-in</c>.</summary>
public sealed class SignInRequest
{
    /// <summary>The issuer certificate, base64.</summary>
    public string IssuerCertificate { get; set; } = "";

    /// <summary>The responder certificate, base64.</summary>
    public string ResponderCertificate { get; set; } = "";

    /// <summary>The challenge as received, base64.</summary>
    public string Challenge { get; set; } = "";

    /// <summary>Ed25519 signature by the responder key over <see cref="ResponderSignIn.SignedBytes"/>, base64.</summary>
    public string Signature { get; set; } = "";
}

/// <summary>The answer to a successful sign-in.</summary>
public sealed class SignInResponse
{
    /// <summary>The opaque access token for the responder hub; the server keeps only its hash.</summary>
    public string Token { get; set; } = "";

    /// <summary>When the token stops working (never after the responder certificate).</summary>
    public DateTimeOffset ExpiresAt { get; set; }
}

/// <summary>An HTTP error: a stable code and a sentence.</summary>
public sealed class ErrorResponse
{
    /// <summary>One of <see cref="ErrorCodes"/>.</summary>
    public string Code { get; set; } = "";

    /// <summary>What went wrong, for people.</summary>
    public string Message { get; set; } = "";
}

/// <summary>
/// The responder's proof of key possession at sign-in: an Ed25519 signature over
/// <c>"TrustLine/v1/responder-sign-in\0" ‖ challenge</c>. The label keeps this signature from ever being
/// valid as a handshake or certificate signature.
/// </summary>
public static class ResponderSignIn
{
    private static ReadOnlySpan<byte> Label => "TrustLine/v1/responder-sign-in\0"u8;

    /// <summary>The bytes the responder signs.</summary>
    public static byte[] SignedBytes(ReadOnlySpan<byte> challenge) => [.. Label, .. challenge];

    /// <summary>Signs a challenge with the responder key.</summary>
    public static byte[] Sign(Key responderKey, ReadOnlySpan<byte> challenge) =>
        SignatureAlgorithm.Ed25519.Sign(responderKey, SignedBytes(challenge));

    /// <summary>Verifies a sign-in signature.</summary>
    public static bool Verify(ReadOnlySpan<byte> responderPublicKey, ReadOnlySpan<byte> challenge, ReadOnlySpan<byte> signature) =>
        PublicKey.TryImport(SignatureAlgorithm.Ed25519, responderPublicKey, KeyBlobFormat.RawPublicKey, out var key) && key is not null
        && SignatureAlgorithm.Ed25519.Verify(key, SignedBytes(challenge), signature);
}
