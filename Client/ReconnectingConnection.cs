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
    public void Activate(HubConnection connection)
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

        // A connection that fails during our own resume closes too: one reconnect loop at a time.
        if (Interlocked.Exchange(ref reconnecting, 1) == 1)
        {
            return;
        }

        try
        {
            await ReconnectAsync();
        }
        finally
        {
            Volatile.Write(ref reconnecting, 0);
        }
    }

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

                // The client resumes on `next` and makes it current itself, under its send gate, so none of
                // its sends can reach the new node before the resume or slip past the resend.
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
        active.TrySetException(new InvalidOperationException("The connection could not be restored."));
        report(ConnectionStatus.Closed);
    }
}
