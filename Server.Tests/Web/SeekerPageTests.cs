using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;
using TrustLine.Protocol.Crypto;
using TrustLine.Server.Tests.Infrastructure;
using TrustLine.Server.Tests.Sessions;

namespace TrustLine.Server.Tests.Web;

/// <summary>
/// The seeker page in a real Chromium (Debian's, driven by playwright-core) on a 360-px phone screen, talking
/// through a real server with the .NET responder SDK. Screenshots of each state go to artifacts/web/.
/// </summary>
public sealed partial class SeekerPageTests
{
    private const string Neutral = "https://neutral.example/";
    private const string Driver = "tests/seeker-page.mjs";

    private static readonly Dictionary<string, string?> PageOn = new()
    {
        ["Web:Seeker"] = "true",
        ["Web:QuickExitUrl"] = Neutral,
    };

    private static string Screenshots => Path.Combine(Path.GetDirectoryName(NodeScript.WebDirectory)!, "artifacts", "web");

    [Test]
    public async Task AClosedOrganisationSaysWhenItOpensAndWhereElseToTurnAndAnOpenEndsPolitely()
    {
        var closed = new Dictionary<string, string?>(PageOn)
        {
            // Open only on one day of the week, which today is not.
            ["Organisations:test:Hours:TimeZone"] = "UTC",
            [$"Organisations:test:Hours:Weekly:{DateTime.UtcNow.AddDays(3).DayOfWeek}:0"] = "09:00-17:00",
            ["Organisations:test:Hours:ClosedMessage:nl"] = "We zijn er weer na het weekend.",
            ["Organisations:test:Hours:Alternatives:0:Name"] = "Noodnummer",
            ["Organisations:test:Hours:Alternatives:0:Contact"] = "112",
        };
        await using var world = await World.StartAsync(StoreUnderTest.Embedded, extra: closed);
        await using var browser = NodeScript.Start(Driver, null, "--url", world.Nodes[0].BaseAddress.ToString(), "--shots", Screenshots);
        await browser.WaitForAsync("launched", 60);
        await browser.SendAsync(new { cmd = "open" });
        await browser.WaitForAsync("ready", 30);

        await browser.SendAsync(new { cmd = "closed-notice" });
        var notice = (await browser.WaitForAsync("closed-notice")).GetProperty("text").GetString();
        await browser.SendAsync(new { cmd = "start", language = "nl", topic = "", urgent = false, refused = true });
        await browser.SendAsync(new { cmd = "await-ended" });
        var ended = await browser.WaitForAsync("ended");

        Assert.Multiple(() =>
        {
            Assert.That(notice, Does.Contain("gesloten").And.Contain("We zijn er weer na het weekend.").And.Contain("Noodnummer: 112"));
            Assert.That(ended.GetProperty("reason").GetString(), Is.EqualTo("De lijn is nu gesloten."));
        });
    }

    [Test]
    public async Task WholeConversationFromAPhoneBrowserSurvivesNetworkLossAndQuickExitLeavesNoTrace()
    {
        await using var world = await World.StartAsync(StoreUnderTest.Redis, extra: PageOn);
        await using var browser = NodeScript.Start(Driver, null, "--url", world.Nodes[0].BaseAddress.ToString(), "--shots", Screenshots);
        await browser.WaitForAsync("launched", 60);

        await browser.SendAsync(new { cmd = "open" });
        var ready = await browser.WaitForAsync("ready", 30);
        Assert.Multiple(() =>
        {
            Assert.That(ready.GetProperty("title").GetString(), Is.EqualTo("Info"), "a neutral tab title");
            Assert.That(ready.GetProperty("exitWidth").GetDouble(), Is.GreaterThanOrEqualTo(44), "quick exit is a large tap target");
            Assert.That(ready.GetProperty("exitHeight").GetDouble(), Is.GreaterThanOrEqualTo(44), "quick exit is a large tap target");
            Assert.That(ready.GetProperty("fitsWidth").GetBoolean(), Is.True, "nothing overflows a 360-px screen");
            Assert.That(ready.GetProperty("labelled").GetBoolean(), Is.True, "every field has a label");
            Assert.That(ready.GetProperty("orgs").EnumerateArray().Select(o => o.GetString()), Does.Contain("Test organisation"));
        });

        await browser.SendAsync(new { cmd = "start", language = "nl", topic = "health", urgent = true });
        var waiting = await browser.WaitForAsync("waiting");
        Assert.That(waiting.GetProperty("position").GetString(), Is.EqualTo("Je bent de volgende."));

        var responder = await world.ResponderAsync();
        var session = await responder.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(15));
        Assert.That(session, Is.Not.Null);
        var inbox = new Inbox<string>();
        session!.MessageReceived += inbox.Add;
        await session.WhenEstablished.WaitAsync(TimeSpan.FromSeconds(15));
        await browser.SendAsync(new { cmd = "await-connected" });
        var connected = await browser.WaitForAsync("connected");
        Assert.Multiple(() =>
        {
            Assert.That(session.Urgent, Is.True);
            Assert.That(session.Topic, Is.EqualTo("health"));
            Assert.That(connected.GetProperty("fingerprint").GetString(), Is.EqualTo(Certificate.Fingerprint(world.Org.ResponderPublic)));
            Assert.That(connected.GetProperty("verified").GetString(), Does.Contain("Test organisation"));
        });

        // A short exchange for the screenshot, then a text of every bucket size each way.
        await session.SendTextAsync("Hoi, ik ben er. Waar kan ik je mee helpen?").WaitAsync(TimeSpan.FromSeconds(10));
        await browser.SendAsync(new { cmd = "expect", count = 1 });
        await browser.WaitForAsync("received");
        await browser.SendAsync(new { cmd = "send", texts = new[] { "Hallo. Ik wil iets vragen over mijn gezondheid." } });
        await browser.WaitForAsync("sent");
        await inbox.WaitForAsync(1, "the first text from the page");
        await browser.SendAsync(new { cmd = "delivered", mark = "verstuurd" });
        await browser.WaitForAsync("delivered");
        await browser.SendAsync(new { cmd = "screenshot", name = "connected" });
        await browser.WaitForAsync("shot");

        foreach (var text in SdkInteropTests.Texts)
        {
            await session.SendTextAsync(text).WaitAsync(TimeSpan.FromSeconds(10));
        }

        await browser.SendAsync(new { cmd = "expect", count = 1 + SdkInteropTests.Texts.Length });
        var received = await browser.WaitForAsync("received");
        Assert.That(received.GetProperty("texts").EnumerateArray().Select(t => t.GetString()).Skip(1), Is.EqualTo(SdkInteropTests.Texts));
        await browser.SendAsync(new { cmd = "send", texts = SdkInteropTests.Texts });
        await browser.WaitForAsync("sent", 60);
        await inbox.WaitForAsync(1 + SdkInteropTests.Texts.Length, "every bucket's text from the page");
        Assert.That(inbox.Items.Skip(1), Is.EqualTo(SdkInteropTests.Texts));

        // The page's WebSocket is cut and stays down a while: both sides write; nothing is lost.
        await browser.SendAsync(new { cmd = "cut" });
        var cut = await browser.WaitForAsync("cut");
        Assert.That(cut.GetProperty("status").GetString(), Does.StartWith("Verbinding verbroken"));
        await browser.SendAsync(new { cmd = "send-offline", texts = new[] { "Ben je er nog?" } });
        await browser.WaitForAsync("sent-offline");
        await session.SendTextAsync("Ja, ik ben er nog.").WaitAsync(TimeSpan.FromSeconds(10));
        await browser.SendAsync(new { cmd = "restore" });
        await browser.WaitForAsync("restored", 30);
        await browser.SendAsync(new { cmd = "expect", count = 2 + SdkInteropTests.Texts.Length });
        var afterCut = await browser.WaitForAsync("received");
        await inbox.WaitForAsync(2 + SdkInteropTests.Texts.Length, "the text written while the page was offline");
        Assert.Multiple(() =>
        {
            Assert.That(afterCut.GetProperty("texts").EnumerateArray().Last().GetString(), Is.EqualTo("Ja, ik ben er nog."));
            Assert.That(afterCut.GetProperty("texts").GetArrayLength(), Is.EqualTo(2 + SdkInteropTests.Texts.Length), "each text once");
            Assert.That(inbox.Items[^1], Is.EqualTo("Ben je er nog?"));
            Assert.That(inbox.Items, Has.Count.EqualTo(2 + SdkInteropTests.Texts.Length), "each text once");
        });

        // The counsellor ends it: the page says so in plain words.
        await session.CloseAsync().WaitAsync(TimeSpan.FromSeconds(10));
        await browser.SendAsync(new { cmd = "await-ended" });
        var ended = await browser.WaitForAsync("ended");
        Assert.That(ended.GetProperty("reason").GetString(), Is.EqualTo("De hulpverlener heeft het gesprek beëindigd."));

        // A second chat, then quick exit with the Escape key.
        await browser.SendAsync(new { cmd = "new-chat" });
        await browser.WaitForAsync("start-again");
        await browser.SendAsync(new { cmd = "start", language = "en", topic = "", urgent = false });
        await browser.WaitForAsync("waiting");
        var second = await responder.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(15));
        Assert.That(second, Is.Not.Null);
        var secondEnded = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        second!.Ended += reason => secondEnded.TrySetResult(reason);
        await browser.SendAsync(new { cmd = "await-connected" });
        await browser.WaitForAsync("connected");

        await browser.SendAsync(new { cmd = "try-reload" });
        var reload = await browser.WaitForAsync("reload");
        Assert.Multiple(() =>
        {
            Assert.That(reload.GetProperty("dialog").GetString(), Is.EqualTo("beforeunload"), "the page asks before a reload ends the chat");
            Assert.That(reload.GetProperty("state").GetString(), Is.EqualTo("connected"), "dismissing keeps the chat");
        });

        await browser.SendAsync(new { cmd = "audit" });
        var audit = await browser.WaitForAsync("audit");
        Assert.Multiple(() =>
        {
            Assert.That(Strings(audit, "violations"), Is.Empty, "Content-Security-Policy violations");
            Assert.That(Strings(audit, "consoleErrors").Where(e => e.Contains("Content Security Policy", StringComparison.OrdinalIgnoreCase)), Is.Empty);
            Assert.That(Strings(audit, "storage"), Is.Empty, "calls to any browser storage");
            Assert.That(Strings(audit, "pageErrors"), Is.Empty, "uncaught errors in the page");
        });

        await browser.SendAsync(new { cmd = "quick-exit", how = "escape" });
        var exited = await browser.WaitForAsync("exited");
        var storage = exited.GetProperty("storage");
        Assert.Multiple(() =>
        {
            Assert.That(BackUrls(exited)[0], Is.EqualTo(Neutral), "quick exit lands on the neutral site");
            Assert.That(BackUrls(exited), Has.None.StartsWith(world.Nodes[0].BaseAddress.ToString()), "Back never returns to the chat: the history has no entry for it");
            Assert.That(exited.GetProperty("cookies").GetInt32(), Is.Zero);
            Assert.That(exited.GetProperty("originsWithStorage").GetInt32(), Is.Zero);
            Assert.That(storage.GetProperty("localStorage").GetInt32(), Is.Zero);
            Assert.That(storage.GetProperty("sessionStorage").GetInt32(), Is.Zero);
            Assert.That(storage.GetProperty("indexedDB").GetInt32(), Is.Zero);
            Assert.That(storage.GetProperty("caches").GetInt32(), Is.Zero);
            Assert.That(storage.GetProperty("serviceWorkers").GetInt32(), Is.Zero);
            Assert.That(storage.GetProperty("cookie").GetString(), Is.Empty);
        });
        // The page's close tells the counsellor end to end (CLOSE), and the server ends the session at once.
        Assert.That(await secondEnded.Task.WaitAsync(TimeSpan.FromSeconds(10)), Is.EqualTo("peer_closed"), "the counsellor was told by the seeker's CLOSE");
        await Eventually.TrueAsync(async () => await world.Store().GetAsync(second.Id) is null, TimeSpan.FromSeconds(10), "the server ended the session at once");

        await browser.SendAsync(new { cmd = "exit" });
        Assert.That(await browser.WaitForExitAsync(), Is.Zero);
    }

    [Test]
    public async Task QuickExitButtonWhileWaitingLeavesTheQueue()
    {
        await using var world = await World.StartAsync(StoreUnderTest.Embedded, extra: PageOn);
        await using var browser = NodeScript.Start(Driver, null, "--url", world.Nodes[0].BaseAddress.ToString(), "--shots", Path.Combine(Screenshots, "button"));
        await browser.WaitForAsync("launched", 60);
        await browser.SendAsync(new { cmd = "open" });
        await browser.WaitForAsync("ready", 30);
        await browser.SendAsync(new { cmd = "start", language = "en", topic = "", urgent = false });
        await browser.WaitForAsync("waiting");
        var responder = await world.ResponderAsync();
        Assert.That(await responder.GetQueueAsync().WaitAsync(TimeSpan.FromSeconds(10)), Has.Length.EqualTo(1));

        await browser.SendAsync(new { cmd = "quick-exit", how = "button" });
        var exited = await browser.WaitForAsync("exited");

        Assert.That(BackUrls(exited), Is.EqualTo(new[] { Neutral, "about:blank" }), "the chat's entry was replaced, not added to");
        await Eventually.TrueAsync(async () => (await responder.GetQueueAsync()).Length == 0, TimeSpan.FromSeconds(10), "the seeker has left the queue");
        await browser.SendAsync(new { cmd = "exit" });
        Assert.That(await browser.WaitForExitAsync(), Is.Zero);
    }

    [Test]
    public async Task PageIsServedWithStrictHeadersAndIntegrityOnItsBundle()
    {
        await using var world = await World.StartAsync(StoreUnderTest.Embedded, extra: PageOn);
        var http = world.Nodes[0].Http;

        using var page = await http.GetAsync(new Uri("/", UriKind.Relative));
        var html = await page.Content.ReadAsStringAsync();
        var csp = string.Join(";", page.Headers.GetValues("Content-Security-Policy"));
        var bundle = await http.GetByteArrayAsync(new Uri("/seeker/app.js", UriKind.Relative));
        var integrity = ScriptIntegrity().Match(html).Groups[1].Value;
        using var outside = await http.GetAsync(new Uri("/seeker/../appsettings.json", UriKind.Relative));
        using var config = await http.GetAsync(new Uri("/seeker/config.json", UriKind.Relative));
        var pins = JsonDocument.Parse(await config.Content.ReadAsStringAsync()).RootElement;

        Assert.Multiple(() =>
        {
            Assert.That(page.IsSuccessStatusCode, Is.True);
            Assert.That(csp, Does.Contain("default-src 'none'").And.Contain("script-src 'self'").And.Contain("frame-ancestors 'none'"));
            Assert.That(csp, Does.Not.Contain("unsafe-inline").And.Not.Contain("unsafe-eval").And.Not.Contain("*"));
            Assert.That(page.Headers.GetValues("Referrer-Policy"), Is.EqualTo(new[] { "no-referrer" }));
            Assert.That(page.Headers.GetValues("X-Content-Type-Options"), Is.EqualTo(new[] { "nosniff" }));
            Assert.That(page.Headers.CacheControl?.NoStore, Is.True);
            Assert.That(html, Does.Not.Contain("<script>").And.Not.Contain("style="), "no inline script or style");
            Assert.That(integrity, Is.EqualTo("sha384-" + Convert.ToBase64String(SHA384.HashData(bundle))));
            Assert.That(outside.IsSuccessStatusCode, Is.False, "only the page's own files are served");
            Assert.That(pins.GetProperty("quickExitUrl").GetString(), Is.EqualTo(Neutral));
            Assert.That(pins.GetProperty("organisations")[0].GetProperty("roots")[0].GetString(), Is.EqualTo(Convert.ToHexStringLower(world.Org.RootPublic)));
        });
    }

    [Test]
    public async Task PageIsOffInProductionUnlessSwitchedOn()
    {
        await using var world = await World.StartAsync(StoreUnderTest.Embedded);

        using var page = await world.Nodes[0].Http.GetAsync(new Uri("/", UriKind.Relative));

        Assert.That(page.StatusCode, Is.EqualTo(System.Net.HttpStatusCode.NotFound));
    }

    private static string[] BackUrls(JsonElement exited) => [.. Strings(exited, "backUrls")];

    private static IEnumerable<string> Strings(JsonElement e, string property) => e.GetProperty(property).EnumerateArray().Select(x => x.ValueKind == JsonValueKind.String ? x.GetString() ?? "" : x.GetRawText());

    [GeneratedRegex("<script src=\"/seeker/app.js\" integrity=\"([^\"]+)\"")]
    private static partial Regex ScriptIntegrity();
}
