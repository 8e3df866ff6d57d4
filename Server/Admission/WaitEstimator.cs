using System.Collections.Concurrent;
using TrustLine.Protocol.Contracts;

namespace TrustLine.Server.Admission;

/// <summary>
/// An honest wait, as a range or not at all: never one confident number. From the takes of the last hour per
/// organisation on this node, the take rate λ (takes per second). Counsellors take the head of the one
/// queue whatever its language, so the rate is the organisation's, not a language's; a seeker at place p
/// waits for p takes, which for takes arriving at rate λ is an Erlang(p, λ) time. The range is its p50–p90,
/// by the Wilson–Hilferty approximation: p50 ≈ (p − 1/3) / λ, p90 ≈ (p + 1.28·√p + 0.4) / λ. With fewer than
/// <see cref="MinimumTakes"/> takes in the window there is no estimate. Only take times are kept, never tied
/// to a session, and only for the window.
/// </summary>
public sealed class WaitEstimator(TimeProvider time)
{
    public const int MinimumTakes = 5;
    public static readonly TimeSpan Window = TimeSpan.FromHours(1);

    private readonly ConcurrentDictionary<string, Queue<DateTimeOffset>> takes = new();

    /// <summary>A waiting session of this organisation was taken.</summary>
    public void Taken(string orgIdHex)
    {
        var queue = takes.GetOrAdd(orgIdHex, _ => new Queue<DateTimeOffset>());
        lock (queue)
        {
            queue.Enqueue(time.GetUtcNow());
            Trim(queue);
        }
    }

    /// <summary>
    /// The mean time between takes that <see cref="Estimate"/> works from, for seekers that compute their own
    /// range (<see cref="QueueStatus.WaitRange"/>, the same formula); null when the data are too thin.
    /// </summary>
    public double? SecondsPerTake(string orgIdHex) => Estimate(orgIdHex, 1) is { } one ? one.Low.TotalSeconds / (2.0 / 3) : null;

    /// <summary>The p50–p90 wait for place <paramref name="place"/> (1 is next), or null when the data are too thin.</summary>
    public (TimeSpan Low, TimeSpan High)? Estimate(string orgIdHex, int place)
    {
        if (place < 1 || !takes.TryGetValue(orgIdHex, out var queue))
        {
            return null;
        }

        int count;
        DateTimeOffset oldest;
        lock (queue)
        {
            Trim(queue);
            count = queue.Count;
            oldest = count > 0 ? queue.Peek() : default;
        }

        if (count < MinimumTakes)
        {
            return null;
        }

        // The rate over the span the samples cover (at least a quarter of the window, so a burst of takes
        // in the last minute does not promise a wait of seconds).
        var span = Math.Max((time.GetUtcNow() - oldest).TotalSeconds, Window.TotalSeconds / 4);
        var rate = count / span;
        var low = Math.Max(0, (place - (1.0 / 3)) / rate);
        var high = (place + (1.28 * Math.Sqrt(place)) + 0.4) / rate;
        return (TimeSpan.FromSeconds(low), TimeSpan.FromSeconds(high));
    }

    /// <summary>Puts the estimate for the status's place into it (−1 for both ends when there is none).</summary>
    public QueueStatus Fill(QueueStatus status, string orgIdHex)
    {
        var estimate = Estimate(orgIdHex, status.Position);
        status.WaitLowSeconds = estimate is { } e ? (int)Math.Min(int.MaxValue, e.Low.TotalSeconds) : -1;
        status.WaitHighSeconds = estimate is { } f ? (int)Math.Min(int.MaxValue, Math.Ceiling(f.High.TotalSeconds)) : -1;
        return status;
    }

    private void Trim(Queue<DateTimeOffset> queue)
    {
        var cutoff = time.GetUtcNow() - Window;
        while (queue.Count > 0 && queue.Peek() < cutoff)
        {
            queue.Dequeue();
        }
    }
}
