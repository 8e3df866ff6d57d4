using TrustLine.Protocol.Crypto;

namespace TrustLine.Client;

/// <summary>
/// Ends a session whose receive gap outlives the hold time even when nothing else arrives to reveal it
/// (PROTOCOL.md §3). One timer at a time per channel, due when the oldest held ciphertext expires; when it
/// fires and a later gap is still open, it re-arms for that one. Call <see cref="Start"/> under the channel's lock.
/// </summary>
internal sealed class GapWatch(Lock sync, Func<SecureChannel?> channel, Func<Task> onExpired, TimeProvider time, CancellationToken stopping)
{
    // A second past the hold time, so the check at the due time finds the gap expired.
    private static readonly TimeSpan Margin = TimeSpan.FromSeconds(1);
    private bool watching;

    /// <summary>The running watch, if any (completed when none runs).</summary>
    public Task Running { get; private set; } = Task.CompletedTask;

    public void Start()
    {
        if (!watching)
        {
            watching = true;
            Running = WatchAsync();
        }
    }

    private async Task WatchAsync()
    {
        // Off the caller's stack: Start runs under the channel's lock.
        await Task.Yield();
        try
        {
            while (true)
            {
                DateTimeOffset? since;
                lock (sync)
                {
                    since = channel()?.OldestHeldAt;
                    if (since is null)
                    {
                        watching = false;
                        return;
                    }
                }

                var due = since.Value + SecureChannel.MaxHoldTime + Margin - time.GetUtcNow();
                if (due > TimeSpan.Zero)
                {
                    await Task.Delay(due, time, stopping);
                }

                bool expired;
                lock (sync)
                {
                    expired = channel()?.CheckGap() ?? false;
                    if (expired)
                    {
                        watching = false;
                    }
                }

                if (expired)
                {
                    await onExpired();
                    return;
                }

                // Not expired: the gap that armed the timer filled, but a later one may be open. Look again.
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            // The session was disposed.
        }
    }
}
