using System.Globalization;

namespace TrustLine.Server.Organisations;

/// <summary>
/// When an organisation answers (section <c>Organisations:&lt;name&gt;:Hours</c>). Without it the line is open
/// around the clock. Times are wall-clock times in the organisation's time zone; a span may pass midnight
/// (<c>22:00-02:00</c>), and a holiday closes the whole day.
/// </summary>
public sealed class OpeningHoursSettings
{
    /// <summary>An IANA time zone, e.g. <c>Europe/Amsterdam</c>.</summary>
    public string TimeZone { get; set; } = "UTC";

    /// <summary>Spans per weekday (<c>Monday</c> … <c>Sunday</c>), each <c>HH:mm-HH:mm</c>; a day not listed is closed.</summary>
    public Dictionary<string, List<string>> Weekly { get; set; } = [];

    /// <summary>Closed days, <c>yyyy-MM-dd</c> in the organisation's time zone.</summary>
    public List<string> Holidays { get; set; } = [];

    /// <summary>Let seekers queue while closed (they are told it is closed and when it opens).</summary>
    public bool QueueWhenClosed { get; set; }

    /// <summary>What to tell people while closed, by language (<c>nl</c>, <c>en</c>, …).</summary>
    public Dictionary<string, string> ClosedMessage { get; set; } = [];

    /// <summary>Where to turn while closed: an emergency number, a partner line.</summary>
    public List<AlternativeSettings> Alternatives { get; set; } = [];
}

/// <summary>Another place to turn to while the organisation is closed.</summary>
public sealed class AlternativeSettings
{
    public string Name { get; set; } = "";

    /// <summary>A phone number, an address or a web address, shown as it is.</summary>
    public string Contact { get; set; } = "";
}

/// <summary>The parsed opening hours of one organisation.</summary>
public sealed class OpeningHours
{
    private const int LookAheadDays = 15;

    private readonly TimeZoneInfo zone;
    private readonly Dictionary<DayOfWeek, List<(TimeSpan From, TimeSpan To)>> weekly;
    private readonly HashSet<DateOnly> holidays;

    private OpeningHours(TimeZoneInfo zone, Dictionary<DayOfWeek, List<(TimeSpan, TimeSpan)>> weekly, HashSet<DateOnly> holidays, OpeningHoursSettings settings)
    {
        this.zone = zone;
        this.weekly = weekly;
        this.holidays = holidays;
        QueueWhenClosed = settings.QueueWhenClosed;
        ClosedMessage = settings.ClosedMessage;
        Alternatives = settings.Alternatives;
    }

    /// <summary>Open around the clock.</summary>
    public static OpeningHours Always { get; } = new(TimeZoneInfo.Utc,
        Enum.GetValues<DayOfWeek>().ToDictionary(d => d, _ => new List<(TimeSpan, TimeSpan)> { (TimeSpan.Zero, TimeSpan.FromDays(1)) }), [], new OpeningHoursSettings());

    public bool QueueWhenClosed { get; }

    public IReadOnlyDictionary<string, string> ClosedMessage { get; }

    public IReadOnlyList<AlternativeSettings> Alternatives { get; }

    /// <summary>Parses settings; a sentence naming what is wrong, or null.</summary>
    public static string? TryParse(OpeningHoursSettings? settings, out OpeningHours hours)
    {
        hours = Always;
        if (settings is null)
        {
            return null;
        }

        if (!TimeZoneInfo.TryFindSystemTimeZoneById(settings.TimeZone, out var zone))
        {
            return $"Hours:TimeZone '{settings.TimeZone}' is not a known time zone (use an IANA name such as Europe/Amsterdam).";
        }

        var weekly = new Dictionary<DayOfWeek, List<(TimeSpan, TimeSpan)>>();
        foreach (var (dayName, spans) in settings.Weekly)
        {
            if (!Enum.TryParse<DayOfWeek>(dayName, ignoreCase: true, out var day) || !Enum.IsDefined(day))
            {
                return $"Hours:Weekly has '{dayName}', which is not a weekday (Monday … Sunday).";
            }

            var list = new List<(TimeSpan, TimeSpan)>();
            foreach (var span in spans)
            {
                var parts = span.Split('-', StringSplitOptions.TrimEntries);
                if (parts.Length != 2
                    || !TimeSpan.TryParseExact(parts[0], @"hh\:mm", CultureInfo.InvariantCulture, out var from)
                    || !TimeSpan.TryParseExact(parts[1], @"hh\:mm", CultureInfo.InvariantCulture, out var to)
                    || from == to)
                {
                    return $"Hours:Weekly:{dayName} has '{span}'; write spans as HH:mm-HH:mm, e.g. 09:00-17:00.";
                }

                list.Add((from, to));
            }

            weekly[day] = list;
        }

        var holidays = new HashSet<DateOnly>();
        foreach (var holiday in settings.Holidays)
        {
            if (!DateOnly.TryParseExact(holiday, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var date))
            {
                return $"Hours:Holidays has '{holiday}'; write dates as yyyy-MM-dd.";
            }

            holidays.Add(date);
        }

        hours = new OpeningHours(zone, weekly, holidays, settings);
        return null;
    }

    /// <summary>True while the organisation answers.</summary>
    public bool IsOpen(DateTimeOffset at)
    {
        var local = TimeZoneInfo.ConvertTime(at, zone);
        var date = DateOnly.FromDateTime(local.DateTime);
        var time = local.TimeOfDay;
        // A span that passes midnight belongs to the day it starts on.
        return Covers(date, time, sameDay: true) || Covers(date.AddDays(-1), time, sameDay: false);
    }

    /// <summary>When it next opens (to the minute), or null if not within two weeks; <paramref name="at"/> itself when open.</summary>
    public DateTimeOffset? NextOpening(DateTimeOffset at)
    {
        if (IsOpen(at))
        {
            return at;
        }

        var local = TimeZoneInfo.ConvertTime(at, zone);
        var start = DateOnly.FromDateTime(local.DateTime);
        DateTimeOffset? best = null;
        for (var i = 0; i < LookAheadDays && best is null; i++)
        {
            var date = start.AddDays(i);
            if (holidays.Contains(date) || !weekly.TryGetValue(date.DayOfWeek, out var spans))
            {
                continue;
            }

            foreach (var (from, _) in spans)
            {
                var wall = date.ToDateTime(TimeOnly.FromTimeSpan(from));
                var candidate = new DateTimeOffset(wall, zone.GetUtcOffset(wall));
                if (candidate > at && (best is null || candidate < best))
                {
                    best = candidate;
                }
            }
        }

        return best;
    }

    private bool Covers(DateOnly date, TimeSpan time, bool sameDay)
    {
        if (holidays.Contains(date) || !weekly.TryGetValue(date.DayOfWeek, out var spans))
        {
            return false;
        }

        foreach (var (from, to) in spans)
        {
            var overnight = to < from;
            if (sameDay && time >= from && (overnight || time < to))
            {
                return true;
            }

            if (!sameDay && overnight && time < to)
            {
                return true;
            }
        }

        return false;
    }
}
