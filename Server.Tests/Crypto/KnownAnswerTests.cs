using System.Text;
using TrustLine.Protocol.Crypto;
using Sha = NSec.Cryptography.HashAlgorithm;

namespace TrustLine.Server.Tests.Crypto;

/// <summary>PROTOCOL.md §8, byte for byte.</summary>
public sealed class KnownAnswerTests
{
    private static byte[] Hex(string hex) => Convert.FromHexString(hex);

    [Test]
    public void CertificateSignaturesMatchSection8()
    {
        using var org = new TestOrganisation();

        Assert.Multiple(() =>
        {
            Assert.That(org.IssuerCertificate.Signature.ToArray(), Is.EqualTo(Hex("e0b6672ce4e069886d0a184d933f8f5d82b730b6b701fae28337635f5a88ec119c7fefb374e1a46eb57dade4b88a8dcb9e8f4c9d83aeb2a6236b00401fbe0403")));
            Assert.That(org.ResponderCertificate.Signature.ToArray(), Is.EqualTo(Hex("75463797db2782e698c4a8f6b2ff371eb3a319803a5a6ae53f5c624f77cc6eb6ae7483f1def7d5eab51dc771b52fac87a8d98db07ea5fe98542a1420c6673c0a")));
            Assert.That(org.IssuerCertificate.Encoded.Length, Is.EqualTo(133));
        });
    }

    [Test]
    public void HandshakeMatchesSection8()
    {
        using var world = KnownAnswerWorld.Create();
        var msg2 = world.Msg2;

        Assert.Multiple(() =>
        {
            Assert.That(msg2, Has.Length.EqualTo(364));
            Assert.That(msg2[300..], Is.EqualTo(Hex("a6eb992c62885038bbbdb3987d3419aea381a24d9663145663fe495622e1c0994ae8d7029ced8659d438498511a5d9568d0c1bcbf83ec99b337195efb6e0af06")));
            Assert.That(Sha.Sha256.Hash(msg2), Is.EqualTo(Hex("a04e69aa2ce349b61656b872f4a75c3886e71f0f7388c7ea619a33077bf177f3")));
            Assert.That(world.Seeker.TranscriptHash.ToArray(), Is.EqualTo(Hex("72a86e3f4fcc659b5839bd3b2cdcfa2d403e399e2186cbc68ba0cc2771fdad03")));
            Assert.That(world.Responder.TranscriptHash.ToArray(), Is.EqualTo(world.Seeker.TranscriptHash.ToArray()));
            Assert.That(world.Seeker.CopySendChainForTests(), Is.EqualTo(Hex("b8f49d339f997b73ad4c7576bb46fc136e7d8e416c79cbad972718f6db50b00e")));
            Assert.That(world.Seeker.CopyReceiveChainForTests(), Is.EqualTo(Hex("3ce769dfd3ecf8127663cc98fd06b262b8326dd75aab0b9371b6babe084a02fc")));
            Assert.That(world.Responder.CopyReceiveChainForTests(), Is.EqualTo(Hex("b8f49d339f997b73ad4c7576bb46fc136e7d8e416c79cbad972718f6db50b00e")));
            Assert.That(world.Responder.CopySendChainForTests(), Is.EqualTo(Hex("3ce769dfd3ecf8127663cc98fd06b262b8326dd75aab0b9371b6babe084a02fc")));
        });
    }

    [Test]
    public void FirstEnvelopeAndRatchetStepMatchSection8()
    {
        using var world = KnownAnswerWorld.Create();
        var chain = world.Seeker.CopySendChainForTests();
        var messageKey = NSec.Cryptography.KeyDerivationAlgorithm.HkdfSha256.Expand(chain, "TrustLine/v1/mk"u8, 32);

        // §8 seals TEXT "Hoi" as c2s seq 0 (without the HELLO that §2 puts first): padded by hand here.
        var padded = new byte[256];
        padded[0] = (byte)ContentType.Text;
        padded[2] = 3;
        Encoding.UTF8.GetBytes("Hoi").CopyTo(padded, 3);
        var envelope = world.Seeker.SealPaddedForTests(padded);

        Assert.Multiple(() =>
        {
            Assert.That(messageKey, Is.EqualTo(Hex("d6e28f5f2dcbb285071ad65048299f1a95df07ddaf433ed49e406d2bd4c9212a")));
            Assert.That(world.Seeker.CopySendChainForTests(), Is.EqualTo(Hex("704701ac8b0166e7bc3edbed7133f8831b43ca2d84d936a8018f6b47d02e3124")));
            Assert.That(envelope, Has.Length.EqualTo(299));
            Assert.That(Sha.Sha256.Hash(envelope), Is.EqualTo(Hex("1eaf2c843e035b7418348f2257e713251651984ba0e582c4eb4b50807e957390")));
            Assert.That(envelope[^16..], Is.EqualTo(Hex("5e6f2ebc9155374c55191ade16bfb635")));
        });
    }

    [Test]
    public void ReturningTagMatchesSection8AndTheResponderAcceptsIt()
    {
        using var world = KnownAnswerWorld.Create();
        Assert.That(Pseudonym.TryImport(Vectors.Pseudonym, out var pseudonym), Is.True);
        using var _ = pseudonym;

        var hello = world.Seeker.SealHello(pseudonym);
        var opened = world.Responder.TryOpen(hello);

        Assert.Multiple(() =>
        {
            Assert.That(pseudonym!.PublicKey, Is.EqualTo(Hex("1c9fd88f45606d932a80c71824ae151d15d73e77de38e8e000852e614fae7019")));
            Assert.That(pseudonym.Prove(world.Msg2.AsSpan(2, 32), world.Seeker.TranscriptHash),
                Is.EqualTo(Hex("5fca8071b3a42b716b30a4f2eb85e3a26ab389cae467fc0494d53bd1507504ca")));
            Assert.That(opened.Status, Is.EqualTo(OpenStatus.Delivered));
            Assert.That(opened.Messages[0].Hello!.IsReturning, Is.True);
            Assert.That(opened.Messages[0].Hello!.PseudonymPublicKey, Is.EqualTo(pseudonym.PublicKey));
            Assert.That(world.Responder.IsEstablished, Is.True);
        });
    }
}

/// <summary>Both ends of the §8 handshake at the §8 time.</summary>
internal sealed class KnownAnswerWorld : IDisposable
{
    private readonly TestOrganisation org;
    private readonly SeekerHandshake seekerHandshake;

    private KnownAnswerWorld(TestOrganisation org, SeekerHandshake seekerHandshake, SecureChannel seeker, SecureChannel responder, byte[] msg2)
    {
        this.org = org;
        this.seekerHandshake = seekerHandshake;
        Seeker = seeker;
        Responder = responder;
        Msg2 = msg2;
    }

    public SecureChannel Seeker { get; }

    public SecureChannel Responder { get; }

    public byte[] Msg2 { get; }

    public static KnownAnswerWorld Create()
    {
        var org = new TestOrganisation();
        var clock = Vectors.Clock();
        var handshake = SeekerHandshake.StartDeterministic(org.Pin, Vectors.SeekerEphemeral, Vectors.SessionId, clock);
        using var credentials = org.Credentials();
        var accepted = ResponderHandshake.AcceptDeterministic(handshake.Msg1, credentials, Vectors.ResponderEphemeral, clock);
        Assert.That(accepted.Error, Is.EqualTo(HandshakeError.None));
        var completed = handshake.Complete(accepted.Msg2);
        Assert.That(completed.Error, Is.EqualTo(HandshakeError.None), $"chain: {completed.ChainError}");
        return new KnownAnswerWorld(org, handshake, completed.Channel!, accepted.Channel!, accepted.Msg2!);
    }

    public void Dispose()
    {
        Seeker.Dispose();
        Responder.Dispose();
        seekerHandshake.Dispose();
        org.Dispose();
    }
}
