using Microsoft.AspNetCore.SignalR;
using TrustLine.Server.Relay;
using TrustLine.Server.Responders;

namespace TrustLine.Server.Operations.Metrics;

/// <summary>
/// Counts counsellors connected to this node, by organisation, for the signed-in and available gauges. It
/// holds each responder connection's state only while the connection lasts, and exports counts only.
/// </summary>
internal sealed class PresenceFilter(TrustLineMetrics metrics) : IHubFilter
{
    private const string ItemKey = "trustline.presence";

    public async Task OnConnectedAsync(HubLifetimeContext context, Func<HubLifetimeContext, Task> next)
    {
        await next(context);
        if (context.Hub is ResponderHub && ConnectionState.Of(context.Context) is { Grant: { } grant } state)
        {
            var presence = new ResponderPresence(metrics.Organisation(grant.OrgId), () => HoldsNoSession(state));
            context.Context.Items[ItemKey] = presence;
            metrics.Connected(presence);
        }
    }

    public async Task OnDisconnectedAsync(HubLifetimeContext context, Exception? exception, Func<HubLifetimeContext, Exception?, Task> next)
    {
        if (context.Context.Items.TryGetValue(ItemKey, out var value) && value is ResponderPresence presence)
        {
            metrics.Disconnected(presence);
        }

        await next(context, exception);
    }

    private static bool HoldsNoSession(ConnectionState state)
    {
        return state.Snapshot().All(link => link.Ended);
    }
}
