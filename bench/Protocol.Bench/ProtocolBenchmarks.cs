using BenchmarkDotNet.Attributes;
using NSec.Cryptography;
using TrustLine.Protocol.Crypto;

namespace TrustLine.Protocol.Bench;

/// <summary>One organisation with random keys, as a real deployment has.</summary>
public sealed class BenchOrganisation : IDisposable
{
    private readonly Key root = Key.Create(SignatureAlgorithm.Ed25519);
    private readonly Key issuer = Key.Create(SignatureAlgorithm.Ed25519);

    public BenchOrganisation()
    {
        var orgId = new byte[16];
        System.Security.Cryptography.RandomNumberGenerator.Fill(orgId);
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var responderKey = Key.Create(SignatureAlgorithm.Ed25519);
        var issuerCert = Certificate.Issue(root, CertificateRole.Issuer, orgId, issuer.PublicKey.Export(KeyBlobFormat.RawPublicKey), now - 60, now + 80 * 86400);
        var responderCert = Certificate.Issue(issuer, CertificateRole.Responder, orgId, responderKey.PublicKey.Export(KeyBlobFormat.RawPublicKey), now - 60, now + 10 * 86400);
        Credentials = new ResponderCredentials(responderKey, issuerCert, responderCert);
        Pin = new OrganisationPin(orgId, [root.PublicKey.Export(KeyBlobFormat.RawPublicKey)]);
    }

    public ResponderCredentials Credentials { get; }

    public OrganisationPin Pin { get; }

    public (SecureChannel Seeker, SecureChannel Responder) Connect()
    {
        using var handshake = SeekerHandshake.Start(Pin);
        var accepted = ResponderHandshake.Accept(handshake.Msg1, Credentials);
        var seeker = handshake.Complete(accepted.Msg2).Channel!;
        accepted.Channel!.TryOpen(seeker.SealHello());
        return (seeker, accepted.Channel!);
    }

    public void Dispose()
    {
        Credentials.Dispose();
        root.Dispose();
        issuer.Dispose();
    }
}

/// <summary>Seal on one end and open on the other, per padding bucket (PROTOCOL.md §3).</summary>
[MemoryDiagnoser]
[ShortRunJob]
public class EnvelopeBenchmarks
{
    private BenchOrganisation org = null!;
    private SecureChannel seeker = null!;
    private SecureChannel responder = null!;
    private byte[] body = [];

    /// <summary>Body sizes that fill the 256, 1024, 4096 and 16384 buckets.</summary>
    [Params(200, 1000, 4000, 16000)]
    public int BodySize { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        org = new BenchOrganisation();
        (seeker, responder) = org.Connect();
        body = new byte[BodySize];
        Array.Fill(body, (byte)'a');
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        seeker.Dispose();
        responder.Dispose();
        org.Dispose();
    }

    [Benchmark]
    public int SealAndOpen()
    {
        var envelope = seeker.Seal(ContentType.Text, body);
        var opened = responder.TryOpen(envelope);
        // Keep the outbox from growing: the relay would have acknowledged it.
        seeker.Acknowledge(opened.Messages[0].Sequence);
        return opened.Messages.Count;
    }
}

/// <summary>A whole handshake: msg1, msg2 with chain and signature, verification and key derivation on both sides, and the HELLO.</summary>
[MemoryDiagnoser]
[ShortRunJob]
public class HandshakeBenchmarks
{
    private BenchOrganisation org = null!;

    [GlobalSetup]
    public void Setup() => org = new BenchOrganisation();

    [GlobalCleanup]
    public void Cleanup() => org.Dispose();

    [Benchmark]
    public bool FullHandshake()
    {
        var (seeker, responder) = org.Connect();
        var established = responder.IsEstablished;
        seeker.Dispose();
        responder.Dispose();
        return established;
    }
}

/// <summary>
/// What one NSec <see cref="Key"/> costs: every message key becomes one (PROTOCOL.md §3), and each lives in
/// libsodium guarded memory. The baseline that explains the envelope figures.
/// </summary>
[MemoryDiagnoser]
[ShortRunJob]
public class KeyCostBenchmarks
{
    private readonly byte[] raw = new byte[32];
    private readonly byte[] nonce = new byte[12];
    private readonly byte[] plain = new byte[256];
    private readonly byte[] sealedBytes = new byte[256 + 16];

    [Benchmark(Baseline = true)]
    public int ImportAndDisposeKey()
    {
        using var key = Key.Import(AeadAlgorithm.ChaCha20Poly1305, raw, KeyBlobFormat.RawSymmetricKey);
        return key.Size;
    }

    [Benchmark]
    public int ImportEncryptDispose()
    {
        using var key = Key.Import(AeadAlgorithm.ChaCha20Poly1305, raw, KeyBlobFormat.RawSymmetricKey);
        AeadAlgorithm.ChaCha20Poly1305.Encrypt(key, nonce, [], plain, sealedBytes);
        return sealedBytes[0];
    }

    [Benchmark]
    public int HkdfExpand()
    {
        Span<byte> output = stackalloc byte[32];
        KeyDerivationAlgorithm.HkdfSha256.Expand(raw, "TrustLine/v1/mk"u8, output);
        return output[0];
    }
}
