using Microsoft.AspNetCore.SignalR;
using StackExchange.Redis;
using TrustLine.Protocol.Contracts;
using TrustLine.Server.Sessions;

namespace TrustLine.Server.Relay;

/// <summary>
/// Turns a handler's refusal into a <see cref="HubException"/> with <c>"code: sentence"</c> (the only text a
/// client ever sees), unwraps a success into its value, and maps a store outage to <c>unavailable</c>.
/// Logs codes and method names only.
/// </summary>
internal sealed class OutcomeFilter(ILogger<OutcomeFilter> logger) : IHubFilter
{
    public async ValueTask<object?> InvokeMethodAsync(HubInvocationContext context, Func<HubInvocationContext, ValueTask<object?>> next)
    {
        object? result;
        try
        {
            result = await next(context);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            SessionLog.StoreFailed(logger, context.HubMethodName, e.GetType().Name);
            throw new HubException($"{ErrorCodes.Unavailable}: The service cannot reach its store just now; try again shortly.");
        }

        if (result is not IOutcome outcome)
        {
            return result;
        }

        if (!outcome.Succeeded)
        {
            SessionLog.Refused(logger, context.HubMethodName, outcome.Code!);
            throw new HubException($"{outcome.Code}: {outcome.Message}");
        }

        return outcome.BoxedValue is Done ? null : outcome.BoxedValue;
    }
}
