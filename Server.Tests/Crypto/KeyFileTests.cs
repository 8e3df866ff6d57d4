using System.Text.Json.Nodes;
using NSec.Cryptography;
using TrustLine.Protocol.Crypto;

namespace TrustLine.Server.Tests.Crypto;

public sealed class KeyFileTests
{
    // Cheap Argon2id for tests; the default cost is what users get.
    private static readonly KeyFileCost Cheap = new(MemoryKiB: 1024, Passes: 1);

    [Test]
    public void KeyFileRoundTripsAndTheKeySignsAsBefore()
    {
        var text = KeyFile.Create(KeyKind.Responder, "correct horse", out var created, Cheap);
        using var createdKey = created;
        var signature = SignatureAlgorithm.Ed25519.Sign(created, "hello"u8);

        var error = KeyFile.TryOpen(text, "correct horse", out var kind, out var opened);
        using var __ = opened;

        Assert.Multiple(() =>
        {
            Assert.That(error, Is.EqualTo(KeyFileError.None));
            Assert.That(kind, Is.EqualTo(KeyKind.Responder));
            Assert.That(SignatureAlgorithm.Ed25519.Sign(opened!, "hello"u8), Is.EqualTo(signature));
            Assert.That(KeyFile.TryReadPublic(text, out _, out var publicKey), Is.True);
            Assert.That(publicKey, Is.EqualTo(created.PublicKey.Export(KeyBlobFormat.RawPublicKey)));
        });
    }

    [Test]
    public void WrongPassphraseIsToldApartFromDamage()
    {
        var text = KeyFile.Create(KeyKind.Root, "right", out var key, Cheap);
        key.Dispose();

        Assert.That(KeyFile.TryOpen(text, "wrong", out _, out var opened), Is.EqualTo(KeyFileError.WrongPassphrase));
        Assert.That(opened, Is.Null);
    }

    [TestCase("ciphertext")]
    [TestCase("nonce")]
    [TestCase("publicKey")]
    [TestCase("kind")]
    public void EditedFieldMakesTheFileDamaged(string field)
    {
        var text = KeyFile.Create(KeyKind.Issuer, "pass", out var key, Cheap);
        key.Dispose();
        var json = JsonNode.Parse(text)!.AsObject();
        json[field] = field switch
        {
            "kind" => "root",
            "publicKey" => new string('0', 64),
            _ => Convert.ToBase64String(Flip(Convert.FromBase64String((string)json[field]!))),
        };

        Assert.That(KeyFile.TryOpen(json.ToJsonString(), "pass", out _, out _), Is.EqualTo(KeyFileError.Damaged));
    }

    [TestCase("")]
    [TestCase("not json at all")]
    [TestCase("{\"format\":\"something-else\"}")]
    [TestCase("{\"format\":\"trustline-private-key\",\"version\":1}")]
    public void UnreadableFileIsDamaged(string text)
    {
        Assert.That(KeyFile.TryOpen(text, "pass", out _, out _), Is.EqualTo(KeyFileError.Damaged));
    }

    [Test]
    public void NewerFormatVersionIsNamed()
    {
        var text = KeyFile.Create(KeyKind.Issuer, "pass", out var key, Cheap);
        key.Dispose();
        var json = JsonNode.Parse(text)!.AsObject();
        json["version"] = 2;

        var error = KeyFile.TryOpen(json.ToJsonString(), "pass", out _, out _);

        Assert.That(error, Is.EqualTo(KeyFileError.UnsupportedVersion));
        Assert.That(KeyFile.Describe(error), Does.Contain("newer"));
    }

    [Test]
    public void ExcessiveCostInAFileIsRefusedBeforeHashing()
    {
        var text = KeyFile.Create(KeyKind.Issuer, "pass", out var key, Cheap);
        key.Dispose();
        var json = JsonNode.Parse(text)!.AsObject();
        json["kdf"]!["memoryKiB"] = int.MaxValue;

        Assert.That(KeyFile.TryOpen(json.ToJsonString(), "pass", out _, out _), Is.EqualTo(KeyFileError.Damaged));
    }

    [Test]
    public void PublicMaterialRoundTripsAsText()
    {
        using var org = new TestOrganisation();

        Assert.Multiple(() =>
        {
            Assert.That(PublicText.TryParseKey(PublicText.Key(org.RootPublic), out var root), Is.True);
            Assert.That(root, Is.EqualTo(org.RootPublic));
            Assert.That(PublicText.TryParseOrgId(PublicText.OrgId(org.OrgId), out var orgId), Is.True);
            Assert.That(orgId, Is.EqualTo(org.OrgId));
            Assert.That(PublicText.TryParseCertificate(PublicText.Certificate(org.ResponderCertificate), out var cert), Is.True);
            Assert.That(cert!.Encoded.ToArray(), Is.EqualTo(org.ResponderCertificate.Encoded.ToArray()));
            Assert.That(PublicText.TryParseKey("zz", out _), Is.False);
            Assert.That(PublicText.TryParseCertificate("AAAA", out _), Is.False);
        });
    }

    [Test]
    public void SelfTestPassesWithTheShippedNativeLibrary()
    {
        Assert.That(CryptoSelfTest.Run(), Is.Null);
        Assert.DoesNotThrow(CryptoSelfTest.EnsureWorking);
    }

    private static byte[] Flip(byte[] bytes)
    {
        bytes[0] ^= 0x01;
        return bytes;
    }
}
