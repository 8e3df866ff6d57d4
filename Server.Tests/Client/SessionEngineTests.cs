using System.Collections.Concurrent;
using Microsoft.Extensions.Time.Testing;
using TrustLine.Client;
using TrustLine.Protocol.Contracts;
using TrustLine.Protocol.Crypto;
using TrustLine.Server.Tests.Crypto;

namespace TrustLine.Server.Tests.Client;

/// <summary>
/// The session engine under both client roles, against a fake server that keeps the relay's ordering rule
/// (one envelope per sequence, in order; a resend is a duplicate) and a real peer channel. Time is a fake clock.
/// </summary>
public sealed class SessionEngineTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);
    private TimerClock clock = null!;
    private TestOrganisation org = null!;
    private Pair pair = null!;
    private FakeServer server = null!;

    [SetUp]
    public void SetUp()
    {
        clock = new TimerClock(DateTimeOffset.FromUnixTimeSeconds(Vectors.Now));
        org = new TestOrganisation();
        pair = Pair.Create(org, clock);
        server = new FakeServer();
    }

    [TearDown]
    public void TearDown()
    {
        pair.Dispose();
        org.Dispose();
    }

    [Test]
    public async Task PeerCloseEndsTheSessionAsClosedByPeerAndLaterEnvelopesAreDropped()
    {
        await using var seeker = await SeekerEngineAsync();
        var texts = new List<string>();
        var ended = new List<string>();
        seeker.MessageReceived += texts.Add;
        seeker.Ended += ended.Add;
        var peer = pair.Responder;

        await seeker.OnEnvelopeAsync(peer.SealText("goodbye")).WaitAsync(Timeout);
        await seeker.OnEnvelopeAsync(peer.SealClose()).WaitAsync(Timeout);
        await seeker.OnEnvelopeAsync(peer.SealPaddedForTests(Padded(ContentType.Text, "after the close"u8))).WaitAsync(Timeout);

        Assert.Multiple(() =>
        {
            Assert.That(texts, Is.EqualTo(new[] { "goodbye" }));
            Assert.That(ended, Is.EqualTo(new[] { SessionEndReasons.PeerClosed }));
            Assert.That(seeker.EndReason, Is.EqualTo(SessionEndReasons.PeerClosed));
            Assert.That(server.Closes, Is.Zero, "the peer that sent CLOSE closes on the server itself, so the server records who ended the chat");
            Assert.Throws<InvalidOperationException>(() => seeker.SendTextAsync("too late", CancellationToken.None), "a send after the end is refused, not sealed");
        });
    }

    [TestCase(0x00, 0, TestName = "ContentType0x00FromThePeerIsDroppedAndCounted")]
    [TestCase(0x05, 3, TestName = "ContentType0x05FromThePeerIsDroppedAndCounted")]
    [TestCase(0x7f, 10, TestName = "ContentType0x7fFromThePeerIsDroppedAndCounted")]
    [TestCase(0xff, 200, TestName = "ContentType0xffFromThePeerIsDroppedAndCounted")]
    public async Task UnknownContentTypeFromThePeerIsDroppedAndCountedAndTheSessionGoesOn(int type, int length)
    {
        await using var seeker = await SeekerEngineAsync();
        var texts = new List<string>();
        seeker.MessageReceived += texts.Add;

        await seeker.OnEnvelopeAsync(pair.Responder.SealPaddedForTests(Padded((ContentType)type, new byte[length]))).WaitAsync(Timeout);
        await seeker.OnEnvelopeAsync(pair.Responder.SealText("still here")).WaitAsync(Timeout);

        Assert.Multiple(() =>
        {
            Assert.That(seeker.UnknownDropped, Is.EqualTo(1));
            Assert.That(texts, Is.EqualTo(new[] { "still here" }));
            Assert.That(seeker.EndReason, Is.Null);
        });
    }

    [TestCase(ContentType.Text, new byte[] { 0xc3, 0x28 }, TestName = "TextThatIsNotUtf8FromThePeerIsRefusedWithoutEndingTheSession")]
    [TestCase(ContentType.Hello, new byte[] { 0x00 }, TestName = "HelloFromTheResponderIsRefusedWithoutEndingTheSession")]
    [TestCase(ContentType.Ack, new byte[] { 0, 0, 0, 0, 0, 0, 0, 9 }, TestName = "AckPastWhatWasSentIsRefusedWithoutEndingTheSession")]
    [TestCase(ContentType.Ack, new byte[] { 0 }, TestName = "AckOfTheWrongSizeIsRefusedWithoutEndingTheSession")]
    [TestCase(ContentType.Close, new byte[] { 1 }, TestName = "CloseWithABodyIsRefusedWithoutEndingTheSession")]
    public async Task MalformedContentFromThePeerIsRefusedWithoutThrowing(ContentType type, byte[] body)
    {
        await using var seeker = await SeekerEngineAsync();
        var texts = new List<string>();
        seeker.MessageReceived += texts.Add;
        var malformed = pair.Responder.SealPaddedForTests(Padded(type, body));

        Assert.DoesNotThrowAsync(() => seeker.OnEnvelopeAsync(malformed).WaitAsync(Timeout));
        Assert.Multiple(() =>
        {
            Assert.That(seeker.EndReason, Is.Null);
            Assert.That(seeker.ReceivedThrough, Is.EqualTo(-1), "a refused envelope changes no state");
            Assert.That(texts, Is.Empty);
        });
    }

    [TestCase(0, TestName = "EmptyEnvelopeFromTheServerIsRefusedWithoutThrowing")]
    [TestCase(5, TestName = "TruncatedEnvelopeFromTheServerIsRefusedWithoutThrowing")]
    [TestCase(299, TestName = "RandomBytesOfEnvelopeSizeFromTheServerAreRefusedWithoutThrowing")]
    [TestCase(70000, TestName = "OversizedEnvelopeFromTheServerIsRefusedWithoutThrowing")]
    public async Task GarbageFromTheServerIsRefusedWithoutThrowing(int size)
    {
        await using var seeker = await SeekerEngineAsync();
        var garbage = System.Security.Cryptography.RandomNumberGenerator.GetBytes(size);

        Assert.DoesNotThrowAsync(() => seeker.OnEnvelopeAsync(garbage).WaitAsync(Timeout));
        await seeker.OnEnvelopeAsync(pair.Responder.SealText("genuine")).WaitAsync(Timeout);
        Assert.That(seeker.ReceivedThrough, Is.Zero, "the genuine envelope still opens after the garbage");
    }

    [Test]
    public async Task AckFromThePeerIsReportedAsDelivered()
    {
        await using var seeker = await SeekerEngineAsync();
        var delivered = new List<ulong>();
        seeker.Delivered += delivered.Add;
        Assert.That(pair.Responder.TryOpen(server.Accepted[0]).Status, Is.EqualTo(OpenStatus.Delivered));

        await seeker.OnEnvelopeAsync(pair.Responder.SealAck()).WaitAsync(Timeout);

        Assert.That(delivered, Is.EqualTo(new[] { 0UL }));
    }

    [Test]
    public async Task ClosingSendsCloseToThePeerThenClosesOnTheServer()
    {
        await using var seeker = await SeekerEngineAsync();

        await seeker.CloseAsync(EndReasons.SeekerClosed, CancellationToken.None).WaitAsync(Timeout);

        var peer = pair.Responder;
        Assert.That(peer.TryOpen(server.Accepted[0]).Status, Is.EqualTo(OpenStatus.Delivered), "HELLO");
        var close = peer.TryOpen(server.Accepted[1]);
        Assert.Multiple(() =>
        {
            Assert.That(close.Messages.Single().Type, Is.EqualTo(ContentType.Close));
            Assert.That(server.ClosedAfter, Is.EqualTo(2), "the server's close comes after the CLOSE envelope");
            Assert.That(seeker.EndReason, Is.EqualTo(EndReasons.SeekerClosed));
        });
    }

    [Test]
    public async Task TextOverTheLargestBodyIsRefusedBeforeSealing()
    {
        await using var seeker = await SeekerEngineAsync();

        Assert.Throws<ArgumentException>(() => seeker.SendTextAsync(new string('x', Wire.MaxBodySize + 1), CancellationToken.None));
        await seeker.SendTextAsync(new string('x', Wire.MaxBodySize), CancellationToken.None).WaitAsync(Timeout);

        Assert.That(server.Accepted.Select(Sequence), Is.EqualTo(new ulong[] { 0, 1 }), "the refused text used no sequence number");
    }

    [Test]
    public async Task MalformedHelloEndsTheResponderSessionAsBadHello()
    {
        await using var responder = new SessionEngine(pair.Responder, server, clock);
        var ended = new List<string>();
        responder.Ended += ended.Add;
        var hello = pair.Seeker.SealPaddedForTests(Padded(ContentType.Hello, new byte[] { 0x00, 0x00 }));

        await responder.OnEnvelopeAsync(hello).WaitAsync(Timeout);

        Assert.Multiple(() =>
        {
            Assert.That(ended, Is.EqualTo(new[] { SessionEndReasons.BadHello }));
            Assert.That(server.Closes, Is.EqualTo(1), "never left waiting");
        });
    }

    [TestCase(ErrorCodes.BufferFull)]
    [TestCase(ErrorCodes.Unavailable)]
    [TestCase(ErrorCodes.RateLimited)]
    public async Task RefusedSendIsSentAgainAfterABackOffAndLaterSendsFollowInOrder(string code)
    {
        await using var seeker = await SeekerEngineAsync();
        server.Refuse(code, times: 1);

        var first = seeker.SendTextAsync("first", CancellationToken.None);
        await server.Refused.WaitAsync(Timeout);
        Assert.That(first.IsCompleted, Is.False, "refused: still waiting for the server");
        await clock.AdvanceWhenTimerSetAsync(TimeSpan.FromSeconds(5), Timeout);
        await first.WaitAsync(Timeout);
        await seeker.SendTextAsync("second", CancellationToken.None).WaitAsync(Timeout);

        Assert.Multiple(() =>
        {
            Assert.That(server.Accepted.Select(Sequence), Is.EqualTo(new ulong[] { 0, 1, 2 }));
            Assert.That(server.OutOfOrder, Is.Zero);
            Assert.That(Texts(server.Accepted.Skip(1)), Is.EqualTo(new[] { "first", "second" }));
        });
    }

    [Test]
    public async Task ServerThatKeepsRefusingTheOrderEndsTheSessionInsteadOfLoopingForever()
    {
        await using var seeker = await SeekerEngineAsync();
        server.Refuse(ErrorCodes.OutOfOrder, times: 100);
        var ended = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        seeker.Ended += reason => ended.TrySetResult(reason);

        var sending = seeker.SendTextAsync("never taken", CancellationToken.None);
        for (var i = 0; i < 4; i++)
        {
            await clock.AdvanceWhenTimerSetAsync(TimeSpan.FromSeconds(5), Timeout);
        }

        Assert.That(await ended.Task.WaitAsync(Timeout), Is.EqualTo(SessionEndReasons.SendRefused));
        Assert.CatchAsync<InvalidOperationException>(() => sending.WaitAsync(Timeout), "the waiting send learns it will not happen");
    }

    [Test]
    public async Task CancellingAWaitingSendStopsTheWaitButNotTheDelivery()
    {
        await using var seeker = await SeekerEngineAsync();
        server.Hold();
        using var cancel = new CancellationTokenSource();

        var first = seeker.SendTextAsync("first", cancel.Token);
        await server.Holding.WaitAsync(Timeout);
        await cancel.CancelAsync();
        Assert.CatchAsync<OperationCanceledException>(() => first.WaitAsync(Timeout));
        var second = seeker.SendTextAsync("second", CancellationToken.None);
        server.Release();
        await second.WaitAsync(Timeout);

        Assert.Multiple(() =>
        {
            Assert.That(server.Accepted.Select(Sequence), Is.EqualTo(new ulong[] { 0, 1, 2 }));
            Assert.That(server.OutOfOrder, Is.Zero);
            Assert.That(Texts(server.Accepted.Skip(1)), Is.EqualTo(new[] { "first", "second" }));
        });
    }

    [Test]
    public async Task AfterAReconnectSendingResumesWhereTheServerStopped()
    {
        await using var seeker = await SeekerEngineAsync();
        server.Offline = true;
        var first = seeker.SendTextAsync("first", CancellationToken.None);
        await server.Refused.WaitAsync(Timeout);
        var second = seeker.SendTextAsync("second", CancellationToken.None);

        server.Offline = false;
        seeker.Resumed(server.Expected);
        await Task.WhenAll(first, second).WaitAsync(Timeout);

        Assert.Multiple(() =>
        {
            Assert.That(server.Accepted.Select(Sequence), Is.EqualTo(new ulong[] { 0, 1, 2 }));
            Assert.That(server.OutOfOrder, Is.Zero);
        });
    }

    [Test]
    public async Task DisposingStopsTheTimersAndThePumpBeforeTheChannelGoes()
    {
        var responder = new SessionEngine(pair.Responder, server, clock);
        await responder.OnEnvelopeAsync(pair.Seeker.SealHello()).WaitAsync(Timeout); // a receipt is now due in 200 ms
        _ = pair.Seeker.SealText("lost");
        await responder.OnEnvelopeAsync(pair.Seeker.SealText("held")).WaitAsync(Timeout); // a gap: the gap timer runs
        server.Hold();
        var sending = responder.SendTextAsync("in flight", CancellationToken.None);
        await server.Holding.WaitAsync(Timeout);

        Assert.DoesNotThrowAsync(async () => await responder.DisposeAsync().AsTask().WaitAsync(Timeout));
        clock.Advance(TimeSpan.FromMinutes(1));

        Assert.Multiple(() =>
        {
            Assert.That(server.Acknowledged, Is.Empty, "no receipt after the dispose");
            Assert.That(server.Closes, Is.Zero, "no gap end after the dispose");
            Assert.That(sending.IsFaulted, Is.True, "a send still waiting learns that it will not happen");
        });
    }

    [Test]
    public async Task DisposingFromAnEndHandlerOnTheEnginesOwnTaskDoesNotWaitForItself()
    {
        var seeker = await SeekerEngineAsync();
        var disposedInTime = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        seeker.Ended += _ => disposedInTime.TrySetResult(seeker.DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds(5)));
        server.Refuse(ErrorCodes.NoSuchSession, times: 1);

        _ = seeker.SendTextAsync("refused for good", CancellationToken.None);

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(await disposedInTime.Task.WaitAsync(Timeout), Is.True, "an app may dispose the session when it ends");
            Assert.That(seeker.EndReason, Is.EqualTo(SessionEndReasons.SendRefused));
        });
    }

    private static ulong Sequence(byte[] envelope) => EnvelopeHeader.TryParse(envelope, out var header) ? header.Sequence : ulong.MaxValue;

    private static byte[] Padded(ContentType type, ReadOnlySpan<byte> body)
    {
        var padded = new byte[Wire.BucketFor(3 + body.Length)];
        padded[0] = (byte)type;
        padded[1] = (byte)(body.Length >> 8);
        padded[2] = (byte)body.Length;
        body.CopyTo(padded.AsSpan(3));
        return padded;
    }

    private async Task<SessionEngine> SeekerEngineAsync()
    {
        var engine = new SessionEngine(pair.Seeker, server, clock);
        await engine.SendHelloAsync(null).WaitAsync(Timeout);
        return engine;
    }

    private List<string> Texts(IEnumerable<byte[]> envelopes)
    {
        // The peer opens what the server accepted, in order, HELLO first.
        var peer = pair.Responder;
        if (!peer.IsEstablished)
        {
            Assert.That(peer.TryOpen(server.Accepted[0]).Status, Is.EqualTo(OpenStatus.Delivered));
        }

        return [.. envelopes.SelectMany(e => peer.TryOpen(e).Messages).Select(m => m.Text)];
    }

    /// <summary>A fake clock that says when a timer has been set, so a test advances it only then.</summary>
    private sealed class TimerClock(DateTimeOffset start) : FakeTimeProvider(start)
    {
        private TaskCompletionSource timerSet = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            var timer = base.CreateTimer(callback, state, dueTime, period);
            timerSet.TrySetResult();
            return timer;
        }

        public async Task AdvanceWhenTimerSetAsync(TimeSpan by, TimeSpan timeout)
        {
            await timerSet.Task.WaitAsync(timeout);
            timerSet = new(TaskCreationOptions.RunContinuationsAsynchronously);
            Advance(by);
        }
    }

    /// <summary>The relay's ordering rule for one direction of one session, with refusals and holds on demand.</summary>
    private sealed class FakeServer : ISessionTransport
    {
        private readonly ConcurrentQueue<string> refusals = new();
        private readonly TaskCompletionSource refused = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private TaskCompletionSource holding = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private TaskCompletionSource? held;
        private int closes;

        public List<byte[]> Accepted { get; } = [];

        public ConcurrentQueue<ulong> Acknowledged { get; } = new();

        public ulong Expected { get; private set; }

        public int OutOfOrder { get; private set; }

        public int Closes => Volatile.Read(ref closes);

        public int? ClosedAfter { get; private set; }

        public bool Offline { get; set; }

        public Task Refused => refused.Task;

        public Task Holding => holding.Task;

        public void Refuse(string code, int times)
        {
            for (var i = 0; i < times; i++)
            {
                refusals.Enqueue(code);
            }
        }

        public void Hold()
        {
            holding = new(TaskCreationOptions.RunContinuationsAsynchronously);
            held = new(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        public void Release() => held?.TrySetResult();

        public async Task SendAsync(byte[] envelope, CancellationToken cancellationToken)
        {
            if (held is { } gate && !gate.Task.IsCompleted)
            {
                holding.TrySetResult();
                await gate.Task.WaitAsync(cancellationToken);
            }

            if (Offline)
            {
                refused.TrySetResult();
                throw new InvalidOperationException("The connection is not active.");
            }

            if (refusals.TryDequeue(out var code))
            {
                refused.TrySetResult();
                throw new TrustLineException(code, "Refused for the test.");
            }

            var sequence = Sequence(envelope);
            lock (Accepted)
            {
                if (sequence > Expected)
                {
                    OutOfOrder++;
                    throw new TrustLineException(ErrorCodes.OutOfOrder, "Not the next sequence.");
                }

                if (sequence == Expected)
                {
                    Accepted.Add(envelope);
                    Expected++;
                }
            }
        }

        public Task AcknowledgeAsync(ulong through, CancellationToken cancellationToken)
        {
            Acknowledged.Enqueue(through);
            return Task.CompletedTask;
        }

        public Task CloseAsync(CancellationToken cancellationToken)
        {
            lock (Accepted)
            {
                ClosedAfter ??= Accepted.Count;
            }

            Interlocked.Increment(ref closes);
            return Task.CompletedTask;
        }
    }
}
