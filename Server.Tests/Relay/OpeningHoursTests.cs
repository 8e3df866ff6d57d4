using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.Time.Testing;
using TrustLine.Protocol.Contracts;
using TrustLine.Protocol.Crypto;
using TrustLine.Server.Organisations;
using TrustLine.Server.Tests.Infrastructure;

namespace TrustLine.Server.Tests.Relay;

/// <summary>Opening hours: when a line answers, what the directory says, and what an open outside them gets.</summary>
public sealed class OpeningHoursTests
{
    // Monday 2026-11-30, 08:00 in Amsterdam (UTC+1) is 07:00 UTC.
    private static readonly DateTimeOffset MondayEight = new(2026, 11, 30, 7, 0, 0, TimeSpan.Zero);

    private static readonly Dictionary<string, string?> OfficeHours = new()
    {
        ["Organisations:test:Hours:TimeZone"] = "Europe/Amsterdam",
        ["Organisations:test:Hours:Weekly:Monday:0"] = "09:00-17:00",
        ["Organisations:test:Hours:Weekly:Monday:1"] = "22:00-02:00",
        ["Organisations:test:Hours:Holidays:0"] = "2026-12-25",
        ["Organisations:test:Hours:ClosedMessage:en"] = "We are closed. In danger now? Call 112.",
        ["Organisations:test:Hours:Alternatives:0:Name"] = "Emergency",
        ["Organisations:test:Hours:Alternatives:0:Contact"] = "112",
    };

    [TestCase("2026-11-30T08:59:00+01:00", false, TestName = "ClosedJustBeforeOpening")]
    [TestCase("2026-11-30T09:00:00+01:00", true, TestName = "OpenAtOpening")]
    [TestCase("2026-11-30T16:59:00+01:00", true, TestName = "OpenJustBeforeClosing")]
    [TestCase("2026-11-30T17:00:00+01:00", false, TestName = "ClosedAtClosing")]
    [TestCase("2026-11-30T23:30:00+01:00", true, TestName = "OpenInALateSpan")]
    [TestCase("2026-12-01T01:30:00+01:00", true, TestName = "OpenAfterMidnightInASpanThatStartedTheDayBefore")]
    [TestCase("2026-12-01T02:00:00+01:00", false, TestName = "ClosedWhenTheOvernightSpanEnds")]
    [TestCase("2026-12-01T10:00:00+01:00", false, TestName = "ClosedOnADayNotListed")]
    public void HoursFollowTheOrganisationsTimeZone(string at, bool open)
    {
        Assert.That(OpeningHours.TryParse(Settings(), out var hours), Is.Null);

        Assert.That(hours.IsOpen(DateTimeOffset.Parse(at, System.Globalization.CultureInfo.InvariantCulture)), Is.EqualTo(open));
    }

    [Test]
    public void AHolidayClosesTheWholeDayAndTheNextOpeningSkipsIt()
    {
        var settings = Settings();
        settings.Weekly["Friday"] = ["09:00-17:00"];
        settings.Holidays = ["2026-12-25"];
        Assert.That(OpeningHours.TryParse(settings, out var hours), Is.Null);
        var christmasNoon = new DateTimeOffset(2026, 12, 25, 12, 0, 0, TimeSpan.FromHours(1));

        Assert.Multiple(() =>
        {
            Assert.That(hours.IsOpen(christmasNoon), Is.False);
            Assert.That(hours.NextOpening(christmasNoon), Is.EqualTo(new DateTimeOffset(2026, 12, 28, 9, 0, 0, TimeSpan.FromHours(1))), "the next Monday");
        });
    }

    [TestCase("Mars/Olympus", "x", "09:00-17:00", TestName = "AnUnknownTimeZoneIsABadSetting")]
    [TestCase("UTC", "Someday", "09:00-17:00", TestName = "AnUnknownWeekdayIsABadSetting")]
    [TestCase("UTC", "Monday", "9-5", TestName = "AMalformedSpanIsABadSetting")]
    public void BadHoursAreNamed(string zone, string day, string span)
    {
        var settings = new OpeningHoursSettings { TimeZone = zone, Weekly = { [day] = [span] } };

        Assert.That(OpeningHours.TryParse(settings, out _), Does.StartWith("Hours:"));
    }

    [Test]
    public async Task OutsideHoursAnOpenIsRefusedClosedAndTheDirectorySaysWhenItOpens()
    {
        var clock = new FakeTimeProvider(MondayEight);
        await using var world = await World.StartAsync(StoreUnderTest.Embedded, extra: OfficeHours, time: clock);
        await using var hub = await RawHub.SeekerAsync(world.Nodes[0]);

        var error = Assert.ThrowsAsync<HubException>(async () => await OpenAsync(hub, world));
        var directory = await DirectoryAsync(world);

        Assert.Multiple(() =>
        {
            Assert.That(error!.Message, Does.StartWith(ErrorCodes.Closed + ": "));
            Assert.That(directory.GetProperty("status").GetString(), Is.EqualTo("closed"));
            Assert.That(DateTimeOffset.Parse(directory.GetProperty("opensAt").GetString()!, System.Globalization.CultureInfo.InvariantCulture),
                Is.EqualTo(new DateTimeOffset(2026, 11, 30, 8, 0, 0, TimeSpan.Zero)));
            Assert.That(directory.GetProperty("closedMessage").GetProperty("en").GetString(), Does.Contain("112"));
            Assert.That(directory.GetProperty("alternatives")[0].GetProperty("contact").GetString(), Is.EqualTo("112"));
        });

        clock.Advance(TimeSpan.FromHours(1));

        Assert.That((await OpenAsync(hub, world)).Queue.Position, Is.EqualTo(1), "open at nine");
        Assert.That((await DirectoryAsync(world)).GetProperty("status").GetString(), Is.EqualTo("open"));
    }

    [Test]
    public async Task AnOrganisationThatQueuesWhileClosedTakesSeekersAnyway()
    {
        var extra = new Dictionary<string, string?>(OfficeHours) { ["Organisations:test:Hours:QueueWhenClosed"] = "true" };
        await using var world = await World.StartAsync(StoreUnderTest.Embedded, extra: extra, time: new FakeTimeProvider(MondayEight));
        await using var hub = await RawHub.SeekerAsync(world.Nodes[0]);

        Assert.That((await OpenAsync(hub, world)).Queue.Position, Is.EqualTo(1));
        Assert.That((await DirectoryAsync(world)).GetProperty("queueWhenClosed").GetBoolean(), Is.True);
    }

    [Test]
    public void ANodeWithBadHoursDoesNotStart()
    {
        var extra = new Dictionary<string, string?>(OfficeHours) { ["Organisations:test:Hours:TimeZone"] = "Nowhere/Atlantis" };

        var error = Assert.CatchAsync(async () => await World.StartAsync(StoreUnderTest.Embedded, extra: extra));

        Assert.That(error!.ToString(), Does.Contain("Organisations:test:Hours:TimeZone"));
    }

    private static OpeningHoursSettings Settings() => new()
    {
        TimeZone = "Europe/Amsterdam",
        Weekly = { ["Monday"] = ["09:00-17:00", "22:00-02:00"] },
    };

    private static async Task<JsonElement> DirectoryAsync(World world)
    {
        var body = await world.Nodes[0].Http.GetFromJsonAsync<JsonElement>(Routes.Directory);
        return body.GetProperty("organisations").EnumerateArray().Single(o => o.GetProperty("id").GetString() == Convert.ToHexStringLower(world.Org.OrgId));
    }

    private static async Task<OpenSessionResult> OpenAsync(HubConnection hub, World world)
    {
        using var handshake = SeekerHandshake.Start(world.Org.Pin);
        return await hub.InvokeAsync<OpenSessionResult>(SeekerHubMethods.OpenSession, new OpenSessionRequest { Msg1 = handshake.Msg1.ToArray(), Language = "nl" })
            .WaitAsync(TimeSpan.FromSeconds(10));
    }
}
