using System.Collections.Concurrent;
using Microsoft.Extensions.Options;

namespace TrustLine.Server.Admission;

/// <summary>
/// How hard opening a session is for one organisation, from what this node sees: the rate of opens over the
/// last window and how full the organisation's queue was when last read (at an open, or by the fill probe). Calm gives 0 (no puzzle);
/// pressure at the threshold gives the base difficulty, and every doubling of pressure two more bits, up to
/// the maximum. Pressure ends by itself: opens age out of the window, and a queue figure older than the
/// window no longer counts. Keeps counts only, per organisation; nothing about who opened.
/// </summary>
public sealed class AdmissionPolicy(IOptions<AdmissionOptions> options, TimeProvider time)
{
    private const int Buckets = 10;

    private readonly ConcurrentDictionary<string, OrgLoad> loads = new();

    /// <summary>True while opens for the organisation need a puzzle: the line is busy.</summary>
    public bool IsUnderPressure(string orgIdHex) => Difficulty(orgIdHex) > 0;

    /// <summary>The difficulty an open for <paramref name="orgIdHex"/> must prove now.</summary>
    public int Difficulty(string orgIdHex)
    {
        if (!loads.TryGetValue(orgIdHex, out var load))
        {
            return 0;
        }

        var o = options.Value;
        var (rate, fill) = load.Read(time.GetUtcNow(), o.Window);
        var pressure = Math.Max(rate / o.OpenRateThreshold, fill / o.QueueFillThreshold);
        if (pressure < 1)
        {
            return 0;
        }

        var extra = 2 * (int)Math.Floor(Math.Log2(Math.Min(pressure, 1 << 16)));
        return Math.Min(o.BaseDifficulty + extra, o.MaxDifficulty);
    }

    /// <summary>Counts one admitted open attempt, with the queue's fill after it (0–1) when known.</summary>
    /// <summary>
    /// True, and the open counted at once, when the organisation is calm enough to open without a puzzle.
    /// Checking and counting are one step, so a burst of concurrent opens cannot all pass as calm before any
    /// of them is counted: at most the threshold's worth in a window do.
    /// </summary>
    public bool TryAdmitWithoutPuzzle(string orgIdHex)
    {
        var o = options.Value;
        return loads.GetOrAdd(orgIdHex, _ => new OrgLoad()).TryAddCalm(time.GetUtcNow(), o.Window,
            (rate, fill) => Math.Max(rate / o.OpenRateThreshold, fill / o.QueueFillThreshold) < 1);
    }

    public void RecordOpen(string orgIdHex, double? queueFill) =>
        loads.GetOrAdd(orgIdHex, _ => new OrgLoad()).Add(time.GetUtcNow(), options.Value.Window, queueFill);

    /// <summary>
    /// The queue's fill as read from the store, with no open: while the puzzle keeps a flood out, no open gets
    /// through to refresh it, and a full queue must keep its pressure until it drains.
    /// </summary>
    public void RecordFill(string orgIdHex, double queueFill) =>
        loads.GetOrAdd(orgIdHex, _ => new OrgLoad()).SetFill(time.GetUtcNow(), queueFill);

    /// <summary>Opens in buckets of a tenth of the window, and the last queue fill seen.</summary>
    private sealed class OrgLoad
    {
        private readonly Lock gate = new();
        private readonly long[] counts = new long[Buckets];
        private readonly long[] stamps = new long[Buckets];
        private double fill;
        private DateTimeOffset fillAt = DateTimeOffset.MinValue;

        public void Add(DateTimeOffset now, TimeSpan window, double? queueFill)
        {
            var slot = Slot(now, window);
            lock (gate)
            {
                var i = (int)(slot % Buckets);
                if (stamps[i] != slot)
                {
                    stamps[i] = slot;
                    counts[i] = 0;
                }

                counts[i]++;
                if (queueFill is { } known)
                {
                    fill = known;
                    fillAt = now;
                }
            }
        }

        public bool TryAddCalm(DateTimeOffset now, TimeSpan window, Func<double, double, bool> calm)
        {
            lock (gate)
            {
                var (rate, fill) = Read(now, window);
                if (!calm(rate, fill))
                {
                    return false;
                }

                Add(now, window, null);
                return true;
            }
        }

        public void SetFill(DateTimeOffset now, double queueFill)
        {
            lock (gate)
            {
                fill = queueFill;
                fillAt = now;
            }
        }

        public (double Rate, double Fill) Read(DateTimeOffset now, TimeSpan window)
        {
            var slot = Slot(now, window);
            lock (gate)
            {
                long total = 0;
                for (var i = 0; i < Buckets; i++)
                {
                    if (slot - stamps[i] < Buckets)
                    {
                        total += counts[i];
                    }
                }

                return (total / window.TotalSeconds, now - fillAt <= window ? fill : 0);
            }
        }

        private static long Slot(DateTimeOffset now, TimeSpan window) => now.UtcTicks / Math.Max(1, window.Ticks / Buckets);
    }
}
