using System.Text;
using NSec.Cryptography;

namespace TrustLine.Server.Tests.Crypto;

/// <summary>Standard vectors through the NSec calls the protocol itself makes (PROTOCOL.md §7).</summary>
public sealed class StandardVectorTests
{
    private static byte[] Hex(string hex) => Convert.FromHexString(hex);

    /// <summary>RFC 7748 §5.2: the two scalar-multiplication vectors (scalar, u, result; the second u has its top bit set; X25519 masks it).</summary>
    internal static readonly object[] X25519Section5_2 =
    [
        new object[]
        {
            "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
            "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
            "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
        },
        new object[]
        {
            "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
            "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
            "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
        },
    ];

    [TestCaseSource(nameof(X25519Section5_2))]
    public void X25519MatchesRfc7748Section5_2(string scalar, string u, string expected)
    {
        Assert.That(Agree(Hex(scalar), Hex(u)), Is.EqualTo(Hex(expected)));
    }

    [Test]
    public void X25519MatchesRfc7748Section6_1()
    {
        var alice = Hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        var bob = Hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
        var alicePublic = Hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
        var bobPublic = Hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
        var shared = Hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");

        using var aliceKey = Key.Import(KeyAgreementAlgorithm.X25519, alice, KeyBlobFormat.RawPrivateKey);
        using var bobKey = Key.Import(KeyAgreementAlgorithm.X25519, bob, KeyBlobFormat.RawPrivateKey);

        Assert.Multiple(() =>
        {
            Assert.That(aliceKey.PublicKey.Export(KeyBlobFormat.RawPublicKey), Is.EqualTo(alicePublic));
            Assert.That(bobKey.PublicKey.Export(KeyBlobFormat.RawPublicKey), Is.EqualTo(bobPublic));
            Assert.That(Agree(alice, bobPublic), Is.EqualTo(shared));
            Assert.That(Agree(bob, alicePublic), Is.EqualTo(shared));
        });
    }

    // RFC 8032 §7.1 TEST 1, TEST 2, TEST 3 and TEST SHA(abc).
    [TestCase("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b")]
    [TestCase("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00")]
    [TestCase("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a")]
    [TestCase("833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
        "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704")]
    public void Ed25519MatchesRfc8032Section7_1(string secret, string publicKey, string message, string signature)
    {
        using var key = Key.Import(SignatureAlgorithm.Ed25519, Hex(secret), KeyBlobFormat.RawPrivateKey);
        var signed = SignatureAlgorithm.Ed25519.Sign(key, Hex(message));

        Assert.Multiple(() =>
        {
            Assert.That(key.PublicKey.Export(KeyBlobFormat.RawPublicKey), Is.EqualTo(Hex(publicKey)));
            Assert.That(signed, Is.EqualTo(Hex(signature)));
            Assert.That(SignatureAlgorithm.Ed25519.Verify(key.PublicKey, Hex(message), signed), Is.True);
        });
    }

    // RFC 5869 A.1, A.2 and A.3 (HKDF-SHA-256).
    [TestCase("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "000102030405060708090a0b0c", "f0f1f2f3f4f5f6f7f8f9", 42,
        "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")]
    [TestCase("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f",
        "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
        "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff", 82,
        "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
        "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87")]
    [TestCase("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "", "", 42,
        "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8")]
    public void HkdfSha256MatchesRfc5869AppendixA(string ikm, string salt, string info, int length, string prk, string okm)
    {
        var extracted = KeyDerivationAlgorithm.HkdfSha256.Extract(Hex(ikm), Hex(salt));
        var expanded = KeyDerivationAlgorithm.HkdfSha256.Expand(extracted, Hex(info), length);

        Assert.Multiple(() =>
        {
            Assert.That(extracted, Is.EqualTo(Hex(prk)));
            Assert.That(expanded, Is.EqualTo(Hex(okm)));
        });
    }

    [Test]
    public void ChaCha20Poly1305MatchesRfc8439Section2_8_2()
    {
        var plaintext = Encoding.ASCII.GetBytes("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.");
        var ad = Hex("50515253c0c1c2c3c4c5c6c7");
        var nonce = Hex("070000004041424344454647");
        var expected = Hex(
            "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116"
            + "1ae10b594f09e26a7e902ecbd0600691");
        using var key = Key.Import(AeadAlgorithm.ChaCha20Poly1305, Hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"), KeyBlobFormat.RawSymmetricKey);

        var sealedBytes = AeadAlgorithm.ChaCha20Poly1305.Encrypt(key, nonce, ad, plaintext);

        Assert.Multiple(() =>
        {
            Assert.That(sealedBytes, Is.EqualTo(expected));
            Assert.That(AeadAlgorithm.ChaCha20Poly1305.Decrypt(key, nonce, ad, sealedBytes), Is.EqualTo(plaintext));
        });
    }

    [Test]
    public void RawMessageKeyPathMatchesRfc8439Section2_8_2()
    {
        var plaintext = Encoding.ASCII.GetBytes("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.");
        var ad = Hex("50515253c0c1c2c3c4c5c6c7");
        var nonce = Hex("070000004041424344454647");
        var key = Hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
        var sealedBytes = new byte[plaintext.Length + 16];
        var opened = new byte[plaintext.Length];

        Protocol.Crypto.MessageCipher.Encrypt(key, nonce, ad, plaintext, sealedBytes);
        var ok = Protocol.Crypto.MessageCipher.TryDecrypt(key, nonce, ad, sealedBytes, opened);
        sealedBytes[^1] ^= 1;
        var forged = Protocol.Crypto.MessageCipher.TryDecrypt(key, nonce, ad, sealedBytes, opened);

        Assert.Multiple(() =>
        {
            Assert.That(Convert.ToHexStringLower(sealedBytes[..^1]), Does.StartWith("d31a8d34648e60db7b86afbc53ef7ec2"));
            Assert.That(sealedBytes[^16..^1], Is.EqualTo(Hex("1ae10b594f09e26a7e902ecbd06006")));
            Assert.That(ok, Is.True);
            Assert.That(forged, Is.False, "a flipped tag bit is refused");
            Assert.That(opened, Is.All.EqualTo((byte)0), "a refused open leaves no plaintext");
        });
    }

    private static byte[] Agree(byte[] scalar, byte[] u)
    {
        using var key = Key.Import(KeyAgreementAlgorithm.X25519, scalar, KeyBlobFormat.RawPrivateKey);
        var peer = PublicKey.Import(KeyAgreementAlgorithm.X25519, u, KeyBlobFormat.RawPublicKey);
        using var shared = KeyAgreementAlgorithm.X25519.Agree(key, peer, new SharedSecretCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport })!;
        return shared.Export(SharedSecretBlobFormat.RawSharedSecret);
    }
}
