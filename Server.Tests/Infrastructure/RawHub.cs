using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using TrustLine.Protocol.Contracts;

namespace TrustLine.Server.Tests.Infrastructure;

/// <summary>A hub connection driven by hand (no SDK), for tests that send what a real client never would.</summary>
internal static class RawHub
{
    /// <summary>A started MessagePack connection to the seeker hub of <paramref name="node"/>.</summary>
    public static async Task<HubConnection> SeekerAsync(TrustLineNode node)
    {
        var hub = new HubConnectionBuilder()
            .WithUrl(new Uri(node.BaseAddress, Routes.SeekerHub), HttpTransportType.WebSockets, o => o.SkipNegotiation = true)
            .AddMessagePackProtocol()
            .Build();
        await hub.StartAsync().WaitAsync(TimeSpan.FromSeconds(10));
        return hub;
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
