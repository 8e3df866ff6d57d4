using TrustLine.Protocol.Crypto;

namespace TrustLine.Client;

/// <summary>
/// Ends a session whose receive gap outlives the hold time even when nothing else arrives to reveal it
/// (PROTOCOL.md §3): one timer at a time per channel, checked under the channel's own lock.
/// </summary>
internal sealed class GapWatch(SemaphoreSlim gate, Func<SecureChannel?> channel, Func<Task> onExpired, TimeProvider time)
{
    private int watching;

    public void Start()
    {
        if (Interlocked.Exchange(ref watching, 1) == 0)
        {
            _ = WatchAsync();
        }
    }

    private async Task WatchAsync()
    {
        await Task.Delay(SecureChannel.MaxHoldTime + TimeSpan.FromSeconds(1), time);
        bool expired;
        await gate.WaitAsync();
        try
        {
            expired = channel()?.CheckGap() ?? false;
        }
        finally
        {
            gate.Release();
            Volatile.Write(ref watching, 0);
        }

        if (expired)
        {
            await onExpired();
        }
    }
}
