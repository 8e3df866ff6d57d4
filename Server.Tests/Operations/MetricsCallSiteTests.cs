using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using StackExchange.Redis;
using TrustLine.Client;
using TrustLine.Protocol.Contracts;
using TrustLine.Protocol.Crypto;
using TrustLine.Server.Operations.Metrics;
using TrustLine.Server.Storage;
using TrustLine.Server.Tests.Infrastructure;
using TrustLine.Server.Tests.Relay;

namespace TrustLine.Server.Tests.Operations;

/// <summary>
/// The measurements that need a line in a handler (the relay's buffer, the session's end), read straight
/// from the node's own meter: these fail if a handler loses its call.
/// </summary>
public sealed class MetricsCallSiteTests
{
    [Test]
    public async Task EnvelopesForAnAbsentRecipientAreCountedAsBufferedBySizeBucket()
    {
        await using var world = await World.StartAsync(StoreUnderTest.Redis);
        using var meter = new NodeMeter(world.Nodes[0]);
        var seeker = world.Seeker();
        await seeker.OpenAsync("nl").WaitAsync(TimeSpan.FromSeconds(15));
        var responder = await world.ResponderAsync();
        var session = (await responder.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(15)))!;
        await session.WhenEstablished.WaitAsync(TimeSpan.FromSeconds(15));
        await Eventually.TrueAsync(() => Task.FromResult(seeker.State == SeekerState.Connected), TimeSpan.FromSeconds(10), "the seeker is connected");

        // The counsellor's connection goes (without closing the session): what the seeker sends now waits in the buffer.
        await responder.DisposeAsync();
        var sent = 0;
        await Eventually.TrueAsync(async () =>
        {
            await seeker.SendTextAsync($"bericht {sent++}");
            return meter.Sum("trustline.envelopes.buffered", "size", "256") > 0;
        }, TimeSpan.FromSeconds(10), "an envelope is counted as buffered");

        Assert.Multiple(() =>
        {
            Assert.That(meter.Sum("trustline.envelopes.buffered", "size", "256"), Is.InRange(1, sent));
            Assert.That(meter.Sum("trustline.envelopes.relayed", "size", "256"), Is.GreaterThanOrEqualTo(sent), "every accepted envelope is relayed, now or on resume");
        });
    }

    [Test]
    public async Task AnEndedSessionIsCountedOnceWithItsReasonAndOrganisation()
    {
        await using var world = await World.StartAsync(StoreUnderTest.Redis, nodes: 2);
        using var first = new NodeMeter(world.Nodes[0]);
        using var second = new NodeMeter(world.Nodes[1]);
        var (seeker, _, _, _) = await Connected.PairAsync(world, 0, 1);

        await seeker.CloseAsync().WaitAsync(TimeSpan.FromSeconds(10));

        var org = Convert.ToHexStringLower(world.Org.OrgId);
        await Eventually.TrueAsync(() => Task.FromResult(first.Sum("trustline.sessions.ended") + second.Sum("trustline.sessions.ended") > 0),
            TimeSpan.FromSeconds(10), "the end is counted");
        Assert.Multiple(() =>
        {
            Assert.That(first.Sum("trustline.sessions.ended") + second.Sum("trustline.sessions.ended"), Is.EqualTo(1), "two nodes, one end");
            // The counsellor's app hears the seeker's CLOSE but leaves the server's close to the seeker, so the
            // end is the seeker's.
            Assert.That(ClosedBy(first, EndReasons.SeekerClosed) + ClosedBy(second, EndReasons.SeekerClosed), Is.EqualTo(1));
            Assert.That(first.Sum("trustline.sessions.ended", "organisation", org) + second.Sum("trustline.sessions.ended", "organisation", org), Is.EqualTo(1));
        });
    }

    private static long ClosedBy(NodeMeter meter, string reason) => meter.Sum("trustline.sessions.ended", "reason", reason);

    [Test]
    public async Task TheHubsSendPathIsCountedLikeEveryCommandItsRefusalsItsStoreErrorsAndWhatItRelays()
    {
        // The hubs call the send path directly, not through the mediator's metrics behaviour: it counts for itself.
        FailingAppend? failing = null;
        await using var world = await World.StartAsync(StoreUnderTest.Redis,
            services: s => s.AddSingleton<ISessionStore>(sp => failing = new FailingAppend(sp.GetRequiredService<RedisSessionStore>())));
        using var meter = new NodeMeter(world.Nodes[0]);
        await using var scenario = await ManualSeeker.ConnectAsync(world);
        var first = scenario.Channel.SealText("eerste");
        var second = scenario.Channel.SealText("tweede");
        var relayedBefore = meter.Sum("trustline.envelopes.relayed", "size", "256"); // the handshake's HELLO

        failing!.FailNext();
        var failed = await RefusalTests.CodeOf(scenario.Hub.InvokeAsync<SendResult>(SeekerHubMethods.Send, first));
        var outOfOrder = await RefusalTests.CodeOf(scenario.Hub.InvokeAsync<SendResult>(SeekerHubMethods.Send, second));
        await scenario.Hub.InvokeAsync<SendResult>(SeekerHubMethods.Send, first).WaitAsync(TimeSpan.FromSeconds(10));
        await scenario.Hub.InvokeAsync<SendResult>(SeekerHubMethods.Send, first).WaitAsync(TimeSpan.FromSeconds(10)); // a duplicate: not relayed again

        Assert.Multiple(() =>
        {
            Assert.That(failed, Is.EqualTo(ErrorCodes.Unavailable));
            Assert.That(outOfOrder, Is.EqualTo(ErrorCodes.OutOfOrder));
            Assert.That(meter.Sum("trustline.store.errors", "source", "SendEnvelope"), Is.EqualTo(1), "the failed buffer write");
            Assert.That(meter.Sum("trustline.refusals", "code", ErrorCodes.OutOfOrder), Is.EqualTo(1), "the refusal, by code");
            Assert.That(meter.Sum("trustline.refusals", "command", "SendEnvelope"), Is.EqualTo(1), "the refusal, by command");
            Assert.That(meter.Sum("trustline.envelopes.relayed", "size", "256") - relayedBefore, Is.EqualTo(1), "the accepted envelope, once");
        });
    }

    /// <summary>The real store, whose next envelope write fails the way Redis does when it drops the connection.</summary>
    private sealed class FailingAppend(ISessionStore inner) : StoreDecorator(inner)
    {
        private int armed;

        public void FailNext() => Interlocked.Exchange(ref armed, 1);

        public override Task<AppendOutcome> AppendEnvelopeAsync(Guid id, Direction direction, ulong sequence, byte[] envelope, DateTimeOffset expiresAt) =>
            Interlocked.Exchange(ref armed, 0) == 1
                ? Task.FromException<AppendOutcome>(new RedisConnectionException(ConnectionFailureType.SocketFailure, "failing on cue"))
                : Inner.AppendEnvelopeAsync(id, direction, sequence, envelope, expiresAt);
    }

    /// <summary>The TrustLine meter of one in-process node (other nodes in the process have meters of their own).</summary>
    private sealed class NodeMeter : IDisposable
    {
        private readonly MeterListener listener = new();
        private readonly ConcurrentQueue<(string Name, long Value, KeyValuePair<string, object?>[] Tags)> measurements = new();

        public NodeMeter(TrustLineNode node)
        {
            var factory = node.Services.GetRequiredService<IMeterFactory>();
            listener.InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == TrustLineMetrics.MeterName && ReferenceEquals(instrument.Meter.Scope, factory))
                {
                    l.EnableMeasurementEvents(instrument);
                }
            };
            listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => measurements.Enqueue((instrument.Name, value, tags.ToArray())));
            listener.Start();
        }

        public long Sum(string name, string? key = null, string? value = null) =>
            measurements.Where(m => m.Name == name && (key is null || m.Tags.Any(t => t.Key == key && Equals(t.Value, value)))).Sum(m => m.Value);

        public void Dispose() => listener.Dispose();
    }
}