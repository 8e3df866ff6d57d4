using Microsoft.AspNetCore.SignalR.Client;

namespace TrustLine.Client;

/// <summary>Where a client's connection stands.</summary>
public enum ConnectionStatus
{
    /// <summary>Connected to a node.</summary>
    Connected,

    /// <summary>The connection dropped; the client is trying to come back (to any node) within the grace period.</summary>
    Reconnecting,

    /// <summary>The client stopped, or gave up reconnecting.</summary>
    Closed,
}

/// <summary>
/// A hub connection that comes back by itself after network loss, trying the given servers in turn (any
/// node will do), and runs the caller's resume step on every new connection before reporting it connected.
/// </summary>
internal sealed class ReconnectingConnection : IAsyncDisposable
{
    private readonly IReadOnlyList<Uri> servers;
    private readonly string path;
    private readonly ClientOptions options;
    private readonly Func<Task<string?>>? token;
    private readonly Action<HubConnection> register;
    private readonly Func<HubConnection, Task> resume;
    private readonly Action<ConnectionStatus> report;
    private readonly CancellationTokenSource stopping = new();
    private HubConnection? current;
    private int serverIndex;
    private int reconnecting;
    private int gaveUp;
    private TaskCompletionSource<HubConnection> active = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int disposed;

    public ReconnectingConnection(
        IReadOnlyList<Uri> servers,
        string path,
        ClientOptions options,
        Func<Task<string?>>? token,
        Action<HubConnection> register,
        Func<HubConnection, Task> resume,
        Action<ConnectionStatus> report)
    {
        this.servers = servers;
        this.path = path;
        this.options = options;
        this.token = token;
        this.register = register;
        this.resume = resume;
        this.report = report;
    }

    public HubConnection Current => current ?? throw new InvalidOperationException("Not connected yet.");

    /// <summary>The node the client is connected to now.</summary>
    public Uri Server => servers[serverIndex % servers.Count];

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        Activate(await ConnectAsync(cancellationToken));
        report(ConnectionStatus.Connected);
    }

    /// <summary>Makes a resumed connection the one every call goes through.</summary>
    private void Activate(HubConnection connection)
    {
        current = connection;
        active.TrySetResult(connection);
    }

    /// <summary>The current connection once it is usable: waits while the client is reconnecting.</summary>
    public Task<HubConnection> ActiveAsync(CancellationToken cancellationToken) => Volatile.Read(ref active).Task.WaitAsync(cancellationToken);

    /// <summary>Cuts the connection as a network loss would; the client then reconnects by itself, to <paramref name="preferServer"/> first if given.</summary>
    public async Task DropAsync(int? preferServer)
    {
        if (preferServer is { } index)
        {
            serverIndex = index;
        }

        if (current is { } connection)
        {
            await connection.StopAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref disposed, 1) == 1)
        {
            return;
        }

        await stopping.CancelAsync();
        if (current is { } connection)
        {
            await connection.DisposeAsync();
        }

        stopping.Dispose();
    }

    private async Task<HubConnection> ConnectAsync(CancellationToken cancellationToken)
    {
        var connection = HubCalls.Build(Server, path, token);
        register(connection);
        connection.Closed += OnClosedAsync;
        try
        {
            await connection.StartAsync(cancellationToken);
            return connection;
        }
        catch
        {
            connection.Closed -= OnClosedAsync;
            await connection.DisposeAsync();
            throw;
        }
    }

    private async Task OnClosedAsync(Exception? error)
    {
        if (stopping.IsCancellationRequested)
        {
            GiveUp();
            return;
        }

        await ReconnectLoopAsync();
    }

    private async Task ReconnectLoopAsync()
    {
        // One loop at a time. A connection that closes while the loop runs (during its resume, or just after it
        // became current) finds the flag set and returns; the loop's own state check picks it up instead.
        if (Interlocked.Exchange(ref reconnecting, 1) == 1)
        {
            return;
        }

        try
        {
            while (NeedsReconnect())
            {
                await ReconnectAsync();
            }
        }
        finally
        {
            Volatile.Write(ref reconnecting, 0);
        }

        // A close between the last check and the reset was ignored above: look once more.
        if (NeedsReconnect())
        {
            await ReconnectLoopAsync();
        }
    }

    private bool NeedsReconnect() =>
        !stopping.IsCancellationRequested && Volatile.Read(ref gaveUp) == 0 && current is { State: HubConnectionState.Disconnected };

    private async Task ReconnectAsync()
    {
        if (active.Task.IsCompleted)
        {
            Volatile.Write(ref active, new TaskCompletionSource<HubConnection>(TaskCreationOptions.RunContinuationsAsynchronously));
        }

        report(ConnectionStatus.Reconnecting);
        var old = current;
        foreach (var delay in options.ReconnectDelays)
        {
            HubConnection? next = null;
            try
            {
                await Task.Delay(delay, options.Time, stopping.Token);
                next = await ConnectAsync(stopping.Token);

                // The resume runs on `next` before it becomes current, so no call of the client's reaches the
                // new node before the session is resumed there; the client's outbox pump then re-sends.
                await resume(next);
                Activate(next);
                report(ConnectionStatus.Connected);
                if (old is not null)
                {
                    old.Closed -= OnClosedAsync;
                    await old.DisposeAsync();
                }

                return;
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                GiveUp();
                return;
            }
            catch (TrustLineException)
            {
                // The server refused the resume (grace over, session ended): nothing to come back to.
                GiveUp();
                return;
            }
            catch (Exception e) when (e is HttpRequestException or System.Net.WebSockets.WebSocketException or IOException or InvalidOperationException or TimeoutException)
            {
                serverIndex++; // that node is gone: try the next one
                if (next is not null && next != current)
                {
                    next.Closed -= OnClosedAsync;
                    await next.DisposeAsync();
                }
            }
        }

        GiveUp();
    }

    private void GiveUp()
    {
        Volatile.Write(ref gaveUp, 1);
        active.TrySetException(new InvalidOperationException("The connection could not be restored."));
        report(ConnectionStatus.Closed);
    }
}
