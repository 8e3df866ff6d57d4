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

            builder.Services.AddSingleton<OpenHub.Sessions>();
        }

        var app = builder.Build();
        app.MapGet("/health/ready", () => "ok");
        app.MapGet("/debug/runtime", () => Results.Ok(new { allocatedBytes = GC.GetTotalAllocatedBytes(true), workingSetBytes = Environment.WorkingSet, jitCompiledMethods = System.Runtime.JitInfo.GetCompiledMethodCount() }));
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
            app.MapHub<OpenHub>("/open");
        }

        await app.RunAsync();
        return 0;
    }
}

/// <summary>
/// B1's session-open baseline: the calls and messages of a TrustLine session open (open with msg1, take,
/// answer pushed to the seeker, HELLO forwarded, close told to the responder) over the same connections,
/// with the sessions in a dictionary in memory instead of a store and no checks.
/// </summary>
internal sealed class OpenHub(OpenHub.Sessions sessions) : Hub
{
    public byte[] Open(byte[] sessionId, byte[] msg1)
    {
        var id = new Guid(sessionId);
        sessions.ById[id] = new Session(Context.ConnectionId, msg1);
        Context.Items["session"] = id;
        return System.Security.Cryptography.RandomNumberGenerator.GetBytes(32);
    }

    public byte[]? Take(byte[] sessionId)
    {
        if (!sessions.ById.TryGetValue(new Guid(sessionId), out var session))
        {
            return null;
        }

        session.Responder = Context.ConnectionId;
        return session.Msg1;
    }

    public Task Answer(byte[] sessionId, byte[] msg2) =>
        sessions.ById.TryGetValue(new Guid(sessionId), out var session) ? Clients.Client(session.Seeker).SendAsync("Answered", msg2) : Task.CompletedTask;

    public async Task<ulong> Send(byte[] envelope)
    {
        if (Context.Items["session"] is Guid id && sessions.ById.TryGetValue(id, out var session) && session.Responder is { } responder)
        {
            await Clients.Client(responder).SendAsync("Envelope", envelope);
        }

        return 0;
    }

    public async Task Close()
    {
        if (Context.Items["session"] is Guid id && sessions.ById.TryRemove(id, out var session) && session.Responder is { } responder)
        {
            await Clients.Client(responder).SendAsync("SessionEnded", id.ToByteArray());
        }
    }

    internal sealed class Sessions
    {
        public ConcurrentDictionary<Guid, Session> ById { get; } = new();
    }

    internal sealed class Session(string seeker, byte[] msg1)
    {
        public string Seeker => seeker;

        public byte[] Msg1 => msg1;

        public string? Responder { get; set; }
    }
}

/// <summary>B1/B2: each connection is told its peer's connection id and forwards payloads to it.</summary>
internal sealed class RelayHub : Hub
{
    public string Id() => Context.ConnectionId;

    public void SetPeer(string peer) => Context.Items["peer"] = peer;

    public Task Send(byte[] payload) => Clients.Client((string)Context.Items["peer"]!).SendAsync("Receive", payload);
}
