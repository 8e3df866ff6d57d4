using Microsoft.AspNetCore.SignalR;

namespace TrustLine.Server.Relay;

/// <summary>
/// Calls a singleton hub filter directly. A filter added by type (<c>AddFilter&lt;T&gt;()</c>) is wrapped by SignalR
/// in a factory that resolves it on every call and awaits it in an async method of its own: for each filter, one
/// more async state box on every hub call that waits for the store (BENCHMARKS.md, "Relay hot path on Redis (issue
/// 15, third pass)"). This wrapper only forwards, so it adds no await. The filter is resolved on its first call, not
/// when the hub options are built: the filters depend on services that themselves depend on those options.
/// </summary>
internal sealed class SingletonFilter<TFilter> : IHubFilter
    where TFilter : class, IHubFilter
{
    private TFilter? filter;

    public ValueTask<object?> InvokeMethodAsync(HubInvocationContext invocationContext, Func<HubInvocationContext, ValueTask<object?>> next) =>
        Of(invocationContext.ServiceProvider).InvokeMethodAsync(invocationContext, next);

    public Task OnConnectedAsync(HubLifetimeContext context, Func<HubLifetimeContext, Task> next) =>
        Of(context.ServiceProvider).OnConnectedAsync(context, next);

    public Task OnDisconnectedAsync(HubLifetimeContext context, Exception? exception, Func<HubLifetimeContext, Exception?, Task> next) =>
        Of(context.ServiceProvider).OnDisconnectedAsync(context, exception, next);

    private TFilter Of(IServiceProvider services) => filter ??= services.GetRequiredService<TFilter>();
}

public static class SingletonFilterExtensions
{
    /// <summary>Adds <typeparamref name="TFilter"/>, which must be registered as a singleton, called without SignalR's per-call factory.</summary>
    public static void AddSingletonFilter<TFilter>(this HubOptions options)
        where TFilter : class, IHubFilter => options.AddFilter(new SingletonFilter<TFilter>());
}
