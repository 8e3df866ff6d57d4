using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using System.Net.WebSockets;
using System.Collections.Concurrent;
using Microsoft.AspNetCore.SignalR;
using StackExchange.Redis;

namespace TrustLine.Relay.Bench;

/// <summary>
/// The baseline servers, run as child processes of the harness (<c>--serve b0|b1 [--redis …]</c>):
/// B0 forwards bytes between paired raw WebSockets; B1 is a bare SignalR relay hub (MessagePack,
/// <c>Clients.Client(peer)</c>); B2 is B1 with the Redis backplane.
/// </summary>
internal static class Baselines
{
    public static async Task<int> ServeAsync(string kind, int port, string? redis)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        if (kind == "b1")
        {
            var signalR = builder.Services.AddSignalR(o => o.MaximumReceiveMessageSize = 20 * 1024).AddMessagePackProtocol();
            if (redis is not null)
            {
                signalR.AddStackExchangeRedis(redis, o => o.Configuration.ChannelPrefix = RedisChannel.Literal("b2"));
            }
        }

        var app = builder.Build();
        app.MapGet("/health/ready", () => "ok");
        app.MapGet("/debug/runtime", () => Results.Ok(new { allocatedBytes = GC.GetTotalAllocatedBytes(true), workingSetBytes = Environment.WorkingSet }));
        if (kind == "b0")
        {
            app.UseWebSockets();
            var waiting = new ConcurrentDictionary<string, TaskCompletionSource<WebSocket>>();
            app.Map("/ws", async context =>
            {
                var pair = context.Request.Query["pair"].ToString();
                var side = context.Request.Query["side"].ToString();
                using var socket = await context.WebSockets.AcceptWebSocketAsync();
                var mine = waiting.GetOrAdd(pair + side, _ => new(TaskCreationOptions.RunContinuationsAsynchronously));
                mine.TrySetResult(socket);
                var peer = await waiting.GetOrAdd(pair + (side == "a" ? "b" : "a"), _ => new(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
                var buffer = new byte[32 * 1024];
                while (true)
                {
                    var received = await socket.ReceiveAsync(buffer, CancellationToken.None);
                    if (received.MessageType == WebSocketMessageType.Close)
                    {
                        return;
                    }

                    await peer.SendAsync(buffer.AsMemory(0, received.Count), WebSocketMessageType.Binary, received.EndOfMessage, CancellationToken.None);
                }
            });
        }
        else
        {
            app.MapHub<RelayHub>("/relay");
        }

        await app.RunAsync();
        return 0;
    }
}

/// <summary>B1/B2: each connection is told its peer's connection id and forwards payloads to it.</summary>
internal sealed class RelayHub : Hub
{
    public string Id() => Context.ConnectionId;

    public void SetPeer(string peer) => Context.Items["peer"] = peer;

    public Task Send(byte[] payload) => Clients.Client((string)Context.Items["peer"]!).SendAsync("Receive", payload);
}
