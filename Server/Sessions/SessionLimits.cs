using System.ComponentModel.DataAnnotations;

namespace TrustLine.Server.Sessions;

/// <summary>Session lifetimes and relay limits (section <c>Sessions</c>).</summary>
public sealed class SessionLimits
{
    public const string Section = "Sessions";

    /// <summary>How long a dropped party may take to resume before it counts as having abandoned.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00", ErrorMessage = "Sessions:Grace must be between 1 second and 1 hour.")]
    public TimeSpan Grace { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>
    /// The hold: how long a waiting seeker whose connection dropped keeps its place (a phone suspends a
    /// background app within seconds to minutes). Apart from <see cref="Grace"/>, which holds for answered
    /// sessions. Seekers are told it when they open (<c>QueueStatus.HoldSeconds</c>), before it can happen; past
    /// it the session ends as <c>queue_hold_expired</c>.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00", ErrorMessage = "Sessions:QueueGrace must be between 1 second and 1 hour.")]
    public TimeSpan QueueGrace { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>The longest a session waits in the queue; then the seeker is told (<c>queue_timeout</c>) and it ends.</summary>
    [Range(typeof(TimeSpan), "00:00:10", "1.00:00:00", ErrorMessage = "Sessions:MaxQueueWait must be between 10 seconds and 1 day.")]
    public TimeSpan MaxQueueWait { get; set; } = TimeSpan.FromHours(1);

    /// <summary>
    /// The least time between two queue notices of one organisation from one node: changes in between are
    /// sent together, so churn costs each counsellor a few notices a second at most.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:00:10", ErrorMessage = "Sessions:QueueNoticeInterval must be between 0 and 10 seconds.")]
    public TimeSpan QueueNoticeInterval { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>A session with no activity this long ends.</summary>
    [Range(typeof(TimeSpan), "00:00:05", "1.00:00:00", ErrorMessage = "Sessions:IdleTimeout must be between 5 seconds and 1 day.")]
    public TimeSpan IdleTimeout { get; set; } = TimeSpan.FromMinutes(30);

    /// <summary>No session (and no key of one) lives longer than this.</summary>
    [Range(typeof(TimeSpan), "00:00:10", "2.00:00:00", ErrorMessage = "Sessions:MaxLifetime must be between 10 seconds and 2 days.")]
    public TimeSpan MaxLifetime { get; set; } = TimeSpan.FromHours(4);

    /// <summary>Unacknowledged envelopes kept per direction; a sender past it is refused until the peer acknowledges.</summary>
    [Range(1, 4096, ErrorMessage = "Sessions:MaxUnacknowledged must be between 1 and 4096.")]
    public int MaxUnacknowledged { get; set; } = 256;

    /// <summary>How long an unacknowledged envelope is kept at most.</summary>
    [Range(typeof(TimeSpan), "00:00:05", "1.00:00:00", ErrorMessage = "Sessions:EnvelopeMaxAge must be between 5 seconds and 1 day.")]
    public TimeSpan EnvelopeMaxAge { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>How long a seeker has to accept or decline a proposed transfer; then it lapses and the chat goes on.</summary>
    [Range(typeof(TimeSpan), "00:00:10", "00:30:00", ErrorMessage = "Sessions:TransferAnswerTime must be between 10 seconds and 30 minutes.")]
    public TimeSpan TransferAnswerTime { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>How often each node looks for sessions whose time is up.</summary>
    [Range(typeof(TimeSpan), "00:00:00.050", "00:01:00", ErrorMessage = "Sessions:ReaperInterval must be between 50 ms and 1 minute.")]
    public TimeSpan ReaperInterval { get; set; } = TimeSpan.FromSeconds(1);
}
