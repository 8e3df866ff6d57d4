using Microsoft.Extensions.Time.Testing;
using TrustLine.Protocol.Crypto;

namespace TrustLine.Server.Tests.Crypto;

/// <summary>PROTOCOL.md §3 and §7: each refusal rule, each leaving the channel as it was.</summary>
public sealed class ChannelNegativeTests
{
    private FakeTimeProvider clock = null!;
    private TestOrganisation org = null!;
    private SecureChannel seeker = null!;
    private SecureChannel responder = null!;

    [SetUp]
    public void SetUp()
    {
        clock = Vectors.Clock();
        org = new TestOrganisation();
        using var handshake = SeekerHandshake.Start(org.Pin, clock);
        using var credentials = org.Credentials();
        var accepted = ResponderHandshake.Accept(handshake.Msg1, credentials, clock);
        var completed = handshake.Complete(accepted.Msg2);
        Assert.That(completed.Succeeded, Is.True);
        seeker = completed.Channel!;
        responder = accepted.Channel!;
        Assert.That(responder.TryOpen(seeker.SealHello()).Status, Is.EqualTo(OpenStatus.Delivered));
    }

    [TearDown]
    public void TearDown()
    {
        seeker.Dispose();
        responder.Dispose();
        org.Dispose();
    }

    [Test]
    public void ConversationFlowsBothWaysInOrder()
    {
        var fromSeeker = responder.TryOpen(seeker.SealText("Hallo, ik wil iets vragen."));
        var fromResponder = seeker.TryOpen(responder.SealText("Natuurlijk, vertel."));

        Assert.Multiple(() =>
        {
            Assert.That(fromSeeker.Messages.Single().Text, Is.EqualTo("Hallo, ik wil iets vragen."));
            Assert.That(fromSeeker.Messages.Single().Sequence, Is.EqualTo(1UL));
            Assert.That(fromResponder.Messages.Single().Text, Is.EqualTo("Natuurlijk, vertel."));
            Assert.That(fromResponder.Messages.Single().Sequence, Is.EqualTo(0UL));
        });
    }

    [TestCase(0, 256)]
    [TestCase(253, 256)]
    [TestCase(254, 1024)]
    [TestCase(1021, 1024)]
    [TestCase(1022, 4096)]
    [TestCase(16381, 16384)]
    public void BodiesArePaddedToTheSmallestBucket(int length, int bucket)
    {
        var envelope = seeker.SealText(new string('x', length));

        Assert.That(envelope, Has.Length.EqualTo(27 + bucket + 16));
        Assert.That(responder.TryOpen(envelope).Messages.Single().Text, Has.Length.EqualTo(length));
    }

    [Test]
    public void SealRefusesABodyLongerThanTheLargestBucket()
    {
        Assert.Throws<ArgumentException>(() => seeker.SealText(new string('x', Wire.MaxBodySize + 1)));
        Assert.That(seeker.NextSendSequence, Is.EqualTo(1UL), "a refused seal must not use a sequence number");
    }

    [Test]
    public void OpenFailsWhenAnyHeaderByteIsTampered()
    {
        var envelope = seeker.SealText("header");
        for (var i = 0; i < Wire.HeaderSize; i++)
        {
            var tampered = (byte[])envelope.Clone();
            tampered[i] ^= 0x01;
            var result = responder.TryOpen(tampered);
            Assert.That(result.Status, Is.Not.EqualTo(OpenStatus.Delivered), $"header byte {i}");
            if (i < 19)
            {
                Assert.That(result.Status, Is.EqualTo(OpenStatus.Rejected), $"header byte {i}");
            }
        }

        AssertGenuineStillOpens(envelope, "header");
    }

    [Test]
    public void OpenFailsWhenCiphertextIsTampered()
    {
        var envelope = seeker.SealText("ciphertext");
        var tampered = (byte[])envelope.Clone();
        tampered[Wire.HeaderSize + 5] ^= 0x80;

        Assert.That(responder.TryOpen(tampered), Is.EqualTo(Rejected(RejectReason.AuthenticationFailed)).Using<OpenResult>(SameOutcome));
        AssertGenuineStillOpens(envelope, "ciphertext");
    }

    [Test]
    public void OpenFailsWhenTagIsTampered()
    {
        var envelope = seeker.SealText("tag");
        var tampered = (byte[])envelope.Clone();
        tampered[^1] ^= 0x01;

        Assert.That(responder.TryOpen(tampered).Reason, Is.EqualTo(RejectReason.AuthenticationFailed));
        AssertGenuineStillOpens(envelope, "tag");
    }

    [Test]
    public void ReplayedSequenceIsDropped()
    {
        var envelope = seeker.SealText("once");
        Assert.That(responder.TryOpen(envelope).Status, Is.EqualTo(OpenStatus.Delivered));

        var replay = responder.TryOpen(envelope);

        Assert.Multiple(() =>
        {
            Assert.That(replay.Status, Is.EqualTo(OpenStatus.Duplicate));
            Assert.That(replay.Messages, Is.Empty);
            Assert.That(responder.NextReceiveSequence, Is.EqualTo(2UL));
        });
    }

    [Test]
    public void GapIsHeldNotDecryptedEarlyThenReleasedInOrder()
    {
        var first = seeker.SealText("one");
        var second = seeker.SealText("two");
        var third = seeker.SealText("three");

        var early = responder.TryOpen(third);
        var early2 = responder.TryOpen(second);
        Assert.Multiple(() =>
        {
            Assert.That(early.Status, Is.EqualTo(OpenStatus.Buffered));
            Assert.That(early2.Status, Is.EqualTo(OpenStatus.Buffered));
            Assert.That(responder.NextReceiveSequence, Is.EqualTo(1UL), "nothing may be decrypted across a gap");
            Assert.That(responder.HeldCount, Is.EqualTo(2));
        });

        var filled = responder.TryOpen(first);

        Assert.Multiple(() =>
        {
            Assert.That(filled.Messages.Select(m => m.Text), Is.EqualTo(new[] { "one", "two", "three" }));
            Assert.That(responder.HeldCount, Is.Zero);
        });
    }

    [Test]
    public void GapOverrunningTheWindowEndsTheSessionAsMessagesMissing()
    {
        _ = seeker.SealText("lost");
        var later = Enumerable.Range(0, SecureChannel.MaxHeld + 1).Select(i => seeker.SealText($"m{i}")).ToList();

        var results = later.Select(e => responder.TryOpen(e)).ToList();

        Assert.Multiple(() =>
        {
            Assert.That(results.Take(SecureChannel.MaxHeld).Select(r => r.Status), Is.All.EqualTo(OpenStatus.Buffered));
            Assert.That(results[^1].Status, Is.EqualTo(OpenStatus.MessagesMissing));
            Assert.That(responder.EndReason, Is.EqualTo(ChannelEndReason.MessagesMissing));
        });
    }

    [Test]
    public void GapNotFilledWithinThirtySecondsEndsTheSession()
    {
        var lost = seeker.SealText("late");
        var ahead = seeker.SealText("ahead");
        Assert.That(responder.TryOpen(ahead).Status, Is.EqualTo(OpenStatus.Buffered));

        clock.Advance(TimeSpan.FromSeconds(29));
        Assert.That(responder.CheckGap(), Is.False);
        clock.Advance(TimeSpan.FromSeconds(2));

        Assert.Multiple(() =>
        {
            Assert.That(responder.CheckGap(), Is.True);
            Assert.That(responder.TryOpen(lost).Reason, Is.EqualTo(RejectReason.ChannelEnded));
            Assert.That(responder.EndReason, Is.EqualTo(ChannelEndReason.MessagesMissing));
        });
    }

    [TestCase(1)]
    [TestCase(298)]
    [TestCase(300)]
    [TestCase(1066)]
    public void EnvelopeOfNonBucketSizeIsRejected(int size)
    {
        var envelope = seeker.SealText("size");
        var resized = new byte[size];
        envelope.AsSpan(0, Math.Min(size, envelope.Length)).CopyTo(resized);

        Assert.That(responder.TryOpen(resized).Reason, Is.EqualTo(RejectReason.BadSize));
        AssertGenuineStillOpens(envelope, "size");
    }

    [Test]
    public void TruncatedEnvelopeIsRejected()
    {
        var envelope = seeker.SealText("truncated");

        Assert.That(responder.TryOpen(envelope.AsSpan(0, envelope.Length - 1)).Reason, Is.EqualTo(RejectReason.BadSize));
        AssertGenuineStillOpens(envelope, "truncated");
    }

    [Test]
    public void ReflectedEnvelopeIsRejected()
    {
        var envelope = seeker.SealText("reflect me");

        Assert.That(seeker.TryOpen(envelope).Reason, Is.EqualTo(RejectReason.WrongDirection));
        Assert.That(seeker.NextReceiveSequence, Is.Zero);
    }

    [Test]
    public void EnvelopeOfAnotherSessionIsRejected()
    {
        using var other = Pair.Create(org, clock);
        _ = other.Seeker.SealHello();
        var foreign = other.Seeker.SealText("elsewhere");

        Assert.That(responder.TryOpen(foreign).Reason, Is.EqualTo(RejectReason.OtherSession));
        AssertGenuineStillOpens(seeker.SealText("mine"), "mine");
    }

    [Test]
    public void LengthRunningPastTheBucketIsRejected()
    {
        var padded = new byte[256];
        padded[0] = (byte)ContentType.Text;
        padded[1] = 0x01; // 256 + 3 > 256
        var forged = seeker.SealPaddedForTests(padded);

        Assert.That(responder.TryOpen(forged).Reason, Is.EqualTo(RejectReason.LengthPastBucket));
        Assert.That(responder.NextReceiveSequence, Is.EqualTo(1UL));
    }

    [Test]
    public void NonZeroPaddingIsRejected()
    {
        var padded = new byte[256];
        padded[0] = (byte)ContentType.Text;
        padded[2] = 1;
        padded[3] = (byte)'a';
        padded[200] = 7;
        var forged = seeker.SealPaddedForTests(padded);

        Assert.That(responder.TryOpen(forged).Reason, Is.EqualTo(RejectReason.NonZeroPadding));
        Assert.That(responder.NextReceiveSequence, Is.EqualTo(1UL));
    }

    [Test]
    public void UnknownContentTypeIsDeliveredForTheCallerToDropAndTheChainMovesOn()
    {
        var padded = new byte[256];
        padded[0] = 0x7f;
        var unknown = responder.TryOpen(seeker.SealPaddedForTests(padded));

        Assert.Multiple(() =>
        {
            Assert.That(unknown.Status, Is.EqualTo(OpenStatus.Delivered));
            Assert.That(unknown.Messages.Single().Type, Is.EqualTo((ContentType)0x7f));
            Assert.That(responder.EndReason, Is.Null);
        });
        AssertGenuineStillOpens(seeker.SealText("after the unknown one"), "after the unknown one");
    }

    [TestCase(0x02, 1, TestName = "HelloWithReservedFlagBitsAndNoProofIsAccepted")]
    [TestCase(0xff, 65, TestName = "HelloWithReservedFlagBitsAndAProofIsAccepted")]
    public void HelloIgnoresReservedFlagBits(int flags, int length)
    {
        using var pair = Pair.Create(org, clock);
        var padded = HelloBody((byte)flags, length);

        var opened = pair.Responder.TryOpen(pair.Seeker.SealPaddedForTests(padded));

        Assert.Multiple(() =>
        {
            Assert.That(opened.Status, Is.EqualTo(OpenStatus.Delivered));
            Assert.That(pair.Responder.IsEstablished, Is.True);
            Assert.That(opened.Messages.Single().Hello!.IsReturning, Is.False, "a proof that does not verify is a new seeker");
        });
    }

    [TestCase(0x00, 65, TestName = "HelloOf65BytesWithoutFlagBit0EndsTheSession")]
    [TestCase(0x01, 1, TestName = "HelloOf1ByteWithFlagBit0EndsTheSession")]
    [TestCase(0x00, 0, TestName = "EmptyHelloEndsTheSession")]
    [TestCase(0x00, 2, TestName = "HelloOf2BytesEndsTheSession")]
    [TestCase(0x01, 64, TestName = "HelloOf64BytesEndsTheSession")]
    public void HelloWhoseLengthDisagreesWithBit0EndsTheSession(int flags, int length)
    {
        using var pair = Pair.Create(org, clock);
        var opened = pair.Responder.TryOpen(pair.Seeker.SealPaddedForTests(HelloBody((byte)flags, length)));

        Assert.Multiple(() =>
        {
            Assert.That(opened.Reason, Is.EqualTo(RejectReason.BadHello));
            Assert.That(pair.Responder.EndReason, Is.EqualTo(ChannelEndReason.BadHello), "a bad hello never leaves the session waiting");
            Assert.That(pair.Responder.IsEstablished, Is.False);
        });
    }

    [Test]
    public void ForgeryFollowedByTheGenuineEnvelopeStillDecrypts()
    {
        var genuine = seeker.SealText("genuine");
        var forged = (byte[])genuine.Clone();
        forged[40] ^= 0xff;

        Assert.That(responder.TryOpen(forged).Status, Is.EqualTo(OpenStatus.Rejected));
        Assert.That(responder.TryOpen(genuine).Messages.Single().Text, Is.EqualTo("genuine"));
    }

    [Test]
    public void ForgeryHeldAcrossAGapDoesNotBlockTheGenuineEnvelope()
    {
        var first = seeker.SealText("first");
        var second = seeker.SealText("second");
        var forged = (byte[])second.Clone();
        forged[^3] ^= 0x10;

        Assert.That(responder.TryOpen(forged).Status, Is.EqualTo(OpenStatus.Buffered));
        Assert.That(responder.TryOpen(second).Status, Is.EqualTo(OpenStatus.Buffered));
        Assert.That(responder.TryOpen(first).Messages.Select(m => m.Text), Is.EqualTo(new[] { "first", "second" }));
    }

    [Test]
    public void ResponderRefusesAnythingButHelloFirst()
    {
        using var pair = Pair.Create(org, clock);
        var fresh = pair.Responder;
        var freshSeeker = pair.Seeker;
        var padded = new byte[256];
        padded[0] = (byte)ContentType.Text;

        Assert.Multiple(() =>
        {
            Assert.That(fresh.TryOpen(freshSeeker.SealPaddedForTests(padded)).Reason, Is.EqualTo(RejectReason.ExpectedHello));
            Assert.That(fresh.IsEstablished, Is.False);
        });
    }

    [Test]
    public void SecondHelloIsRejected()
    {
        var padded = new byte[256];
        padded[0] = (byte)ContentType.Hello;
        padded[2] = 1;

        Assert.That(responder.TryOpen(seeker.SealPaddedForTests(padded)).Reason, Is.EqualTo(RejectReason.UnexpectedHello));
    }

    [Test]
    public void SeekerMustSendHelloBeforeAnythingElse()
    {
        using var pair = Pair.Create(org, clock);
        var fresh = pair.Seeker;

        Assert.Throws<InvalidOperationException>(() => fresh.SealText("too early"));
        Assert.That(fresh.NextSendSequence, Is.Zero);
    }

    [Test]
    public void ResendReturnsTheSameBytesUntilAcknowledged()
    {
        var one = seeker.SealText("one");
        var two = seeker.SealText("two");

        Assert.That(seeker.Unacknowledged.Select(u => u.Envelope), Is.EqualTo(new[] { seeker.Unacknowledged[0].Envelope, one, two }));
        seeker.Acknowledge(1);
        Assert.That(seeker.Unacknowledged.Select(u => u.Sequence), Is.EqualTo(new[] { 2UL }));
        Assert.That(seeker.Unacknowledged.Single().Envelope, Is.SameAs(two));
    }

    [Test]
    public void AckCarriesTheHighestSequenceReceivedInOrder()
    {
        _ = responder.TryOpen(seeker.SealText("a"));
        var ack = seeker.TryOpen(responder.SealAck());

        Assert.That(ack.Messages.Single().AcknowledgedSequence, Is.EqualTo(1UL));
    }

    [Test]
    public void CloseEndsBothEnds()
    {
        var close = seeker.SealClose();
        var opened = responder.TryOpen(close);

        Assert.Multiple(() =>
        {
            Assert.That(opened.Messages.Single().Type, Is.EqualTo(ContentType.Close));
            Assert.That(responder.EndReason, Is.EqualTo(ChannelEndReason.PeerClosed));
            Assert.That(seeker.EndReason, Is.EqualTo(ChannelEndReason.Closed));
            Assert.Throws<InvalidOperationException>(() => seeker.SealText("after close"));
        });
    }

    [Test]
    public void ReturningHelloAndNewHelloAreTheSameSizeOnTheWire()
    {
        using var pair = Pair.Create(org, clock);
        using var other = Pair.Create(org, clock);
        using var pseudonym = Pseudonym.Create();

        Assert.That(pair.Seeker.SealHello(pseudonym), Has.Length.EqualTo(other.Seeker.SealHello().Length));
    }

    [Test]
    public void ForgedReturningTagMeansNewSeeker()
    {
        using var pair = Pair.Create(org, clock);
        using var pseudonym = Pseudonym.Create();
        var tag = pseudonym.Prove(pair.ResponderEphemeral, pair.Seeker.TranscriptHash);
        tag[0] ^= 0x01;

        var hello = pair.Responder.TryOpen(pair.Seeker.SealPaddedForTests(ReturningHello(pseudonym.PublicKey, tag)));

        Assert.Multiple(() =>
        {
            Assert.That(hello.Status, Is.EqualTo(OpenStatus.Delivered));
            Assert.That(hello.Messages.Single().Hello!.IsReturning, Is.False);
            Assert.That(hello.Messages.Single().Hello!.PseudonymPublicKey, Is.Null);
        });
    }

    [Test]
    public void ReturningTagFromAnotherSessionMeansNewSeeker()
    {
        using var earlier = Pair.Create(org, clock);
        using var pair = Pair.Create(org, clock);
        using var pseudonym = Pseudonym.Create();
        var replayedTag = pseudonym.Prove(earlier.ResponderEphemeral, earlier.Seeker.TranscriptHash);

        var hello = pair.Responder.TryOpen(pair.Seeker.SealPaddedForTests(ReturningHello(pseudonym.PublicKey, replayedTag)));

        Assert.That(hello.Messages.Single().Hello!.IsReturning, Is.False);
    }

    [Test]
    public void GenuineReturningTagIsRecognised()
    {
        using var pair = Pair.Create(org, clock);
        using var pseudonym = Pseudonym.Create();

        var hello = pair.Responder.TryOpen(pair.Seeker.SealHello(pseudonym));

        Assert.That(hello.Messages.Single().Hello!.PseudonymPublicKey, Is.EqualTo(pseudonym.PublicKey));
    }

    private static byte[] HelloBody(byte flags, int length)
    {
        var padded = new byte[256];
        padded[0] = (byte)ContentType.Hello;
        padded[2] = (byte)length;
        if (length > 0)
        {
            padded[3] = flags;
        }

        return padded;
    }

    private static byte[] ReturningHello(byte[] pseudonymPublic, byte[] tag)
    {
        var padded = new byte[256];
        padded[0] = (byte)ContentType.Hello;
        padded[2] = 65;
        padded[3] = 0x01;
        pseudonymPublic.CopyTo(padded, 4);
        tag.CopyTo(padded, 36);
        return padded;
    }

    private void AssertGenuineStillOpens(byte[] envelope, string text)
    {
        var result = responder.TryOpen(envelope);
        Assert.That(result.Status, Is.EqualTo(OpenStatus.Delivered), "the genuine envelope must still open after a refusal");
        Assert.That(result.Messages.Single().Text, Is.EqualTo(text));
    }

    private static OpenResult Rejected(RejectReason reason) => new(OpenStatus.Rejected, reason, []);

    private static bool SameOutcome(OpenResult a, OpenResult b) => a.Status == b.Status && a.Reason == b.Reason && a.Messages.Count == b.Messages.Count;
}

/// <summary>A fresh seeker/responder pair of one organisation, before HELLO.</summary>
internal sealed class Pair : IDisposable
{
    private Pair(SecureChannel seeker, SecureChannel responder, byte[] msg2)
    {
        Seeker = seeker;
        Responder = responder;
        Msg2 = msg2;
    }

    public SecureChannel Seeker { get; }

    public SecureChannel Responder { get; }

    public byte[] Msg2 { get; }

    public byte[] ResponderEphemeral => Msg2[2..34];

    public static Pair Create(TestOrganisation org, TimeProvider clock)
    {
        using var handshake = SeekerHandshake.Start(org.Pin, clock);
        using var credentials = org.Credentials();
        var accepted = ResponderHandshake.Accept(handshake.Msg1, credentials, clock);
        var completed = handshake.Complete(accepted.Msg2);
        Assert.That(completed.Succeeded, Is.True);
        return new Pair(completed.Channel!, accepted.Channel!, accepted.Msg2!);
    }

    public void Dispose()
    {
        Seeker.Dispose();
        Responder.Dispose();
    }
}
