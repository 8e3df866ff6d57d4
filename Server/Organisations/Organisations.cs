using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;
using TrustLine.Protocol.Crypto;

namespace TrustLine.Server.Organisations;

/// <summary>One organisation as configured (section <c>Organisations:&lt;name&gt;</c>).</summary>
public sealed class OrganisationSettings
{
    /// <summary><c>org_id</c>, 32 hex characters.</summary>
    public string Id { get; set; } = "";

    public string Name { get; set; } = "";

    public List<string> Languages { get; set; } = [];

    public List<string> Topics { get; set; } = [];

    /// <summary>The two root public keys (active and backup), hex; the same ones apps pin.</summary>
    public List<string> Roots { get; set; } = [];

    /// <summary>Fingerprints of responder keys that may no longer sign in (lost or retired devices).</summary>
    public List<string> DeniedResponders { get; set; } = [];

    [Range(1, 100_000)]
    public int QueueCapacity { get; set; } = 200;

    /// <summary>When the organisation answers; none means around the clock.</summary>
    public OpeningHoursSettings? Hours { get; set; }
    /// <summary>
    /// The most sessions that wait as urgent at once; an urgent one past it waits in order of arrival, so a
    /// flood of "urgent" sessions cannot stand in front of every real urgent seeker.
    /// </summary>
    [Range(0, 100_000)]
    public int UrgentCapacity { get; set; } = 20;

    /// <summary>
    /// <c>org_id</c>s (hex) of partner organisations on this server that this one's counsellors may transfer a
    /// chat to. One way: a partner that wants to transfer back lists this organisation too.
    /// </summary>
    public List<string> Partners { get; set; } = [];

    /// <summary>Offer each waiting seeker to one available counsellor (docs/architecture.md, routing); off: counsellors take.</summary>
    public bool Offers { get; set; }

    /// <summary>The most chats one counsellor connection holds at once; unset: 2 with offers on, no limit with them off.</summary>
    public int? Capacity { get; set; }

    /// <summary>How long an offer stands before it goes to the next counsellor.</summary>
    public TimeSpan OfferTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Offers left to run out in a row before the counsellor is set away.</summary>
    public int LapsesBeforeAway { get; set; } = 3;
}

/// <summary>How an organisation routes waiting seekers to counsellors (docs/architecture.md, routing).</summary>
/// <param name="On">Offers are made; otherwise counsellors only take.</param>
/// <param name="Capacity">The most chats per counsellor connection, for offers and takes alike; 0 for no limit.</param>
/// <param name="Timeout">How long an offer stands.</param>
/// <param name="LapsesBeforeAway">Offers run out in a row before the counsellor is set away.</param>
public sealed record OfferRules(bool On, int Capacity, TimeSpan Timeout, int LapsesBeforeAway)
{
    public const int DefaultCapacity = 2;

    public static OfferRules From(OrganisationSettings s) =>
        new(s.Offers, s.Capacity ?? (s.Offers ? DefaultCapacity : 0), s.OfferTimeout, s.LapsesBeforeAway);
}

/// <summary>The organisations this server serves, by name.</summary>
public sealed class OrganisationsOptions
{
    public const string Section = "Organisations";

    public Dictionary<string, OrganisationSettings> Items { get; set; } = [];
}

/// <summary>An organisation ready for use: parsed keys and lookup sets.</summary>
public sealed class Organisation
{
    public required byte[] OrgId { get; init; }
    public required string Name { get; init; }
    public required IReadOnlyList<string> Languages { get; init; }
    public required IReadOnlyList<string> Topics { get; init; }
    public required OrganisationPin Pin { get; init; }
    public required IReadOnlySet<string> DeniedFingerprints { get; init; }
    public required int QueueCapacity { get; init; }
    public required OpeningHours Hours { get; init; }
    public required int UrgentCapacity { get; init; }
    public required OfferRules Offers { get; init; }

    /// <summary>Partner organisations (hex <c>org_id</c>) this one may transfer chats to.</summary>
    public required IReadOnlySet<string> Partners { get; init; }

    /// <summary>True for the demo organisation on public test keys: never for real use.</summary>
    public required bool Insecure { get; init; }

    /// <summary>The <c>org_id</c> in lower-case hex, made once: lookups and per-organisation state use it on every call.</summary>
    public string OrgIdHex => field ??= Convert.ToHexStringLower(OrgId);
}

/// <summary>
/// Looks organisations up by <c>org_id</c>. Follows configuration changes (a denylist edited in
/// <c>appsettings.json</c> applies without a restart, and live connections of a denied key are closed).
/// </summary>
public sealed class OrganisationDirectory
{
    /// <summary>Root keys that are public test vectors (RFC 8032 §7.1): only the Development demo may use them.</summary>
    internal static readonly IReadOnlySet<string> PublicTestRoots = new HashSet<string>(StringComparer.OrdinalIgnoreCase)
    {
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
    };

    private readonly List<Action> listeners = [];
    private readonly Lock gate = new();
    private volatile Dictionary<string, Organisation> byId;

    public OrganisationDirectory(IOptionsMonitor<OrganisationsOptions> options)
    {
        byId = Index(options.CurrentValue);
        options.OnChange(Reload);
    }

    public IReadOnlyCollection<Organisation> All => byId.Values;

    /// <summary>The organisation of <paramref name="orgId"/>, or null; looked up without making its hex string (a few times per call).</summary>
    public Organisation? Find(ReadOnlySpan<byte> orgId)
    {
        if (orgId.Length > 64)
        {
            return null;
        }

        Span<char> hex = stackalloc char[orgId.Length * 2];
        return Convert.TryToHexStringLower(orgId, hex, out _) && byId.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(hex, out var found) ? found : null;
    }

    /// <summary>Calls <paramref name="listener"/> after every applied change.</summary>
    public IDisposable OnChange(Action listener)
    {
        lock (gate)
        {
            listeners.Add(listener);
        }

        return new Unsubscribe(this, listener);
    }

    private void Reload(OrganisationsOptions options)
    {
        byId = Index(options);
        Action[] toCall;
        lock (gate)
        {
            toCall = [.. listeners];
        }

        foreach (var listener in toCall)
        {
            listener();
        }
    }

    private static Dictionary<string, Organisation> Index(OrganisationsOptions options) =>
        options.Items.Values.Select(Build).ToDictionary(o => o.OrgIdHex, StringComparer.Ordinal);

    private sealed class Unsubscribe(OrganisationDirectory directory, Action listener) : IDisposable
    {
        public void Dispose()
        {
            lock (directory.gate)
            {
                directory.listeners.Remove(listener);
            }
        }
    }

    private static Organisation Build(OrganisationSettings s) => new()
    {
        OrgId = Convert.FromHexString(s.Id),
        Name = s.Name,
        Languages = s.Languages,
        Topics = s.Topics,
        Pin = new OrganisationPin(Convert.FromHexString(s.Id), s.Roots.Select(Convert.FromHexString)),
        DeniedFingerprints = s.DeniedResponders.Select(NormaliseFingerprint).ToHashSet(),
        QueueCapacity = s.QueueCapacity,
        Hours = OpeningHours.TryParse(s.Hours, out var hours) is null ? hours : OpeningHours.Always,
        UrgentCapacity = s.UrgentCapacity,
        Partners = s.Partners.Select(p => p.ToLowerInvariant()).ToHashSet(),
        Offers = OfferRules.From(s),
        Insecure = s.Roots.Any(PublicTestRoots.Contains),
    };

    internal static string NormaliseFingerprint(string fingerprint) =>
        new([.. fingerprint.Where(char.IsAsciiHexDigit).Select(char.ToLowerInvariant)]);
}

/// <summary>Checks every organisation at start-up and names the setting that is wrong.</summary>
internal sealed class OrganisationsValidator(IHostEnvironment environment) : IValidateOptions<OrganisationsOptions>
{
    public ValidateOptionsResult Validate(string? name, OrganisationsOptions options)
    {
        var failures = new List<string>();
        var ids = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var configured = options.Items.Values.Select(o => o.Id).ToHashSet(StringComparer.OrdinalIgnoreCase);
        foreach (var (key, org) in options.Items)
        {
            var at = $"Organisations:{key}";
            if (!PublicText.TryParseOrgId(org.Id, out _))
            {
                failures.Add($"{at}:Id must be 32 hex characters (16 bytes).");
            }
            else if (!ids.Add(org.Id))
            {
                failures.Add($"{at}:Id is used by another organisation.");
            }

            if (string.IsNullOrWhiteSpace(org.Name))
            {
                failures.Add($"{at}:Name is required.");
            }

            if (org.Languages.Count == 0 || org.Languages.Any(string.IsNullOrWhiteSpace))
            {
                failures.Add($"{at}:Languages must list at least one language.");
            }

            if (org.Roots.Count is < 1 or > 2 || org.Roots.Any(r => !PublicText.TryParseKey(r, out _)))
            {
                failures.Add($"{at}:Roots must hold one or two root public keys of 64 hex characters.");
            }
            else if (org.Roots.Any(OrganisationDirectory.PublicTestRoots.Contains) && !environment.IsDevelopment())
            {
                failures.Add($"{at}:Roots uses a public test key (RFC 8032); that is allowed only in the Development environment.");
            }

            if (org.DeniedResponders.Any(f => OrganisationDirectory.NormaliseFingerprint(f).Length != 16))
            {
                failures.Add($"{at}:DeniedResponders must hold fingerprints of 16 hex characters.");
            }

            if (org.QueueCapacity is < 1 or > 100_000)
            {
                failures.Add($"{at}:QueueCapacity must be between 1 and 100000.");
            }

            if (OpeningHours.TryParse(org.Hours, out _) is { } hoursError)
            {
                failures.Add($"{at}:{hoursError}");
            }

            if (org.UrgentCapacity is < 0 or > 100_000)
            {
                failures.Add($"{at}:UrgentCapacity must be between 0 and 100000.");
            }

            if (org.Partners.Any(p => !PublicText.TryParseOrgId(p, out _) || !configured.Contains(p)))
            {
                failures.Add($"{at}:Partners must hold org ids (32 hex characters) of organisations configured on this server.");
            }

            if (org.Capacity is < 1 or > 1000)
            {
                failures.Add($"{at}:Capacity must be between 1 and 1000.");
            }

            if (org.OfferTimeout < TimeSpan.FromSeconds(5) || org.OfferTimeout > TimeSpan.FromMinutes(10))
            {
                failures.Add($"{at}:OfferTimeout must be between 00:00:05 and 00:10:00.");
            }

            if (org.LapsesBeforeAway is < 1 or > 100)
            {
                failures.Add($"{at}:LapsesBeforeAway must be between 1 and 100.");
            }
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}

public static class OrganisationsSetup
{
    public static IHostApplicationBuilder AddOrganisations(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<OrganisationsOptions>()
            .Configure<IConfiguration>((o, config) => config.GetSection(OrganisationsOptions.Section).Bind(o.Items))
            .ValidateOnStart();
        // Follow configuration reloads (a denylist edited while the node runs).
        builder.Services.AddSingleton<IOptionsChangeTokenSource<OrganisationsOptions>>(
            new ConfigurationChangeTokenSource<OrganisationsOptions>(builder.Configuration.GetSection(OrganisationsOptions.Section)));
        builder.Services.AddSingleton<IValidateOptions<OrganisationsOptions>, OrganisationsValidator>();
        builder.Services.AddSingleton<OrganisationDirectory>();
        return builder;
    }

    public static IEndpointRouteBuilder MapOrganisations(this IEndpointRouteBuilder app)
    {
        // What an app shows before opening a session; root fingerprints let it compare with its pins. The
        // status is coarse on purpose (open, busy, closed): it never tells how many counsellors work.
        app.MapGet(Protocol.Contracts.Routes.Directory, (OrganisationDirectory directory, Admission.AdmissionPolicy pressure, TimeProvider time) =>
        {
            var now = time.GetUtcNow();
            return Results.Ok(new
            {
                organisations = directory.All.Select(o =>
                {
                    var open = o.Hours.IsOpen(now);
                    return new
                    {
                        id = o.OrgIdHex,
                        name = o.Name,
                        insecure = o.Insecure,
                        languages = o.Languages,
                        topics = o.Topics,
                        rootFingerprints = o.Pin.Roots.Select(r => Certificate.Fingerprint(r)),
                        status = !open ? "closed" : pressure.IsUnderPressure(o.OrgIdHex) ? "busy" : "open",
                        // To the quarter hour: when it opens, not a timestamp to correlate with.
                        opensAt = open ? null : o.Hours.NextOpening(now) is { } next ? RoundToQuarter(next).ToString("o", System.Globalization.CultureInfo.InvariantCulture) : null,
                        queueWhenClosed = o.Hours.QueueWhenClosed,
                        closedMessage = o.Hours.ClosedMessage,
                        alternatives = o.Hours.Alternatives.Select(a => new { name = a.Name, contact = a.Contact }),
                    };
                }),
            });
        });
        return app;
    }

    private static DateTimeOffset RoundToQuarter(DateTimeOffset at) =>
        new(at.Ticks - (at.Ticks % TimeSpan.FromMinutes(15).Ticks), at.Offset);
}
