using TrustLine.Protocol.Crypto;

namespace TrustLine.Server.Operations;

public static class SelfTestSetup
{
    /// <summary>
    /// Runs the cryptography self-test (one RFC 7748 and one RFC 8032 vector through NSec) while the node
    /// is built, so a broken native library stops boot with a sentence instead of failing sessions later.
    /// </summary>
    public static IHostApplicationBuilder AddCryptoSelfTest(this IHostApplicationBuilder builder)
    {
        CryptoSelfTest.EnsureWorking();
        return builder;
    }
}
