using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using TrustLine.Protocol.Contracts;
using TrustLine.Protocol.Crypto;
using TrustLine.Server.Tests.Infrastructure;

namespace TrustLine.Server.Tests.Relay;

/// <summary>A responder connection lives only as long as its grant: token expiry and the denylist end it.</summary>
public sealed class ResponderGrantTests
{
    [Test]
    public async Task ResponderConnectionClosesWhenItsTokenExpiresAndCannotComeBack()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var world = await World.StartAsync(StoreUnderTest.Embedded, services: s => s.AddSingleton<TimeProvider>(clock));
        var token = await world.SignInTokenAsync();
        await using var hub = Connect(world, token);
        var closed = Closed(hub);
        await hub.StartAsync().WaitAsync(TimeSpan.FromSeconds(10));
        await hub.InvokeAsync<QueueEntry[]>(ResponderHubMethods.GetQueue).WaitAsync(TimeSpan.FromSeconds(10));

        clock.Advance(TimeSpan.FromHours(8) + TimeSpan.FromSeconds(1));

        await closed.WaitAsync(TimeSpan.FromSeconds(10));
        await using var again = Connect(world, token);
        Assert.That(async () => await again.StartAsync().WaitAsync(TimeSpan.FromSeconds(10)), Throws.Exception, "an expired token opens no new connection");
    }

    [Test]
    public async Task ResponderConnectionWithALiveTokenStaysOpen()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var world = await World.StartAsync(StoreUnderTest.Embedded, services: s => s.AddSingleton<TimeProvider>(clock));
        var token = await world.SignInTokenAsync();
        await using var hub = Connect(world, token);
        var closed = Closed(hub);
        await hub.StartAsync().WaitAsync(TimeSpan.FromSeconds(10));

        clock.Advance(TimeSpan.FromHours(7));

        Assert.That(await hub.InvokeAsync<QueueEntry[]>(ResponderHubMethods.GetQueue).WaitAsync(TimeSpan.FromSeconds(10)), Is.Empty);
        Assert.That(closed.IsCompleted, Is.False);
    }

    [Test]
    public async Task DenyingAResponderKeyClosesItsLiveConnectionAndItsToken()
    {
        await using var world = await World.StartAsync(StoreUnderTest.Embedded);
        var token = await world.SignInTokenAsync();
        await using var hub = Connect(world, token);
        var closed = Closed(hub);
        await hub.StartAsync().WaitAsync(TimeSpan.FromSeconds(10));

        var configuration = (IConfigurationRoot)world.Nodes[0].Services.GetRequiredService<IConfiguration>();
        configuration["Organisations:test:DeniedResponders:0"] = Certificate.Fingerprint(world.Org.ResponderPublic);
        configuration.Reload();

        await closed.WaitAsync(TimeSpan.FromSeconds(10));
        await using var again = Connect(world, token);
        Assert.That(async () => await again.StartAsync().WaitAsync(TimeSpan.FromSeconds(10)), Throws.Exception, "a denied key's token opens no new connection");
    }

    private static HubConnection Connect(World world, string token) =>
        new HubConnectionBuilder()
            .WithUrl(new Uri(world.Nodes[0].BaseAddress, Routes.ResponderHub), HttpTransportType.WebSockets, o =>
            {
                o.SkipNegotiation = true;
                o.AccessTokenProvider = () => Task.FromResult<string?>(token);
            })
            .AddMessagePackProtocol()
            .Build();

    private static Task Closed(HubConnection hub)
    {
        var closed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        hub.Closed += _ =>
        {
            closed.TrySetResult();
            return Task.CompletedTask;
        };
        return closed.Task;
    }
}
