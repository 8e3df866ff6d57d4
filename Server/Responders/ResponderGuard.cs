using System.Collections.Concurrent;
using Microsoft.AspNetCore.SignalR;
using TrustLine.Protocol.Contracts;
using TrustLine.Server.Organisations;
using TrustLine.Server.Relay;
using TrustLine.Server.Sessions;
using TrustLine.Server.Storage;

namespace TrustLine.Server.Responders;

/// <summary>
/// A responder connection lives only as long as its grant: this node's responder connections are closed when
/// their token expires (which is never after their certificate) or their key is added to the organisation's
/// <c>DeniedResponders</c>, and every hub call checks both first. The clock is the server's
/// <see cref="TimeProvider"/>; SignalR's own <c>CloseOnAuthenticationExpiration</c> is on as well.
/// </summary>
public sealed class ResponderGuard(OrganisationDirectory organisations, TimeProvider time, ILogger<ResponderGuard> logger)
{
    private readonly ConcurrentDictionary<string, (HubCallerContext Context, ResponderGrant Grant)> connections = new();

    public void Add(HubCallerContext context, ResponderGrant grant) => connections[context.ConnectionId] = (context, grant);

    public void Remove(HubCallerContext context) => connections.TryRemove(context.ConnectionId, out _);

    /// <summary>Why <paramref name="grant"/> no longer admits anything, or null while it does.</summary>
    public Refusal? Check(ResponderGrant grant)
    {
        if (grant.ExpiresAt <= time.GetUtcNow())
        {
            return Refuse.With(ErrorCodes.TokenExpired, "The responder token has expired; sign in again.");
        }

        return organisations.Find(grant.OrgId) is { } org && !org.DeniedFingerprints.Contains(grant.ResponderId)
            ? null
            : Refuse.With(ErrorCodes.Denied, "This responder key may no longer be used.");
    }

    /// <summary>Closes every connection of this node whose grant no longer admits it.</summary>
    public void Sweep()
    {
        foreach (var (_, (context, grant)) in connections)
        {
            if (Check(grant) is { } refusal)
            {
                ResponderLog.ConnectionClosed(logger, refusal.Code);
                Remove(context);
                context.Abort();
            }
        }
    }
}

/// <summary>Refuses any responder hub call once the connection's grant has expired or its key is denied, and closes the connection.</summary>
internal sealed class ResponderGrantFilter(ResponderGuard guard) : IHubFilter
{
    public ValueTask<object?> InvokeMethodAsync(HubInvocationContext context, Func<HubInvocationContext, ValueTask<object?>> next)
    {
        if (ConnectionState.Of(context.Context).Grant is { } grant && guard.Check(grant) is { } refusal)
        {
            context.Context.Abort();
            throw new RefusedException(refusal.Code, refusal.Message);
        }

        return next(context);
    }
}

/// <summary>Sweeps once a second on the server's clock, and at once whenever the organisations' settings change.</summary>
internal sealed class ResponderGuardSweeper(ResponderGuard guard, OrganisationDirectory organisations, TimeProvider time) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var changes = organisations.OnChange(guard.Sweep);
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1), time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                guard.Sweep();
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }
}
