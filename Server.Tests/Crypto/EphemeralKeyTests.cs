using NSec.Cryptography;
using TrustLine.Protocol.Crypto;

namespace TrustLine.Server.Tests.Crypto;

/// <summary>
/// The raw X25519 path every handshake's ephemeral key takes (<see cref="EphemeralKey"/>): the RFC 7748 vectors
/// through it, the refusals PROTOCOL.md §2 asks for, agreement with NSec's own X25519, and zeroing.
/// </summary>
public sealed class EphemeralKeyTests
{
    private static byte[] Hex(string hex) => Convert.FromHexString(hex);

    // RFC 7748 §5.2. The second u has its top bit set: X25519 masks it, the protocol refuses it (§2), so the
    // vector is checked with the bit cleared, and the unmasked key is checked to be refused.
    [TestCaseSource(typeof(StandardVectorTests), nameof(StandardVectorTests.X25519Section5_2))]
    public void RawPathMatchesRfc7748Section5_2(string scalar, string u, string expected)
    {
        var peer = Hex(u);
        var topBitSet = (peer[31] & 0x80) != 0;
        using var key = EphemeralKey.Import(Hex(scalar));
        var shared = new byte[32];
        var refusedAsSent = !key.TryAgree(peer, shared);
        peer[31] &= 0x7f;

        Assert.Multiple(() =>
        {
            Assert.That(refusedAsSent, Is.EqualTo(topBitSet));
            Assert.That(key.TryAgree(peer, shared), Is.True);
            Assert.That(shared, Is.EqualTo(Hex(expected)));
        });
    }

    [Test]
    public void RawPathMatchesRfc7748Section6_1()
    {
        var shared = Hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
        using var alice = EphemeralKey.Import(Hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"));
        using var bob = EphemeralKey.Import(Hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"));
        var aliceShared = new byte[32];
        var bobShared = new byte[32];

        Assert.Multiple(() =>
        {
            Assert.That(alice.PublicKey.ToArray(), Is.EqualTo(Hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")));
            Assert.That(bob.PublicKey.ToArray(), Is.EqualTo(Hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")));
            Assert.That(alice.TryAgree(bob.PublicKey, aliceShared) && bob.TryAgree(alice.PublicKey, bobShared), Is.True);
            Assert.That(aliceShared, Is.EqualTo(shared));
            Assert.That(bobShared, Is.EqualTo(shared));
        });
    }

    [Test]
    public void FreshKeysAgreeWithNSecsX25519BothWays()
    {
        for (var i = 0; i < 32; i++)
        {
            using var ephemeral = EphemeralKey.Create();
            using var nsec = Key.Create(KeyAgreementAlgorithm.X25519);
            var nsecPublic = nsec.PublicKey.Export(KeyBlobFormat.RawPublicKey);
            nsecPublic[31] &= 0x7f; // the export's top bit is already clear; kept explicit for the refusal rule
            var raw = new byte[32];
            Assert.That(ephemeral.TryAgree(nsecPublic, raw), Is.True);
            using var shared = KeyAgreementAlgorithm.X25519.Agree(nsec,
                PublicKey.Import(KeyAgreementAlgorithm.X25519, ephemeral.PublicKey, KeyBlobFormat.RawPublicKey),
                new SharedSecretCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport })!;
            Assert.That(raw, Is.EqualTo(shared.Export(SharedSecretBlobFormat.RawSharedSecret)), $"key pair {i}");
        }
    }

    // Low-order points (u = 0 and u = 1 give an all-zero result), a short key, a long key, and a top bit.
    [TestCase("0000000000000000000000000000000000000000000000000000000000000000")]
    [TestCase("0100000000000000000000000000000000000000000000000000000000000000")]
    [TestCase("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")]
    [TestCase("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157")]
    [TestCase("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b")]
    [TestCase("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f00")]
    [TestCase("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882bcf")]
    public void RefusedPeerKeysGiveNoSharedSecret(string peer)
    {
        using var key = EphemeralKey.Create();
        var shared = Enumerable.Repeat((byte)0xaa, 32).ToArray();

        Assert.Multiple(() =>
        {
            Assert.That(key.TryAgree(Hex(peer), shared), Is.False);
            Assert.That(shared, Is.All.EqualTo((byte)0), "nothing of a refused agreement is left");
        });
    }

    [Test]
    public void DisposingZeroesThePrivateKeyAndRefusesFurtherUse()
    {
        var key = EphemeralKey.Create();
        var before = key.CopyForTests();
        key.Dispose();

        Assert.Multiple(() =>
        {
            Assert.That(before, Has.Some.Not.EqualTo((byte)0));
            Assert.That(key.IsZeroedForTests, Is.True);
            Assert.That(() => key.TryAgree(new byte[32], new byte[32]), Throws.TypeOf<ObjectDisposedException>());
        });
    }
}
