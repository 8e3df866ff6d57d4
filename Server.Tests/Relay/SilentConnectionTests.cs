using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using TrustLine.Protocol.Contracts;
using TrustLine.Server.Limits;
using TrustLine.Server.Tests.Infrastructure;

namespace TrustLine.Server.Tests.Relay;

/// <summary>
/// Issue 10: a seeker connection that completes the SignalR handshake and then calls nothing costs the node memory
/// for as long as it stays, so it is closed at <c>Limits:ClientTimeout</c> (30 s as shipped; the sweep runs every
/// second, so within 31 s). Driven on the node's fake clock with the shipped limits.
/// </summary>
[TestFixture(StoreUnderTest.Redis)]
[TestFixture(StoreUnderTest.Embedded)]
public sealed class SilentConnectionTests(StoreUnderTest store)
{
    [Test]
    public async Task ASilentSeekerConnectionIsClosedAtTheClientTimeoutAndOneThatCalledStays()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var world = await World.StartAsync(store, time: time);
        var node = world.Nodes[0];
        var silent = node.Services.GetRequiredService<SilentConnections>();

        await using var first = await RawHub.SeekerAsync(node);
        var firstClosed = ClosedOf(first);
        await SeenAsync(silent, 1);
        time.Advance(TimeSpan.FromSeconds(20));
        await using var second = await RawHub.SeekerAsync(node);
        var secondClosed = ClosedOf(second);
        await using var caller = await RawHub.SeekerAsync(node);
        await SeenAsync(silent, 3);
        Assert.That(await RawHub.CodeOfAsync(caller.InvokeAsync(SeekerHubMethods.Close)), Is.EqualTo(ErrorCodes.NoSuchSession), "its first call");

        time.Advance(TimeSpan.FromSeconds(9));
        silent.Sweep();
        time.Advance(TimeSpan.FromSeconds(1));
        silent.Sweep();
        await firstClosed.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Multiple(() =>
        {
            Assert.That(second.State, Is.EqualTo(HubConnectionState.Connected), "silent for 10 s only");
            Assert.That(caller.State, Is.EqualTo(HubConnectionState.Connected), "it called");
        });

        time.Advance(TimeSpan.FromSeconds(20));
        silent.Sweep();
        await secondClosed.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.That(await RawHub.CodeOfAsync(caller.InvokeAsync(SeekerHubMethods.Close)), Is.EqualTo(ErrorCodes.NoSuchSession),
            "a connection that has called is left to SignalR's own timeout, which its pings keep alive");
    }

    /// <summary>The handshake's answer can reach the client before the hub's OnConnectedAsync has run: the deadline starts there.</summary>
    private static Task SeenAsync(SilentConnections silent, int count) =>
        Eventually.TrueAsync(() => Task.FromResult(silent.Silent == count), TimeSpan.FromSeconds(10), $"the node tracks {count} silent connections");

    private static Task ClosedOf(HubConnection connection)
    {
        var closed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        connection.Closed += _ =>
        {
            closed.TrySetResult();
            return Task.CompletedTask;
        };
        return closed.Task;
    }
}
