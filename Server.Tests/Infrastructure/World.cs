using System.Collections.Concurrent;
using System.Security.Cryptography;
using Microsoft.Extensions.DependencyInjection;
using TrustLine.Client;
using TrustLine.Protocol.Crypto;
using TrustLine.Server.Tests.Crypto;

namespace TrustLine.Server.Tests.Infrastructure;

public enum StoreUnderTest
{
    Redis,
    Embedded,
}

/// <summary>
/// One organisation with fresh keys, one or more real nodes (sharing one Redis key prefix), and helpers to
/// make seekers and responders with the real client SDK.
/// </summary>
internal sealed class World : IAsyncDisposable
{
    private readonly List<IAsyncDisposable> owned = [];

    private World(TestOrganisation org, IReadOnlyList<TrustLineNode> nodes, string prefix, LogCapture logs)
    {
        Org = org;
        Nodes = nodes;
        Prefix = prefix;
        Logs = logs;
    }

    public TestOrganisation Org { get; }

    public IReadOnlyList<TrustLineNode> Nodes { get; }

    public string Prefix { get; }

    public LogCapture Logs { get; }

    public static async Task<World> StartAsync(StoreUnderTest store = StoreUnderTest.Redis, int nodes = 1, IReadOnlyDictionary<string, string?>? extra = null, bool denyOwnResponder = false,
        TimeProvider? time = null, Action<IServiceCollection>? services = null)
    {
        var org = new TestOrganisation(orgId: RandomNumberGenerator.GetBytes(16), issuerNotBefore: Now - 3600, issuerNotAfter: Now + (80 * 86400),
            responderNotBefore: Now - 3600, responderNotAfter: Now + (10 * 86400), fresh: true);
        var prefix = TestRedis.NewPrefix();
        var logs = new LogCapture();
        var settings = OrganisationSettings(org);
        if (denyOwnResponder)
        {
            settings["Organisations:test:DeniedResponders:0"] = Certificate.Fingerprint(org.ResponderPublic);
        }

        foreach (var (key, value) in extra ?? new Dictionary<string, string?>())
        {
            settings[key] = value;
        }

        var started = new List<TrustLineNode>();
        for (var i = 0; i < nodes; i++)
        {
            started.Add(await TrustLineNode.StartAsync(new NodeSettings
            {
                Redis = store == StoreUnderTest.Redis ? TestRedis.Server.Configuration : null,
                KeyPrefix = prefix,
                Settings = settings,
                Logs = logs,
                Time = time,
                Services = services,
            }));
        }

        return new World(org, started, prefix, logs);
    }

    public static long Now => DateTimeOffset.UtcNow.ToUnixTimeSeconds();

    public static Dictionary<string, string?> OrganisationSettings(TestOrganisation org) => new()
    {
        ["Organisations:test:Id"] = Convert.ToHexStringLower(org.OrgId),
        ["Organisations:test:Name"] = "Test organisation",
        ["Organisations:test:Languages:0"] = "nl",
        ["Organisations:test:Languages:1"] = "en",
        ["Organisations:test:Topics:0"] = "health",
        ["Organisations:test:Roots:0"] = Convert.ToHexStringLower(org.RootPublic),
        ["Sessions:ReaperInterval"] = "00:00:00.100",
        // Tests open sessions in quick succession with raw hub connections that solve no puzzle; the
        // admission tests turn pressure back on.
        ["Admission:OpenRateThreshold"] = "10000",
        ["Admission:QueueFillThreshold"] = "1",
        // Every test connection comes from 127.0.0.1; the tests of the per-address cap turn it back on.
        ["Limits:PlacesPerAddress"] = "0",
        ["Limits:ConnectionsPerAddress"] = "0",
    };

    public SeekerClient Seeker(int node = 0, Pseudonym? pseudonym = null)
    {
        var client = new SeekerClient(Nodes[node].BaseAddress, Org.Pin, pseudonym, new ClientOptions
        {
            FallbackServers = [.. Nodes.Where((_, i) => i != node).Select(n => n.BaseAddress)],
            ReconnectDelays = [TimeSpan.Zero, TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(250), TimeSpan.FromMilliseconds(500), TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1)],
        });
        owned.Add(client);
        return client;
    }

    public async Task<ResponderClient> ResponderAsync(int node = 0, ResponderCredentials? credentials = null)
    {
        var client = await ResponderClient.SignInAsync(Nodes[node].BaseAddress, credentials ?? Org.Credentials(), new ClientOptions
        {
            FallbackServers = [.. Nodes.Where((_, i) => i != node).Select(n => n.BaseAddress)],
            ReconnectDelays = [TimeSpan.Zero, TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(250), TimeSpan.FromMilliseconds(500), TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1)],
        }).WaitAsync(TimeSpan.FromSeconds(15));
        owned.Add(client);
        return client;
    }

    /// <summary>Signs the organisation's responder in over HTTP, as any client would, and returns the raw token.</summary>
    public async Task<string> SignInTokenAsync(int node = 0)
    {
        using var credentials = Org.Credentials();
        using var challengeResponse = await Nodes[node].Http.PostAsync(Protocol.Contracts.Routes.Challenge, null);
        var challenge = Convert.FromBase64String((await System.Net.Http.Json.HttpContentJsonExtensions.ReadFromJsonAsync<Protocol.Contracts.ChallengeResponse>(challengeResponse.Content))!.Challenge);
        using var response = await System.Net.Http.Json.HttpClientJsonExtensions.PostAsJsonAsync(Nodes[node].Http, Protocol.Contracts.Routes.SignIn, new Protocol.Contracts.SignInRequest
        {
            IssuerCertificate = PublicText.Certificate(credentials.Issuer),
            ResponderCertificate = PublicText.Certificate(credentials.Responder),
            Challenge = Convert.ToBase64String(challenge),
            Signature = Convert.ToBase64String(Protocol.Contracts.ResponderSignIn.Sign(credentials.SigningKey, challenge)),
        });
        Assert.That(response.IsSuccessStatusCode, Is.True, "sign-in");
        return (await System.Net.Http.Json.HttpContentJsonExtensions.ReadFromJsonAsync<Protocol.Contracts.SignInResponse>(response.Content))!.Token;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var item in Enumerable.Reverse(owned))
        {
            await item.DisposeAsync();
        }

        foreach (var node in Nodes)
        {
            await node.DisposeAsync();
        }

        Org.Dispose();
    }
}

/// <summary>Collects what an event delivers and awaits counts with a deadline.</summary>
internal sealed class Inbox<T>
{
    private readonly ConcurrentQueue<T> items = new();
    private readonly SemaphoreSlim arrived = new(0);

    public IReadOnlyList<T> Items => [.. items];

    public void Add(T item)
    {
        items.Enqueue(item);
        arrived.Release();
    }

    public async Task<IReadOnlyList<T>> WaitForAsync(int count, string what, double seconds = 15)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));
        try
        {
            while (items.Count < count)
            {
                await arrived.WaitAsync(deadline.Token);
            }
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"Timed out after {seconds} s waiting for {count} {what}; got {items.Count}: {string.Join(" | ", items)}");
        }

        return Items;
    }
}
