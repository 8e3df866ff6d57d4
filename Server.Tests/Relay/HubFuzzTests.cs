using System.Buffers;
using System.Diagnostics;
using System.Net.WebSockets;
using MessagePack;
using TrustLine.Protocol.Contracts;
using TrustLine.Server.Tests.Infrastructure;

// A fuzzer needs a seeded, reproducible generator, not a secure one.
#pragma warning disable CA5394

namespace TrustLine.Server.Tests.Relay;

/// <summary>
/// Randomised MessagePack frames at both hubs (fixed seed, bounded in count and time): wrong types for every
/// argument of every method, unknown methods, deep nesting, oversized and truncated frames, garbage. After
/// that a conversation that was running goes on, a new one works, and nothing without a TTL remains.
/// </summary>
[TestFixture(StoreUnderTest.Redis)]
[TestFixture(StoreUnderTest.Embedded)]
public sealed class HubFuzzTests(StoreUnderTest store)
{
    // Per store; the two fixtures make it 100,000 inputs in all.
    private const int Inputs = 50_000;
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(60);

    private static readonly string[] SeekerMethods = [.. typeof(ISeekerHub).GetMethods().Select(m => m.Name), "OnConnectedAsync", "Dispose", "Nope", ""];
    private static readonly string[] ResponderMethods = [.. typeof(IResponderHub).GetMethods().Select(m => m.Name), "OnDisconnectedAsync", "nope"];

    [Test]
    public async Task RandomFramesHarmNoSessionAndLeaveNothingBehind()
    {
        await using var world = await World.StartAsync(store, extra: new Dictionary<string, string?>
        {
            // The fuzzer is one fast client: let its calls reach the handlers rather than the rate limit.
            ["Limits:CallBurst"] = "100000",
            ["Limits:CallsPerSecond"] = "100000",
        });
        var (seeker, session, seekerInbox, responderInbox) = await Connected.PairAsync(world, 0, 0);
        await seeker.SendTextAsync("voor");
        await responderInbox.WaitForAsync(1, "text before the fuzz");
        var token = await world.SignInTokenAsync();

        var random = new Random(20261128);
        var processed = 0;
        var connections = 0;
        var clock = Stopwatch.StartNew();
        while (processed < Inputs && clock.Elapsed < Budget)
        {
            var responder = random.Next(3) == 0;
            var methods = responder ? ResponderMethods : SeekerMethods;
            using var socket = await OpenAsync(world, responder ? Routes.ResponderHub + "?access_token=" + token : Routes.SeekerHub);
            connections++;
            var answers = new Answers(socket);
            // Batches of well-framed invocations, each with an id, so every one is answered (a result or a
            // refusal) and counted only when its answer arrives: the server read and handled it. Now and then
            // a batch ends with a frame that must close the connection (garbage, truncated, oversized, deeply
            // nested, not an invocation); its close counts as its answer, and the fuzzer connects again.
            while (socket.State == WebSocketState.Open && processed < Inputs && clock.Elapsed < Budget)
            {
                var batch = Enumerable.Range(0, 50).Select(_ => Invocation(random, methods)).ToList();
                var hostile = random.Next(4) == 0;
                if (hostile)
                {
                    batch.Add(random.Next(5) switch
                    {
                        0 => Framed(RandomValue(random, 0)),
                        1 => Invocation(random, methods, nesting: 1 + random.Next(5000)),
                        2 => Truncated(random, Invocation(random, methods)),
                        3 => Garbage(random),
                        _ => Oversized(random),
                    });
                }

                var before = answers.Count;
                try
                {
                    foreach (var frame in batch)
                    {
                        await socket.SendAsync(frame, WebSocketMessageType.Binary, true, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));
                    }
                }
                catch (Exception e) when (e is WebSocketException or OperationCanceledException or TimeoutException)
                {
                }

                // Every invocation of a plain batch is answered. After a hostile frame the server either closes
                // the connection or waits for the rest of a frame that never comes; either way the fuzzer drops
                // the connection and counts the hostile frame as handled.
                await answers.UntilAsync(before + 50, hostile ? TimeSpan.FromSeconds(2) : TimeSpan.FromSeconds(20), mustReach: !hostile);
                processed += answers.Count - before + (hostile ? 1 : 0);
                if (hostile || answers.Closed)
                {
                    break;
                }
            }

            socket.Abort();
            await answers.Done;
        }

        await TestContext.Out.WriteLineAsync($"{processed} inputs answered over {connections} connections in {clock.Elapsed.TotalSeconds:F1} s");
        Assert.That(processed, Is.GreaterThanOrEqualTo(Inputs), "the fuzzer's inputs were read and answered within the time budget");

        // The conversation that was running is unharmed, and a new one works.
        await session.SendTextAsync("na");
        await seekerInbox.WaitForAsync(1, "text after the fuzz");
        var (newSeeker, newSession, newSeekerInbox, _) = await Connected.PairAsync(world, 0, 0);
        await newSession.SendTextAsync("nieuw");
        await newSeekerInbox.WaitForAsync(1, "text in a new conversation");
        await newSeeker.CloseAsync().WaitAsync(TimeSpan.FromSeconds(10));
        await seeker.CloseAsync().WaitAsync(TimeSpan.FromSeconds(10));

        if (store == StoreUnderTest.Redis)
        {
            await Eventually.TrueAsync(async () => (await RedisInspection.KeysAsync(world.Prefix)).All(k => RedisInspection.MayRemain(world.Prefix, k.Key)),
                TimeSpan.FromSeconds(20), "only sign-in keys remain once the sessions ended");
            Assert.That((await RedisInspection.KeysAsync(world.Prefix)).Where(k => k.Ttl is null).Select(k => k.Key), Is.Empty, "every key has a TTL");
        }
    }

    private static async Task<ClientWebSocket> OpenAsync(World world, string pathAndQuery)
    {
        var socket = new ClientWebSocket();
        var address = new Uri(new Uri(world.Nodes[0].BaseAddress.ToString().Replace("http", "ws", StringComparison.Ordinal)), pathAndQuery);
        await socket.ConnectAsync(address, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));
        await socket.SendAsync("{\"protocol\":\"messagepack\",\"version\":1}\u001e"u8.ToArray(), WebSocketMessageType.Binary, true, CancellationToken.None);
        return socket;
    }

    /// <summary>Reads a connection's frames and counts the completions among them, until the connection closes.</summary>
    private sealed class Answers
    {
        private readonly SemaphoreSlim arrived = new(0);
        private int count;
        private volatile bool closed;

        public Answers(ClientWebSocket socket) => Done = ReadAsync(socket);

        public int Count => Volatile.Read(ref count);

        public bool Closed => closed;

        public Task Done { get; }

        public async Task UntilAsync(int target, TimeSpan limit, bool mustReach)
        {
            using var deadline = new CancellationTokenSource(limit);
            try
            {
                while (Count < target && !closed)
                {
                    await arrived.WaitAsync(deadline.Token);
                }
            }
            catch (OperationCanceledException) when (!mustReach)
            {
            }
            catch (OperationCanceledException)
            {
                Assert.Fail($"The server neither answered every invocation nor closed the connection within {limit.TotalSeconds} s.");
            }
        }

        private async Task ReadAsync(ClientWebSocket socket)
        {
            var buffer = new byte[64 * 1024];
            var pending = new List<byte>();
            try
            {
                while (true)
                {
                    var received = await socket.ReceiveAsync(buffer, CancellationToken.None);
                    if (received.MessageType == WebSocketMessageType.Close)
                    {
                        break;
                    }

                    pending.AddRange(buffer.AsSpan(0, received.Count));
                    if (received.EndOfMessage)
                    {
                        Tally(pending.ToArray());
                        pending.Clear();
                    }
                }
            }
            catch (Exception e) when (e is WebSocketException or OperationCanceledException or ObjectDisposedException)
            {
            }
            finally
            {
                closed = true;
                arrived.Release();
            }
        }

        /// <summary>Counts completion messages (type 3) in a run of length-prefixed MessagePack frames; the handshake answer is JSON and skipped.</summary>
        private void Tally(byte[] data)
        {
            var offset = 0;
            if (data.Length > 0 && data[0] == (byte)'{')
            {
                offset = Array.IndexOf(data, (byte)0x1e) + 1;
            }

            while (offset < data.Length)
            {
                var length = 0;
                var shift = 0;
                byte b;
                do
                {
                    b = data[offset++];
                    length |= (b & 0x7f) << shift;
                    shift += 7;
                }
                while ((b & 0x80) != 0 && offset < data.Length);

                var reader = new MessagePackReader(data.AsMemory(offset, Math.Min(length, data.Length - offset)));
                if (reader.ReadArrayHeader() > 0 && reader.ReadInt32() == 3)
                {
                    Interlocked.Increment(ref count);
                    arrived.Release();
                }

                offset += length;
            }
        }
    }

    private static byte[] Invocation(Random random, string[] methods, int nesting = 0, bool withId = true)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var writer = new MessagePackWriter(buffer);
        writer.WriteArrayHeader(6);
        writer.Write(1); // Invocation
        writer.WriteMapHeader(0);
        writer.Write(withId ? random.Next().ToString(System.Globalization.CultureInfo.InvariantCulture) : null);
        writer.Write(methods[random.Next(methods.Length)]);
        var args = random.Next(4);
        writer.WriteArrayHeader(args);
        for (var i = 0; i < args; i++)
        {
            if (nesting > 0 && i == 0)
            {
                for (var d = 0; d < nesting; d++)
                {
                    writer.WriteArrayHeader(1);
                }

                writer.WriteNil();
            }
            else
            {
                WriteRandom(ref writer, random, 0);
            }
        }

        writer.WriteArrayHeader(0);
        writer.Flush();
        return Framed(buffer.WrittenSpan.ToArray());
    }

    private static byte[] RandomValue(Random random, int depth)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var writer = new MessagePackWriter(buffer);
        WriteRandom(ref writer, random, depth);
        writer.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    private static void WriteRandom(ref MessagePackWriter writer, Random random, int depth)
    {
        switch (depth > 3 ? random.Next(7) : random.Next(9))
        {
            case 0: writer.WriteNil(); break;
            case 1: writer.Write(random.Next(2) == 0); break;
            case 2: writer.Write(random.NextInt64(long.MinValue, long.MaxValue)); break;
            case 3: writer.Write(random.NextDouble() * 1e9); break;
            case 4: writer.Write(new string((char)random.Next(32, 0x2FFF), random.Next(40))); break;
            case 5: writer.Write(RandomBytes(random, random.Next(10) == 0 ? random.Next(20_000) : random.Next(400))); break;
            case 6: writer.Write(random.NextInt64(0, long.MaxValue) switch { var v => (ulong)v }); break;
            case 7:
                var n = random.Next(5);
                writer.WriteArrayHeader(n);
                for (var i = 0; i < n; i++)
                {
                    WriteRandom(ref writer, random, depth + 1);
                }

                break;
            default:
                var m = random.Next(4);
                writer.WriteMapHeader(m);
                for (var i = 0; i < m; i++)
                {
                    writer.Write(random.Next(8));
                    WriteRandom(ref writer, random, depth + 1);
                }

                break;
        }
    }

    /// <summary>SignalR's MessagePack framing: a varint length, then the message.</summary>
    private static byte[] Framed(byte[] message)
    {
        var prefix = new List<byte>();
        var length = (uint)message.Length;
        do
        {
            var b = (byte)(length & 0x7f);
            length >>= 7;
            prefix.Add(length > 0 ? (byte)(b | 0x80) : b);
        }
        while (length > 0);
        return [.. prefix, .. message];
    }

    private static byte[] Truncated(Random random, byte[] frame) => frame[..Math.Max(1, random.Next(frame.Length))];

    private static byte[] Garbage(Random random) => RandomBytes(random, 1 + random.Next(300));

    /// <summary>A frame that announces more than the server accepts (up to 10 MiB), with only a little of it sent.</summary>
    private static byte[] Oversized(Random random) => [0xff, 0xff, 0xff, 0x04, .. RandomBytes(random, random.Next(64))];

    private static byte[] RandomBytes(Random random, int count)
    {
        var bytes = new byte[count];
        random.NextBytes(bytes);
        return bytes;
    }
}
