namespace TrustLine.Client;

/// <summary>
/// Acknowledges received envelopes cumulatively, in batches: at once after <see cref="Every"/> envelopes,
/// otherwise after a short quiet delay. One ack then covers many envelopes, which keeps the server's store
/// work per envelope low; a reconnect carries the true position anyway, so a late ack loses nothing.
/// </summary>
internal sealed class AckBatcher(Func<ulong, Task> send, TimeProvider time, CancellationToken stopping)
{
    public const int Every = 64;
    private static readonly TimeSpan Quiet = TimeSpan.FromMilliseconds(200);
    private readonly Lock gate = new();
    private ulong? pending;
    private int count;
    private bool scheduled;

    /// <summary>The pending delayed flush, if any.</summary>
    public Task Running { get; private set; } = Task.CompletedTask;

    public Task ReceivedAsync(ulong through)
    {
        lock (gate)
        {
            pending = through;
            count++;
            if (count < Every)
            {
                if (!scheduled)
                {
                    scheduled = true;
                    Running = FlushLaterAsync();
                }

                return Task.CompletedTask;
            }
        }

        return FlushAsync();
    }

    public async Task FlushAsync()
    {
        ulong through;
        lock (gate)
        {
            if (pending is null || stopping.IsCancellationRequested)
            {
                return;
            }

            through = pending.Value;
            pending = null;
            count = 0;
        }

        try
        {
            await send(through);
        }
        catch (Exception e) when (e is InvalidOperationException or IOException or TrustLineException or System.Net.WebSockets.WebSocketException or OperationCanceledException)
        {
            // Offline or ended: the resume reports the position instead.
        }
    }

    private async Task FlushLaterAsync()
    {
        try
        {
            await Task.Delay(Quiet, time, stopping);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        lock (gate)
        {
            scheduled = false;
        }

        await FlushAsync();
    }
}
