using TrustLine.Protocol.Crypto;

namespace TrustLine.Server.Tests.Crypto;

/// <summary>PROTOCOL.md §1, §2 and §7: every way a chain or a handshake is refused.</summary>
public sealed class HandshakeNegativeTests
{
    private const long Day = 86400;

    private static readonly byte[][] LowOrderPoints =
    [
        new byte[32],
        Convert.FromHexString("0100000000000000000000000000000000000000000000000000000000000000"),
        Convert.FromHexString("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
        Convert.FromHexString("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
        Convert.FromHexString("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    ];

    [Test]
    public void ValidChainIsAccepted()
    {
        using var org = new TestOrganisation();

        Assert.That(Verify(org, org.IssuerCertificate, org.ResponderCertificate), Is.EqualTo(ChainError.None));
    }

    [Test]
    public void ChainUnderAWrongPinnedRootIsRefused()
    {
        using var org = new TestOrganisation();
        using var other = new TestOrganisation(fresh: true);
        var wrongPin = new OrganisationPin(org.OrgId, [other.RootPublic]);

        Assert.That(CertificateChain.Verify(org.IssuerCertificate, org.ResponderCertificate, wrongPin, Vectors.Now), Is.EqualTo(ChainError.IssuerNotSignedByPinnedRoot));
    }

    [Test]
    public void BackupRootIsAcceptedToo()
    {
        using var org = new TestOrganisation();
        using var other = new TestOrganisation(fresh: true);
        var pin = new OrganisationPin(org.OrgId, [other.RootPublic, org.RootPublic]);

        Assert.That(CertificateChain.Verify(org.IssuerCertificate, org.ResponderCertificate, pin, Vectors.Now), Is.EqualTo(ChainError.None));
    }

    [Test]
    public void CertificateOfAnotherOrganisationIsRefused()
    {
        using var org = new TestOrganisation();
        var otherOrg = Enumerable.Repeat((byte)0x22, 16).ToArray();
        var foreignResponder = Certificate.Issue(org.IssuerKey, CertificateRole.Responder, otherOrg, org.ResponderPublic, Vectors.ResponderNotBefore, Vectors.ResponderNotAfter);

        Assert.Multiple(() =>
        {
            Assert.That(Verify(org, org.IssuerCertificate, foreignResponder), Is.EqualTo(ChainError.OtherOrganisation));
            Assert.That(CertificateChain.Verify(org.IssuerCertificate, org.ResponderCertificate, new OrganisationPin(otherOrg, [org.RootPublic]), Vectors.Now),
                Is.EqualTo(ChainError.OtherOrganisation));
        });
    }

    [Test]
    public void ResponderCertificateNotSignedByTheIssuerIsRefused()
    {
        using var org = new TestOrganisation();
        var selfMade = Certificate.Issue(org.RootKey, CertificateRole.Responder, org.OrgId, org.ResponderPublic, Vectors.ResponderNotBefore, Vectors.ResponderNotAfter);

        Assert.That(Verify(org, org.IssuerCertificate, selfMade), Is.EqualTo(ChainError.ResponderNotSignedByIssuer));
    }

    [Test]
    public void ExpiredCertificateIsRefused()
    {
        using var org = new TestOrganisation();

        Assert.Multiple(() =>
        {
            Assert.That(CertificateChain.Verify(org.IssuerCertificate, org.ResponderCertificate, org.Pin, Vectors.ResponderNotAfter + 1), Is.EqualTo(ChainError.Expired));
            Assert.That(CertificateChain.Verify(org.IssuerCertificate, org.ResponderCertificate, org.Pin, Vectors.ResponderNotAfter), Is.EqualTo(ChainError.None));
        });
    }

    [Test]
    public void NotYetValidCertificateIsRefusedBeyondFiveMinutesOfSkew()
    {
        using var org = new TestOrganisation();

        Assert.Multiple(() =>
        {
            Assert.That(CertificateChain.Verify(org.IssuerCertificate, org.ResponderCertificate, org.Pin, Vectors.ResponderNotBefore - 301), Is.EqualTo(ChainError.NotYetValid));
            Assert.That(CertificateChain.Verify(org.IssuerCertificate, org.ResponderCertificate, org.Pin, Vectors.ResponderNotBefore - 300), Is.EqualTo(ChainError.None));
        });
    }

    [Test]
    public void ResponderCertificateOutlivingItsIssuerIsRefused()
    {
        using var org = new TestOrganisation(issuerNotAfter: Vectors.ResponderNotAfter - 1);

        Assert.That(Verify(org, org.IssuerCertificate, org.ResponderCertificate), Is.EqualTo(ChainError.ResponderOutlivesIssuer));
    }

    [Test]
    public void ResponderCertificateLastingMoreThanFourteenDaysIsRefused()
    {
        using var org = new TestOrganisation(responderNotAfter: Vectors.ResponderNotBefore + (14 * Day) + 1);

        Assert.That(Verify(org, org.IssuerCertificate, org.ResponderCertificate), Is.EqualTo(ChainError.LifetimeTooLong));
    }

    [Test]
    public void IssuerCertificateLastingMoreThanNinetyDaysIsRefused()
    {
        using var org = new TestOrganisation(issuerNotAfter: Vectors.IssuerNotBefore + (90 * Day) + 1);

        Assert.That(Verify(org, org.IssuerCertificate, org.ResponderCertificate), Is.EqualTo(ChainError.LifetimeTooLong));
    }

    [Test]
    public void IssuerCertificatePresentedAsAResponderIsRefused()
    {
        using var org = new TestOrganisation();

        Assert.Multiple(() =>
        {
            Assert.That(Verify(org, org.IssuerCertificate, org.IssuerCertificate), Is.EqualTo(ChainError.WrongRole));
            Assert.That(Verify(org, org.ResponderCertificate, org.ResponderCertificate), Is.EqualTo(ChainError.WrongRole));
        });
    }

    [Test]
    public void MalformedCertificateIsRefused()
    {
        using var org = new TestOrganisation();
        var bad = org.ResponderCertificate.ToArray();
        bad[0] = (byte)'X';

        Assert.That(CertificateChain.Verify(org.IssuerCertificate.Encoded, bad, org.Pin, Vectors.Now, out _), Is.EqualTo(ChainError.Malformed));
    }

    [TestCase(19, TestName = "SeekerRefusesMsg2WhenTheRelayAlteredTheSessionIdInMsg1")]
    [TestCase(3, TestName = "SeekerRefusesMsg2WhenTheRelayAlteredTheOrgIdInMsg1")]
    [TestCase(40, TestName = "SeekerRefusesMsg2WhenTheRelayAlteredTheSeekerEphemeralInMsg1")]
    public void SeekerRefusesMsg2WhenMsg1WasAltered(int offset)
    {
        using var org = new TestOrganisation();
        var clock = Vectors.Clock();
        using var handshake = SeekerHandshake.Start(org.Pin, clock);
        var altered = handshake.Msg1.ToArray();
        altered[offset] ^= 0x01;
        using var credentials = org.Credentials();
        // A responder of the altered org_id is simulated by signing whatever msg1 the relay delivered.
        var forgedOrg = offset == 3 ? new TestOrganisation(orgId: altered[3..19]) : null;
        using var forgedCredentials = forgedOrg?.Credentials();
        var accepted = ResponderHandshake.Accept(altered, forgedCredentials ?? credentials, clock);
        forgedOrg?.Dispose();
        Assume.That(accepted.Succeeded, Is.True);
        using var _ = accepted.Channel;

        var result = handshake.Complete(accepted.Msg2);

        Assert.That(result.Error, Is.AnyOf(HandshakeError.BadSignature, HandshakeError.CertificateChain));
        Assert.That(result.Channel, Is.Null);
    }

    [Test]
    public void SeekerRefusesMsg2WhenTheResponderEphemeralWasAltered()
    {
        using var org = new TestOrganisation();
        var clock = Vectors.Clock();
        using var handshake = SeekerHandshake.Start(org.Pin, clock);
        using var credentials = org.Credentials();
        var accepted = ResponderHandshake.Accept(handshake.Msg1, credentials, clock);
        using var _ = accepted.Channel;
        var altered = (byte[])accepted.Msg2!.Clone();
        altered[10] ^= 0x04;

        Assert.That(handshake.Complete(altered).Error, Is.EqualTo(HandshakeError.BadSignature));
        Assert.That(handshake.Complete(accepted.Msg2).Succeeded, Is.True, "the genuine msg2 must still complete the handshake");
    }

    [Test]
    public void SeekerRefusesMsg2WithAChainFromAnotherRoot()
    {
        using var org = new TestOrganisation();
        using var impostor = new TestOrganisation(fresh: true);
        var clock = Vectors.Clock();
        using var handshake = SeekerHandshake.Start(org.Pin, clock);
        using var credentials = impostor.Credentials();
        var accepted = ResponderHandshake.Accept(handshake.Msg1, credentials, clock);
        using var _ = accepted.Channel;

        var result = handshake.Complete(accepted.Msg2);

        Assert.That(result.Error, Is.EqualTo(HandshakeError.CertificateChain));
        Assert.That(result.ChainError, Is.EqualTo(ChainError.IssuerNotSignedByPinnedRoot));
    }

    [Test]
    public void SeekerRefusesMsg2WithAnExpiredChain()
    {
        using var org = new TestOrganisation();
        var clock = Vectors.Clock(Vectors.ResponderNotAfter + 10);
        using var handshake = SeekerHandshake.Start(org.Pin, clock);
        using var credentials = org.Credentials();
        var accepted = ResponderHandshake.Accept(handshake.Msg1, credentials, clock);
        using var _ = accepted.Channel;

        Assert.That(handshake.Complete(accepted.Msg2).ChainError, Is.EqualTo(ChainError.Expired));
    }

    [Test]
    public void ResponderRefusesMsg1OfAnotherOrganisation()
    {
        using var org = new TestOrganisation();
        var otherPin = new OrganisationPin(Enumerable.Repeat((byte)0x33, 16).ToArray(), [org.RootPublic]);
        using var handshake = SeekerHandshake.Start(otherPin);
        using var credentials = org.Credentials();

        Assert.That(ResponderHandshake.Accept(handshake.Msg1, credentials).Error, Is.EqualTo(HandshakeError.OtherOrganisation));
    }

    [TestCase(66)]
    [TestCase(68)]
    public void ResponderRefusesMsg1OfTheWrongSize(int size)
    {
        using var org = new TestOrganisation();
        using var handshake = SeekerHandshake.Start(org.Pin);
        using var credentials = org.Credentials();
        var msg1 = new byte[size];
        handshake.Msg1[..Math.Min(size, 67)].CopyTo(msg1);

        Assert.That(ResponderHandshake.Accept(msg1, credentials).Error, Is.EqualTo(HandshakeError.MalformedMsg1));
    }

    [TestCase(0, TestName = "ResponderRefusesMsg1WithAnotherVersion")]
    [TestCase(1, TestName = "ResponderRefusesMsg1WithAnotherType")]
    [TestCase(2, TestName = "ResponderRefusesMsg1WithAnotherSuite")]
    public void ResponderRefusesMsg1WithWrongFixedFields(int offset)
    {
        using var org = new TestOrganisation();
        using var handshake = SeekerHandshake.Start(org.Pin);
        using var credentials = org.Credentials();
        var msg1 = handshake.Msg1.ToArray();
        msg1[offset] = 0x7f;

        Assert.That(ResponderHandshake.Accept(msg1, credentials).Error, Is.EqualTo(HandshakeError.MalformedMsg1));
    }

    [Test]
    public void ResponderRefusesLowOrderAndTopBitSeekerEphemerals()
    {
        using var org = new TestOrganisation();
        using var handshake = SeekerHandshake.Start(org.Pin);
        using var credentials = org.Credentials();
        var topBit = handshake.Msg1.ToArray();
        topBit[66] |= 0x80;

        Assert.That(ResponderHandshake.Accept(topBit, credentials).Error, Is.EqualTo(HandshakeError.BadEphemeral));
        foreach (var point in LowOrderPoints)
        {
            var msg1 = handshake.Msg1.ToArray();
            point.CopyTo(msg1, 35);
            Assert.That(ResponderHandshake.Accept(msg1, credentials).Error, Is.EqualTo(HandshakeError.BadEphemeral), Convert.ToHexString(point));
        }
    }

    [Test]
    public void SeekerRefusesLowOrderAndTopBitResponderEphemeralsEvenWhenSigned()
    {
        using var org = new TestOrganisation();
        using var handshake = SeekerHandshake.Start(org.Pin, Vectors.Clock());
        using var responderKey = Vectors.Ed25519(Vectors.ResponderSeed);
        var topBit = new byte[32];
        topBit[31] = 0x80;
        topBit[0] = 9;

        foreach (var point in LowOrderPoints.Append(topBit))
        {
            // A malicious responder device signs a bad ephemeral: the seeker must still refuse it.
            var msg2 = new byte[Wire.Msg2Size];
            msg2[0] = Wire.Version;
            msg2[1] = Wire.TypeServerHello;
            point.CopyTo(msg2, 2);
            org.IssuerCertificate.Encoded.CopyTo(msg2.AsSpan(34));
            org.ResponderCertificate.Encoded.CopyTo(msg2.AsSpan(167));
            HandshakeMath.Sign(responderKey, handshake.Msg1, msg2);

            Assert.That(handshake.Complete(msg2).Error, Is.EqualTo(HandshakeError.BadEphemeral), Convert.ToHexString(point));
        }
    }

    [TestCase(363)]
    [TestCase(365)]
    public void SeekerRefusesMsg2OfTheWrongSize(int size)
    {
        using var org = new TestOrganisation();
        using var handshake = SeekerHandshake.Start(org.Pin, Vectors.Clock());

        Assert.That(handshake.Complete(new byte[size]).Error, Is.EqualTo(HandshakeError.MalformedMsg2));
    }

    [Test]
    public void FingerprintIsEightBytesOfSha256InGroupsOfFour()
    {
        var key = Vectors.PublicOf(Vectors.ResponderSeed);
        var expected = Convert.ToHexStringLower(NSec.Cryptography.HashAlgorithm.Sha256.Hash(key)[..8]);

        var fingerprint = Certificate.Fingerprint(key);

        Assert.Multiple(() =>
        {
            Assert.That(fingerprint, Is.EqualTo($"{expected[..4]} {expected[4..8]} {expected[8..12]} {expected[12..]}"));
            Assert.That(Certificate.FingerprintMatches(key, fingerprint.ToUpperInvariant().Replace(' ', '-')), Is.True);
            Assert.That(Certificate.FingerprintMatches(key, "0000 0000 0000 0000"), Is.False);
        });
    }

    private static ChainError Verify(TestOrganisation org, Certificate issuer, Certificate responder) =>
        CertificateChain.Verify(issuer, responder, org.Pin, Vectors.Now);
}
