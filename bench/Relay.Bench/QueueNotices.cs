using System.Diagnostics;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using TrustLine.Protocol.Contracts;
using TrustLine.Protocol.Crypto;

namespace TrustLine.Relay.Bench;

/// <summary>
/// The queue-notice workload (issue 14 item 5): many seekers wait on one TrustLine node on Redis, and a
/// counsellor takes the head of the queue a number of times, one take per notice interval. Counted per take:
/// the notices the waiting seekers receive (every queue message a seeker connection gets: one per seeker
/// either way, but sent one by one before tickets and as one group message since), the Redis commands (INFO
/// commandstats delta, scripts' inner commands and the backplane's PUBLISH included), and the server's CPU
/// time (the take, the notices, and the idle node's own timers over the run).
/// </summary>
internal static class QueueNotices
{
    public sealed record Options(int Waiting, int Takes);

    public static async Task RunAsync(RedisProcess redis, BenchOrganisation org, Options options)
    {
        var settings = org.Settings(redis.Configuration);
        var node = await Node.TrustLineAsync(settings); // the target disposes it
        await using var target = new TrustLineTarget("TrustLine Redis", [node], redis, org);
        var notices = 0L;
        var seekers = new List<HubConnection>();
        try
        {
            for (var i = 0; i < options.Waiting; i += 50)
            {
                seekers.AddRange(await Task.WhenAll(Enumerable.Range(i, Math.Min(50, options.Waiting - i)).Select(_ => OpenAsync(node, org, () => Interlocked.Increment(ref notices)))));
            }

            await using var responder = await target.ResponderAsync(0);
            await Task.Delay(1000); // the opens' own notices settle
            var before = await redis.CommandStatsAsync();
            var cpuBefore = node.CpuTime();
            var noticesBefore = Interlocked.Read(ref notices);
            var clock = Stopwatch.StartNew();
            for (var i = 0; i < options.Takes; i++)
            {
                await responder.InvokeAsync<TakenSession?>(ResponderHubMethods.TakeNext);
                await Task.Delay(400); // past the notice interval (250 ms): each take is told on its own
            }

            await Task.Delay(1000);
            clock.Stop();
            var cpu = node.CpuTime() - cpuBefore;
            var commands = RedisProcess.Delta(before, await redis.CommandStatsAsync());
            var received = Interlocked.Read(ref notices) - noticesBefore;
            Console.WriteLine($"Queue notices: {options.Waiting} seekers waiting, {options.Takes} takes of the head, one node on Redis.");
            Console.WriteLine($"| {"per take",-28} | {"value",10} |");
            Console.WriteLine($"|{new string('-', 30)}|{new string('-', 12)}|");
            Console.WriteLine($"| {"notices received by seekers",-28} | {received / (double)options.Takes,10:0.0} |");
            Console.WriteLine($"| {"Redis commands",-28} | {commands.Values.Sum() / (double)options.Takes,10:0.0} |");
            Console.WriteLine($"| {"server CPU ms",-28} | {cpu.TotalMilliseconds / options.Takes,10:0.0} |");
            Console.WriteLine($"Redis commands, all takes: {string.Join(" ", commands.OrderByDescending(c => c.Value).Select(c => $"{c.Key}={c.Value}"))}");
        }
        finally
        {
            foreach (var seeker in seekers)
            {
                await seeker.DisposeAsync();
            }
        }
    }

    private static async Task<HubConnection> OpenAsync(Node node, BenchOrganisation org, Action notice)
    {
        var seeker = new HubConnectionBuilder()
            .WithUrl(new Uri(node.BaseAddress, Routes.SeekerHub), HttpTransportType.WebSockets, o => o.SkipNegotiation = true)
            .AddMessagePackProtocol()
            .Build();
        seeker.On<QueueStatus>(nameof(ISeekerClient.QueuePosition), _ => notice());
        seeker.On<QueueMoved>(nameof(ISeekerClient.QueueMoved), _ => notice());
        await seeker.StartAsync();
        using var handshake = SeekerHandshake.Start(org.Pin);
        await seeker.InvokeAsync<OpenSessionResult>(SeekerHubMethods.OpenSession, new OpenSessionRequest { Msg1 = handshake.Msg1.ToArray(), Language = "nl" });
        return seeker;
    }
}
