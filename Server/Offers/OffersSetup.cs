using TrustLine.Server.Storage;

namespace TrustLine.Server.Offers;

public static class OffersSetup
{
    /// <summary>Presence and offers on the node's store (Redis or embedded), the router and its sweeper.</summary>
    public static IHostApplicationBuilder AddOffers(this IHostApplicationBuilder builder)
    {
        builder.Services.AddSingleton<IOfferStore>(sp => sp.GetRequiredService<StoreMode>().Kind == StoreKind.Redis
            ? new RedisOfferStore(sp.GetRequiredService<StackExchange.Redis.IConnectionMultiplexer>(), sp.GetRequiredService<RedisKeys>())
            : new EmbeddedOfferStore());
        builder.Services.AddSingleton<OfferRouter>();
        builder.Services.AddHostedService<OfferSweeper>();
        return builder;
    }
}
