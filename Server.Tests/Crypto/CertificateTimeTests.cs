using System.Net;
using System.Net.Http.Json;
using NSec.Cryptography;
using TrustLine.Protocol.Contracts;
using TrustLine.Protocol.Crypto;
using TrustLine.Server.Tests.Infrastructure;

namespace TrustLine.Server.Tests.Crypto;

/// <summary>
/// PROTOCOL.md §1 time arithmetic: a certificate is refused unless <c>0 ≤ not_before ≤ not_after &lt; 2^40</c>,
/// by the chain check and by every other parser (the server's sign-in included), so no lifetime overflows and
/// no time conversion throws. The certificates here are signed correctly: only their times are wrong.
/// </summary>
public sealed class CertificateTimeTests
{
    private const long Min64 = long.MinValue;
    private const long Max64 = long.MaxValue;

    [TestCase(Min64, 1_768_435_200L, TestName = "NotBeforeAtMinusTwoToThe63IsRefused")]
    [TestCase(Min64, Max64, TestName = "WholeSigned64BitRangeIsRefused")]
    [TestCase(1_768_435_200L, 1_767_225_600L, TestName = "InvertedValidityWindowIsRefused")]
    [TestCase(-1L, 1_768_435_200L, TestName = "NegativeNotBeforeIsRefused")]
    [TestCase(1_767_225_600L, 1L << 40, TestName = "NotAfterAtTwoToThe40IsRefused")]
    public void CertificateOutsideTheTimeRuleIsRefusedByTheChainCheck(long notBefore, long notAfter)
    {
        using var org = new TestOrganisation();
        var responder = SignRaw(org.IssuerKey, CertificateRole.Responder, org.OrgId, org.ResponderPublic, notBefore, notAfter);

        Assert.Multiple(() =>
        {
            Assert.That(Certificate.TryParse(responder, out _), Is.False);
            Assert.That(CertificateChain.Verify(org.IssuerCertificate.Encoded, responder, org.Pin, Vectors.Now, out var key), Is.EqualTo(ChainError.Malformed));
        });
    }

    [Test]
    public void IssuerCertificateOutsideTheTimeRuleIsRefusedToo()
    {
        using var org = new TestOrganisation();
        var issuer = SignRaw(org.RootKey, CertificateRole.Issuer, org.OrgId, org.IssuerPublic, Min64, Vectors.IssuerNotAfter);

        Assert.That(CertificateChain.Verify(issuer, org.ResponderCertificate.Encoded, org.Pin, Vectors.Now, out _), Is.EqualTo(ChainError.Malformed));
    }

    [Test]
    public void TimesUpToJustBelowTwoToThe40AreReadExactly()
    {
        using var org = new TestOrganisation();
        var bytes = SignRaw(org.IssuerKey, CertificateRole.Responder, org.OrgId, org.ResponderPublic, 0, (1L << 40) - 1);

        Assert.Multiple(() =>
        {
            Assert.That(Certificate.TryParse(bytes, out var certificate), Is.True);
            Assert.That(certificate!.NotAfter, Is.EqualTo((1L << 40) - 1));
            Assert.That(certificate.ValidUntil, Is.EqualTo(DateTimeOffset.MaxValue), "past the year 9999 a time saturates instead of throwing");
            Assert.That(CertificateChain.Verify(org.IssuerCertificate.Encoded, bytes, org.Pin, Vectors.Now, out _), Is.Not.EqualTo(ChainError.None));
        });
    }

    [Test]
    public void IssuingACertificateOutsideTheTimeRuleIsRefused()
    {
        using var org = new TestOrganisation();

        Assert.Multiple(() =>
        {
            Assert.Throws<ArgumentOutOfRangeException>(() => Certificate.Issue(org.IssuerKey, CertificateRole.Responder, org.OrgId, org.ResponderPublic, Min64, 10));
            Assert.Throws<ArgumentOutOfRangeException>(() => Certificate.Issue(org.IssuerKey, CertificateRole.Responder, org.OrgId, org.ResponderPublic, 20, 10));
            Assert.Throws<ArgumentOutOfRangeException>(() => Certificate.Issue(org.IssuerKey, CertificateRole.Responder, org.OrgId, org.ResponderPublic, 0, Max64));
        });
    }

    [TestCase(Min64, 1_768_435_200L, TestName = "SignInWithNotBeforeAtMinusTwoToThe63IsRefusedWithBadCertificate")]
    [TestCase(Min64, Max64, TestName = "SignInWithTheWholeSigned64BitRangeIsRefusedWithBadCertificateNot500")]
    [TestCase(1_768_435_200L, 1_767_225_600L, TestName = "SignInWithAnInvertedValidityWindowIsRefusedWithBadCertificate")]
    public async Task SignInRefusesACertificateOutsideTheTimeRule(long notBefore, long notAfter)
    {
        await using var world = await World.StartAsync(StoreUnderTest.Embedded);
        using var credentials = world.Org.Credentials();
        var responder = SignRaw(world.Org.IssuerKey, CertificateRole.Responder, world.Org.OrgId, world.Org.ResponderPublic, notBefore, notAfter);
        var node = world.Nodes[0];
        using var challengeResponse = await node.Http.PostAsync(Routes.Challenge, null);
        var challenge = Convert.FromBase64String((await challengeResponse.Content.ReadFromJsonAsync<ChallengeResponse>())!.Challenge);

        using var response = await node.Http.PostAsJsonAsync(Routes.SignIn, new SignInRequest
        {
            IssuerCertificate = PublicText.Certificate(credentials.Issuer),
            ResponderCertificate = Convert.ToBase64String(responder),
            Challenge = Convert.ToBase64String(challenge),
            Signature = Convert.ToBase64String(ResponderSignIn.Sign(credentials.SigningKey, challenge)),
        });
        var error = await response.Content.ReadFromJsonAsync<ErrorResponse>();

        Assert.Multiple(() =>
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
            Assert.That(error!.Code, Is.EqualTo(ErrorCodes.BadCertificate));
        });
    }

    /// <summary>Signs a certificate exactly as §1 says, with any 64-bit times (bypassing <see cref="Certificate.Issue"/>'s checks).</summary>
    internal static byte[] SignRaw(Key parent, CertificateRole role, byte[] orgId, byte[] subject, long notBefore, long notAfter)
    {
        var bytes = new byte[133];
        "TLC1"u8.CopyTo(bytes);
        bytes[4] = (byte)role;
        orgId.CopyTo(bytes, 5);
        subject.CopyTo(bytes, 21);
        System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(bytes.AsSpan(53), notBefore);
        System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(bytes.AsSpan(61), notAfter);
        byte[] signed = [.. "TrustLine/v1/cert\0"u8, .. bytes.AsSpan(0, 69)];
        SignatureAlgorithm.Ed25519.Sign(parent, signed, bytes.AsSpan(69, 64));
        return bytes;
    }
}
