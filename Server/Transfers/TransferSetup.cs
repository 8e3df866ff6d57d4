namespace TrustLine.Server.Transfers;

public static class TransferSetup
{
    public static IHostApplicationBuilder AddTransfers(this IHostApplicationBuilder builder)
    {
        builder.Services.AddSingleton<TransferRules>();
        builder.Services.AddSingleton<TransferNotices>();
        builder.Services.AddSingleton<TransferLapse>();
        return builder;
    }
}
