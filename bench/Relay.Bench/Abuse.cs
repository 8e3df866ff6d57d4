using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using StackExchange.Redis;
using TrustLine.Protocol.Contracts;

namespace TrustLine.Relay.Bench;

/// <summary>
/// The abusive requests of issue 10, each against a fresh TrustLine node on Redis with the limits as shipped:
/// huge request bodies, a flood of sign-in challenges, and connections that never speak (bare TCP, a WebSocket
/// that never does the SignalR handshake, a handshaked connection that never calls, and a frame that announces
/// 10 MiB and sends 2 bytes). What each costs the node's memory and the store, and how long the node keeps the
/// silent ones.
/// </summary>
internal static class Abuse
{
    private sealed record Row(string What, string Answer, double RssBeforeMiB, double RssPeakMiB, string Store, string Kept);

    public static async Task RunAsync(RedisProcess redis, BenchOrganisation org, bool smoke)
    {
        Console.WriteLine("Abuse: each row on a fresh TrustLine node on Redis with the limits as shipped " +
            "(Limits:ConnectionsPerAddress off for the silent connections, which come from one host; the cap would refuse past 64).");
        var rows = new List<Row>
        {
            await BigBodiesAsync(redis, org, smoke ? 2 : 20, smoke ? 1 << 20 : 28 << 20),
            await ChallengesAsync(redis, org, smoke ? 200 : 50_000),
        };
        // In smoke mode the node's timeouts are short (client 2 s, handshake 1 s) so the run proves the workload in
        // seconds; its figures then mean nothing, and bare TCP (Kestrel's fixed 20 s) is not seen closed.
        rows.AddRange(await SilentAsync(redis, org, smoke ? 20 : 1000, smoke ? TimeSpan.FromSeconds(15) : TimeSpan.FromSeconds(60), smoke));

        Console.WriteLine();
        Console.WriteLine("| request | what the node answered | RSS before / peak MiB | store | how long it was kept |");
        Console.WriteLine("|---|---|---|---|---|");
        foreach (var r in rows)
        {
            Console.WriteLine($"| {r.What} | {r.Answer} | {r.RssBeforeMiB:0} / {r.RssPeakMiB:0} | {r.Store} | {r.Kept} |");
        }
    }

    /// <summary>
    /// A node's settings with the call rate, the admission puzzle and the per-address caps as shipped (the relay
    /// workloads turn them off: <see cref="Node.TrustLineAsync"/>).
    /// </summary>
    internal static Dictionary<string, string> Shipped(RedisProcess redis, BenchOrganisation org)
    {
        var settings = org.Settings(redis.Configuration);
        settings["Limits:CallBurst"] = "400";
        settings["Limits:CallsPerSecond"] = "50";
        settings["Admission:OpenRateThreshold"] = "1.0";
        settings["Admission:QueueFillThreshold"] = "0.25";
        settings["Limits:PlacesPerAddress"] = "16";
        settings["Limits:ConnectionsPerAddress"] = "64";
        return settings;
    }

    /// <summary>Parallel sign-in requests, each with a body far over <c>Limits:MaxRequestBodyBytes</c>.</summary>
    private static async Task<Row> BigBodiesAsync(RedisProcess redis, BenchOrganisation org, int count, int size)
    {
        await using var node = await Node.TrustLineAsync(Shipped(redis, org));
        using var http = new HttpClient { BaseAddress = node.BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
        var body = new byte[size];
        Array.Fill(body, (byte)'a');
        var before = node.ResidentBytes();
        using var sampling = new CancellationTokenSource();
        var peak = SamplePeakAsync(node, sampling.Token);
        var answers = await Task.WhenAll(Enumerable.Range(0, count).Select(async _ =>
        {
            try
            {
                using var content = new ByteArrayContent(body);
                content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
                using var response = await http.PostAsync(Routes.SignIn, content);
                return ((int)response.StatusCode).ToString(CultureInfo.InvariantCulture);
            }
            catch (HttpRequestException)
            {
                return "closed while sending";
            }
        }));
        await sampling.CancelAsync();
        var rssPeak = Math.Max(await peak, node.ResidentBytes());
        return new Row($"{count} parallel sign-ins of {size >> 20} MiB", Tally(answers), Mib(before), Mib(rssPeak), "nothing", "refused before the body is read");
    }

    /// <summary>Sign-in challenges as fast as 32 connections can ask.</summary>
    private static async Task<Row> ChallengesAsync(RedisProcess redis, BenchOrganisation org, int count)
    {
        await using var node = await Node.TrustLineAsync(Shipped(redis, org));
        using var http = new HttpClient { BaseAddress = node.BaseAddress };
        await using var store = await ConnectionMultiplexer.ConnectAsync(redis.Configuration + ",allowAdmin=true");
        var server = store.GetServers()[0];
        await (await http.PostAsync(Routes.Challenge, null)).Content.ReadAsByteArrayAsync(); // the day key exists from here on
        var keysBefore = await server.DatabaseSizeAsync();
        var before = node.ResidentBytes();
        using var sampling = new CancellationTokenSource();
        var peak = SamplePeakAsync(node, sampling.Token);
        var clock = Stopwatch.StartNew();
        var next = -1;
        var answers = await Task.WhenAll(Enumerable.Range(0, 32).Select(async _ =>
        {
            var codes = new List<string>();
            while (Interlocked.Increment(ref next) < count)
            {
                using var response = await http.PostAsync(Routes.Challenge, null);
                await response.Content.ReadAsByteArrayAsync();
                codes.Add(((int)response.StatusCode).ToString(CultureInfo.InvariantCulture));
            }

            return codes;
        }));
        var seconds = clock.Elapsed.TotalSeconds;
        await sampling.CancelAsync();
        var rssPeak = Math.Max(await peak, node.ResidentBytes());
        var keysAfter = await server.DatabaseSizeAsync();
        return new Row($"{count:N0} sign-in challenges ({count / seconds:N0} a second)", Tally(answers.SelectMany(a => a)), Mib(before), Mib(rssPeak),
            $"{keysAfter - keysBefore} keys more", "nothing is kept per challenge");
    }

    private enum Silence
    {
        BareTcp,
        UpgradeOnly,
        Handshaked,
        HugeFrame,
    }

    /// <summary>Connections that never speak, of each kind: how many the node still holds after 35 s, and when the last went.</summary>
    private static async Task<List<Row>> SilentAsync(RedisProcess redis, BenchOrganisation org, int count, TimeSpan watch, bool smoke)
    {
        var rows = new List<Row>();
        foreach (var kind in Enum.GetValues<Silence>())
        {
            var settings = Shipped(redis, org);
            settings["Limits:ConnectionsPerAddress"] = "0";
            if (smoke)
            {
                settings["Limits:ClientTimeout"] = "00:00:02";
                settings["Limits:KeepAliveInterval"] = "00:00:01";
                settings["Limits:HandshakeTimeout"] = "00:00:01";
            }

            await using var node = await Node.TrustLineAsync(settings);

            // Warm the node up with a few of the same kind (JIT, pools), closed by the client, before measuring.
            foreach (var warm in await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => OpenSilentAsync(node.BaseAddress, kind))))
            {
                warm?.Dispose();
            }

            await Task.Delay(TimeSpan.FromSeconds(1));
            var before = node.ResidentBytes();
            var clock = Stopwatch.StartNew();
            var opened = await Task.WhenAll(Enumerable.Range(0, count).Select(async _ =>
            {
                var socket = await OpenSilentAsync(node.BaseAddress, kind);
                return socket is null ? null : new Silent(socket, clock.Elapsed.TotalSeconds);
            }));
            var open = opened.Where(c => c is not null).Select(c => c!).ToList();
            var rssOpen = node.ResidentBytes();
            var closedAt = await Task.WhenAll(open.Select(c => ClosedAtAsync(c, clock, watch)));
            var rssPeak = Math.Max(rssOpen, node.ResidentBytes());
            foreach (var c in open)
            {
                c.Socket.Dispose();
            }

            var closedTimes = closedAt.Where(t => t is not null).Select(t => t!.Value).Order().ToList();
            var stillAt35 = closedAt.Count(t => t is null || t > 35);
            var perConnection = open.Count == 0 ? 0 : (rssOpen - before) / open.Count;
            rows.Add(new Row(
                $"{count} {Describe(kind)}",
                $"{open.Count} held open; {perConnection / 1024.0:0.0} KiB each while open",
                Mib(before), Mib(rssPeak), "nothing",
                closedTimes.Count == 0 ? $"none closed in {watch.TotalSeconds:0} s"
                    : $"{closedTimes.Count} of {open.Count} closed; each lived {closedTimes[0]:0.0}–{closedTimes[^1]:0.0} s (median {closedTimes[closedTimes.Count / 2]:0.0} s) after it connected; past 35 s: {stillAt35}"));
        }

        return rows;
    }

    private static string Describe(Silence kind) => kind switch
    {
        Silence.BareTcp => "bare TCP connections that send nothing",
        Silence.UpgradeOnly => "WebSocket upgrades that never send the SignalR handshake",
        Silence.Handshaked => "handshaked seeker connections that never call (and never ping)",
        _ => "frames announcing 10 MiB that send 2 bytes",
    };

    private static async Task<Socket?> OpenSilentAsync(Uri baseAddress, Silence kind)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        try
        {
            await socket.ConnectAsync(new DnsEndPoint(baseAddress.Host, baseAddress.Port));
            if (kind == Silence.BareTcp)
            {
                return socket;
            }

            var upgrade = $"GET {Routes.SeekerHub} HTTP/1.1\r\nHost: {baseAddress.Authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
            await socket.SendAsync(Encoding.ASCII.GetBytes(upgrade));
            var head = await ReadUntilAsync(socket, "\r\n\r\n"u8.ToArray());
            if (!head.StartsWith("HTTP/1.1 101", StringComparison.Ordinal))
            {
                socket.Dispose();
                return null;
            }

            if (kind == Silence.UpgradeOnly)
            {
                return socket;
            }

            await socket.SendAsync(Frame(0x1, Encoding.ASCII.GetBytes("{\"protocol\":\"messagepack\",\"version\":1}\u001e")));
            await ReadUntilAsync(socket, [0x1e]); // the server's handshake answer, "{}" and the separator
            if (kind == Silence.HugeFrame)
            {
                // A binary frame announcing 10 MiB (masked, as a client must), then 2 bytes of it.
                var header = new byte[2 + 8 + 4 + 2];
                header[0] = 0x82;
                header[1] = 0x80 | 127;
                System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(header.AsSpan(2), 10UL << 20);
                await socket.SendAsync(header);
            }

            return socket;
        }
        catch (SocketException)
        {
            socket.Dispose();
            return null;
        }
    }

    /// <summary>A masked client frame (the mask is zero: the bench has nothing to hide from a proxy).</summary>
    private static byte[] Frame(byte opcode, byte[] payload)
    {
        var frame = new byte[2 + 4 + payload.Length];
        frame[0] = (byte)(0x80 | opcode);
        frame[1] = (byte)(0x80 | payload.Length);
        payload.CopyTo(frame, 6);
        return frame;
    }

    private static async Task<string> ReadUntilAsync(Socket socket, byte[] end)
    {
        var received = new List<byte>();
        var one = new byte[1];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (received.Count < 4096)
        {
            if (await socket.ReceiveAsync(one, timeout.Token) == 0)
            {
                break;
            }

            received.Add(one[0]);
            if (received.Count >= end.Length && received.TakeLast(end.Length).SequenceEqual(end))
            {
                break;
            }
        }

        return Encoding.ASCII.GetString([.. received]);
    }

    private sealed record Silent(Socket Socket, double OpenedAt);

    /// <summary>Seconds from its connect until the node closed the connection (end of stream or reset), or null if it was still open when the watch ended.</summary>
    private static async Task<double?> ClosedAtAsync(Silent silent, Stopwatch clock, TimeSpan watch)
    {
        var socket = silent.Socket;
        var buffer = new byte[4096];
        using var timeout = new CancellationTokenSource(watch - clock.Elapsed);
        try
        {
            while (await socket.ReceiveAsync(buffer, timeout.Token) > 0)
            {
                // pings and close frames: keep reading until the node closes the socket
            }

            return clock.Elapsed.TotalSeconds - silent.OpenedAt;
        }
        catch (SocketException)
        {
            return clock.Elapsed.TotalSeconds - silent.OpenedAt;
        }
        catch (OperationCanceledException)
        {
            return null;
        }
    }

    private static async Task<long> SamplePeakAsync(Node node, CancellationToken stop)
    {
        var peak = node.ResidentBytes();
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(100));
        try
        {
            while (await timer.WaitForNextTickAsync(stop))
            {
                peak = Math.Max(peak, node.ResidentBytes());
            }
        }
        catch (OperationCanceledException)
        {
        }

        return peak;
    }

    private static string Tally(IEnumerable<string> answers) =>
        string.Join(", ", answers.GroupBy(a => a).OrderByDescending(g => g.Count()).Select(g => $"{g.Key} × {g.Count()}"));

    private static double Mib(long bytes) => bytes / 1048576.0;
}
