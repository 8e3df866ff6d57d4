using System.Collections.Concurrent;
using Microsoft.AspNetCore.SignalR.Client;
using TrustLine.Client;
using TrustLine.Protocol.Contracts;
using TrustLine.Server.Tests.Infrastructure;

namespace TrustLine.Server.Tests.Client;

/// <summary>The SDK's connection comes back by itself, whenever the connection it came back on dies.</summary>
public sealed class ReconnectingConnectionTests
{
    [Test]
    public async Task ConnectionThatDiesRightAfterItBecameCurrentIsReplacedToo()
    {
        await using var world = await World.StartAsync(StoreUnderTest.Embedded);
        var statuses = new ConcurrentQueue<ConnectionStatus>();
        var connected = 0;
        var options = new ClientOptions { ReconnectDelays = [TimeSpan.Zero, TimeSpan.Zero, TimeSpan.Zero] };
        ReconnectingConnection? connection = null;
        connection = new ReconnectingConnection([world.Nodes[0].BaseAddress], Routes.SeekerHub, options, null, _ => { }, _ => Task.CompletedTask, status =>
        {
            statuses.Enqueue(status);
            if (status == ConnectionStatus.Connected && Interlocked.Increment(ref connected) == 2)
            {
                // The first reconnect's connection dies after it became current, while its reconnect loop is still
                // running (its Closed event fires while this report runs).
                connection!.Current.StopAsync().Wait(TimeSpan.FromSeconds(10));
            }
        });
        await using var _ = connection;
        await connection.StartAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));

        await connection.DropAsync(null).WaitAsync(TimeSpan.FromSeconds(10));

        await Eventually.TrueAsync(() => Task.FromResult(Volatile.Read(ref connected) >= 3 && connection.Current.State == HubConnectionState.Connected),
            TimeSpan.FromSeconds(15), "the client is connected again on a live connection");
        var active = await connection.ActiveAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Multiple(() =>
        {
            Assert.That(active.State, Is.EqualTo(HubConnectionState.Connected));
            Assert.That(statuses.Last(), Is.EqualTo(ConnectionStatus.Connected));
        });
    }
}
