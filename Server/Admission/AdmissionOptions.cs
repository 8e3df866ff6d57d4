using System.ComponentModel.DataAnnotations;

namespace TrustLine.Server.Admission;

/// <summary>When opening a session costs a proof of work (section <c>Admission</c>; PROTOCOL.md §9).</summary>
public sealed class AdmissionOptions
{
    public const string Section = "Admission";

    /// <summary>Opens per second for one organisation on one node, averaged over <see cref="Window"/>, above which puzzles start.</summary>
    [Range(0.01, 10_000, ErrorMessage = "Admission:OpenRateThreshold must be between 0.01 and 10000 opens per second.")]
    public double OpenRateThreshold { get; set; } = 1.0;

    /// <summary>The share of an organisation's queue capacity in use above which puzzles start.</summary>
    [Range(0.01, 1.0, ErrorMessage = "Admission:QueueFillThreshold must be between 0.01 and 1.")]
    public double QueueFillThreshold { get; set; } = 0.25;

    /// <summary>The difficulty (leading zero bits) at the threshold; two more bits for every doubling of pressure.</summary>
    [Range(1, 32, ErrorMessage = "Admission:BaseDifficulty must be between 1 and 32 bits.")]
    public int BaseDifficulty { get; set; } = 16;

    /// <summary>The highest difficulty asked.</summary>
    [Range(1, 32, ErrorMessage = "Admission:MaxDifficulty must be between 1 and 32 bits.")]
    public int MaxDifficulty { get; set; } = 22;

    /// <summary>How long a puzzle may be solved and used.</summary>
    [Range(typeof(TimeSpan), "00:00:10", "00:10:00", ErrorMessage = "Admission:PuzzleLifetime must be between 10 seconds and 10 minutes.")]
    public TimeSpan PuzzleLifetime { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>The span over which the open rate is measured, and after which a quiet organisation counts as calm.</summary>
    [Range(typeof(TimeSpan), "00:00:02", "00:05:00", ErrorMessage = "Admission:Window must be between 2 seconds and 5 minutes.")]
    public TimeSpan Window { get; set; } = TimeSpan.FromSeconds(10);
}
