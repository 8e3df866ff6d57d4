using Microsoft.Extensions.Time.Testing;
using System.Security.Cryptography;
using NSec.Cryptography;
using TrustLine.Protocol.Crypto;

namespace TrustLine.Server.Tests.Crypto;

/// <summary>The inputs of PROTOCOL.md §8, and a world built from them.</summary>
internal static class Vectors
{
    // RFC 8032 §7.1 TEST 1, 2 and 3 secret keys: root, issuer, responder.
    public static readonly byte[] RootSeed = Convert.FromHexString("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
    public static readonly byte[] IssuerSeed = Convert.FromHexString("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb");
    public static readonly byte[] ResponderSeed = Convert.FromHexString("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7");

    // RFC 7748 §6.1 Alice (seeker e_U) and Bob (responder e_R).
    public static readonly byte[] SeekerEphemeral = Convert.FromHexString("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
    public static readonly byte[] ResponderEphemeral = Convert.FromHexString("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");

    public static readonly byte[] OrgId = Enumerable.Repeat((byte)0x11, 16).ToArray();
    public static readonly byte[] SessionId = Enumerable.Range(0, 16).Select(i => (byte)i).ToArray();
    public static readonly byte[] Pseudonym = Convert.FromHexString("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4");

    public const long IssuerNotBefore = 1767225600;
    public const long IssuerNotAfter = 1775001600;
    public const long ResponderNotBefore = 1767225600;
    public const long ResponderNotAfter = 1768435200;
    public const long Now = 1767229200;

    public static Key Ed25519(byte[] seed) =>
        Key.Import(SignatureAlgorithm.Ed25519, seed, KeyBlobFormat.RawPrivateKey);

    public static byte[] PublicOf(byte[] seed)
    {
        using var key = Ed25519(seed);
        return key.PublicKey.Export(KeyBlobFormat.RawPublicKey);
    }

    public static FakeTimeProvider Clock(long unixSeconds = Now) => new(DateTimeOffset.FromUnixTimeSeconds(unixSeconds));
}

/// <summary>
/// A complete organisation with keys and certificates: the §8 one by default, with knobs for the
/// negative tests. Each part is disposable where it holds a key.
/// </summary>
internal sealed class TestOrganisation : IDisposable
{
    private readonly Key root;
    private readonly Key issuer;
    private readonly Key responder;

    public TestOrganisation(
        byte[]? orgId = null,
        long issuerNotBefore = Vectors.IssuerNotBefore,
        long issuerNotAfter = Vectors.IssuerNotAfter,
        long responderNotBefore = Vectors.ResponderNotBefore,
        long responderNotAfter = Vectors.ResponderNotAfter,
        bool fresh = false)
    {
        OrgId = orgId ?? Vectors.OrgId;
        responderSeed = fresh ? RandomNumberGenerator.GetBytes(32) : Vectors.ResponderSeed;
        root = Vectors.Ed25519(fresh ? RandomNumberGenerator.GetBytes(32) : Vectors.RootSeed);
        issuer = Vectors.Ed25519(fresh ? RandomNumberGenerator.GetBytes(32) : Vectors.IssuerSeed);
        responder = Vectors.Ed25519(responderSeed);
        IssuerCertificate = Certificate.Issue(root, CertificateRole.Issuer, OrgId, IssuerPublic, issuerNotBefore, issuerNotAfter);
        ResponderCertificate = Certificate.Issue(issuer, CertificateRole.Responder, OrgId, ResponderPublic, responderNotBefore, responderNotAfter);
        Pin = new OrganisationPin(OrgId, [RootPublic]);
    }

    public byte[] OrgId { get; }

    public Key RootKey => root;

    public Key IssuerKey => issuer;

    public byte[] RootPublic => root.PublicKey.Export(KeyBlobFormat.RawPublicKey);

    public byte[] IssuerPublic => issuer.PublicKey.Export(KeyBlobFormat.RawPublicKey);

    public byte[] ResponderPublic => responder.PublicKey.Export(KeyBlobFormat.RawPublicKey);

    public Certificate IssuerCertificate { get; }

    public Certificate ResponderCertificate { get; set; }

    public OrganisationPin Pin { get; }

    /// <summary>Credentials over a copy of the responder key (the credentials own and dispose it).</summary>
    public ResponderCredentials Credentials(Certificate? issuerCertificate = null, Certificate? responderCertificate = null)
    {
        var copy = Vectors.Ed25519(responderSeed);
        return new ResponderCredentials(copy, issuerCertificate ?? IssuerCertificate, responderCertificate ?? ResponderCertificate);
    }

    /// <summary>Another counsellor's device: a fresh responder key certified by this organisation's issuer.</summary>
    public ResponderCredentials AnotherResponder()
    {
        var key = Vectors.Ed25519(RandomNumberGenerator.GetBytes(32));
        var certificate = Certificate.Issue(issuer, CertificateRole.Responder, OrgId, key.PublicKey.Export(KeyBlobFormat.RawPublicKey),
            ResponderCertificate.NotBefore, ResponderCertificate.NotAfter);
        return new ResponderCredentials(key, IssuerCertificate, certificate);
    }

    public void Dispose()
    {
        root.Dispose();
        issuer.Dispose();
        responder.Dispose();
    }

    private readonly byte[] responderSeed;
}
