using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.Logging;
using TrustLine.Protocol.Contracts;
using TrustLine.Server.Tests.Infrastructure;

namespace TrustLine.Server.Tests.Relay;

/// <summary>What a refusal looks like on the wire and in the logs.</summary>
public sealed class RefusalTextTests
{
    [Test]
    public async Task RefusalReachesTheClientAsExactlyCodeAndSentence()
    {
        await using var world = await World.StartAsync(StoreUnderTest.Embedded);
        await using var hub = await RawHub.SeekerAsync(world.Nodes[0]);

        var error = Assert.ThrowsAsync<HubException>(async () => await hub.InvokeAsync(SeekerHubMethods.Close).WaitAsync(TimeSpan.FromSeconds(10)));

        Assert.That(error!.Message, Is.EqualTo("no_such_session: This connection holds no such session."));
    }

    [Test]
    public async Task EachRefusalIsOneInformationLineWithNoStackTrace()
    {
        await using var world = await World.StartAsync(StoreUnderTest.Embedded);
        await using var hub = await RawHub.SeekerAsync(world.Nodes[0]);
        var before = world.Logs.Entries.Count;

        Assert.ThrowsAsync<HubException>(async () => await hub.InvokeAsync(SeekerHubMethods.Close).WaitAsync(TimeSpan.FromSeconds(10)));
        // The refusal's line is written before the completion leaves the server.
        var lines = world.Logs.Entries.Skip(before).ToList();

        Assert.Multiple(() =>
        {
            Assert.That(lines.Where(l => l.EventId.Id == 205).Select(l => (l.Level, l.Text.Split(" | ")[0])),
                Is.EqualTo(new[] { (LogLevel.Information, "Refused Close: no_such_session.") }));
            Assert.That(lines.Where(l => l.Level >= LogLevel.Warning).Select(l => l.Text), Is.Empty);
            Assert.That(lines.Where(l => l.Text.Contains(" at ", StringComparison.Ordinal)).Select(l => l.Text), Is.Empty, "no stack trace");
        });
    }

    [Test]
    public async Task RefusalsInALoopAreRateLimitedInTheLog()
    {
        await using var world = await World.StartAsync(StoreUnderTest.Embedded);
        await using var hub = await RawHub.SeekerAsync(world.Nodes[0]);

        for (var i = 0; i < 100; i++)
        {
            Assert.ThrowsAsync<HubException>(async () => await hub.InvokeAsync(SeekerHubMethods.Close).WaitAsync(TimeSpan.FromSeconds(10)));
        }

        Assert.That(world.Logs.Entries.Count(l => l.EventId.Id == 205), Is.InRange(1, 20), "at most a burst of refusal lines per window");
    }

    [Test]
    public async Task TheJsonHubProtocolIsNotOffered()
    {
        await using var world = await World.StartAsync(StoreUnderTest.Embedded);
        await using var json = new HubConnectionBuilder()
            .WithUrl(new Uri(world.Nodes[0].BaseAddress, Routes.SeekerHub), HttpTransportType.WebSockets, o => o.SkipNegotiation = true)
            .Build();

        Assert.CatchAsync(async () =>
        {
            await json.StartAsync().WaitAsync(TimeSpan.FromSeconds(10));
            await json.InvokeAsync(SeekerHubMethods.Close).WaitAsync(TimeSpan.FromSeconds(10));
        });
    }
}
