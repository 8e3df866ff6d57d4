using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.Http.Connections.Client;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using TrustLine.Protocol.Contracts;

namespace TrustLine.Server.Tests.Infrastructure;

/// <summary>A hub connection driven by hand (no SDK), for tests that send what a real client never would.</summary>
internal static class RawHub
{
    /// <summary>
    /// A started MessagePack connection to the seeker hub of <paramref name="node"/>: from <paramref name="from"/> (a
    /// loopback address such as 127.0.0.2, to stand for another network) when given, with extra request headers.
    /// </summary>
    public static async Task<HubConnection> SeekerAsync(TrustLineNode node, IPAddress? from = null, IReadOnlyDictionary<string, string>? headers = null)
    {
        var hub = new HubConnectionBuilder()
            .WithUrl(new Uri(node.BaseAddress, Routes.SeekerHub), HttpTransportType.WebSockets, o =>
            {
                o.SkipNegotiation = true;
                foreach (var (name, value) in headers ?? new Dictionary<string, string>())
                {
                    o.Headers[name] = value;
                }

                if (from is not null)
                {
                    o.WebSocketFactory = (context, cancellation) => ConnectFromAsync(from, context, cancellation);
                }
            })
            .AddMessagePackProtocol()
            .Build();
        await hub.StartAsync().WaitAsync(TimeSpan.FromSeconds(10));
        return hub;
    }

    private static async ValueTask<WebSocket> ConnectFromAsync(IPAddress from, WebSocketConnectionContext context, CancellationToken cancellation)
    {
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (connect, token) =>
            {
                var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
                try
                {
                    socket.Bind(new IPEndPoint(from, 0));
                    await socket.ConnectAsync(connect.DnsEndPoint, token);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        var webSocket = new ClientWebSocket();
        foreach (var (name, value) in context.Options.Headers)
        {
            webSocket.Options.SetRequestHeader(name, value);
        }

        await webSocket.ConnectAsync(context.Uri, new HttpMessageInvoker(handler), cancellation);
        return webSocket;
    }

    /// <summary>The refusal code of a call (the text before the first colon), or "accepted".</summary>
    public static async Task<string> CodeOfAsync(Task call)
    {
        try
        {
            await call.WaitAsync(TimeSpan.FromSeconds(10));
            return "accepted";
        }
        catch (HubException e)
        {
            return e.Message[..e.Message.IndexOf(':', StringComparison.Ordinal)];
        }
    }
}
