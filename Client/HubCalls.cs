using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;

namespace TrustLine.Client;

/// <summary>How a client connects and reconnects.</summary>
public sealed class ClientOptions
{
    /// <summary>Clock for certificate checks and gap timers.</summary>
    public TimeProvider Time { get; set; } = TimeProvider.System;

    /// <summary>Delays between reconnect attempts; after the last one the client gives up and reports it.</summary>
    public IReadOnlyList<TimeSpan> ReconnectDelays { get; set; } =
        [TimeSpan.Zero, TimeSpan.FromMilliseconds(250), TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(20), TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(30)];

    /// <summary>
    /// Server addresses to try, in turn, on reconnect (any node of one deployment); empty means only the one
    /// given to the client. Useful when a load balancer is not in front of the nodes.
    /// </summary>
    public IReadOnlyList<Uri> FallbackServers { get; set; } = [];
}

internal static class HubCalls
{
    public static HubConnection Build(Uri server, string path, Func<Task<string?>>? token = null) =>
        new HubConnectionBuilder()
            .WithUrl(new Uri(server, path), HttpTransportType.WebSockets, o =>
            {
                // WebSockets only, no negotiation: a reconnect may land on any node.
                o.SkipNegotiation = true;
                if (token is not null)
                {
                    o.AccessTokenProvider = token;
                }
            })
            .AddMessagePackProtocol()
            .Build();

    public static async Task<T> InvokeAsync<T>(this HubConnection connection, string method, object?[] args, CancellationToken cancellationToken)
    {
        try
        {
            return await connection.InvokeCoreAsync<T>(method, args, cancellationToken);
        }
        catch (HubException e)
        {
            throw TrustLineException.From(e);
        }
    }

    public static async Task CallAsync(this HubConnection connection, string method, object?[] args, CancellationToken cancellationToken)
    {
        try
        {
            await connection.InvokeCoreAsync(method, args, cancellationToken);
        }
        catch (HubException e)
        {
            throw TrustLineException.From(e);
        }
    }
}
