using System.Text.Json;
using NSec.Cryptography;
using TrustLine.Client;
using TrustLine.Protocol.Crypto;
using TrustLine.Server.Tests.Infrastructure;

namespace TrustLine.Server.Tests.Web;

/// <summary>
/// The counsellor console in a real Chromium (Debian's, driven by playwright-core), signed in with a key file
/// made by <c>trustline responder keygen</c>, answering a .NET SDK seeker and the seeker page in a second browser
/// context through a real server. Screenshots go to artifacts/web/.
/// </summary>
public sealed partial class ConsolePageTests
{
    private const string Driver = "tests/console-page.mjs";
    private const string Passphrase = "counsellor passphrase 1";
    private const string Hostile = "<img src=x onerror=\"document.title='owned'\"><script>alert(1)</script> \u202Eevil";

    private string folder = "";

    private static string Screenshots => Path.Combine(Path.GetDirectoryName(NodeScript.WebDirectory)!, "artifacts", "web");

    private static Dictionary<string, string?> ConsoleOn(string idleLock = "00:05:00") => new()
    {
        ["Web:Console"] = "true",
        ["Web:Seeker"] = "true",
        ["Web:ConsoleIdleLock"] = idleLock,
    };

    [SetUp]
    public void CreateFolder() => folder = Directory.CreateTempSubdirectory("trustline-console-").FullName;

    [TearDown]
    public void DeleteFolder() => Directory.Delete(folder, recursive: true);

    [Test]
    public async Task CounsellorSignsInWithAKeyFileAndHoldsTwoChatsAndClosingEndsThemForTheSeeker()
    {
        await using var world = await World.StartAsync(StoreUnderTest.Embedded, extra: ConsoleOn());
        var (key, cert, publicKey) = await CounsellorFilesAsync(world);
        var expired = Path.Combine(folder, "expired.cert");
        WriteCertificates(world, publicKey, expired, World.Now - (3 * 86400), World.Now - 86400);
        var otherKey = Path.Combine(folder, "other.cert");
        WriteCertificates(world, world.Org.ResponderPublic, otherKey, World.Now - 3600, World.Now + 86400);
        var issuerKey = Path.Combine(folder, "issuer.key");
        await File.WriteAllTextAsync(issuerKey, KeyFile.Create(KeyKind.Issuer, Passphrase, out var issuer, new KeyFileCost(8 * 1024, 1)));
        issuer.Dispose();
        var damaged = Path.Combine(folder, "damaged.key");
        await File.WriteAllTextAsync(damaged, (await File.ReadAllTextAsync(key)).Replace("\"passes\": 3", "\"passes\": 2", StringComparison.Ordinal));

        await using var browser = NodeScript.Start(Driver, null, "--url", world.Nodes[0].BaseAddress.ToString(), "--shots", Screenshots);
        await browser.WaitForAsync("launched", 60);
        await browser.SendAsync(new { cmd = "open" });
        var ready = await browser.WaitForAsync("ready", 30);
        Assert.Multiple(() =>
        {
            Assert.That(ready.GetProperty("labelled").GetBoolean(), Is.True, "every field has a label");
            Assert.That(ready.GetProperty("demo").GetBoolean(), Is.False, "no demo key without the demo organisation");
        });

        // Refusals, each in one sentence, before anything reaches the server.
        await browser.SendAsync(new { cmd = "sign-in", key, cert, passphrase = "not the passphrase" });
        var wrong = await browser.WaitForAsync("refused", 40);
        await browser.SendAsync(new { cmd = "sign-in", key, cert = expired, passphrase = Passphrase });
        var old = await browser.WaitForAsync("refused", 40);
        await browser.SendAsync(new { cmd = "sign-in", key, cert = otherKey, passphrase = Passphrase });
        var other = await browser.WaitForAsync("refused", 40);
        await browser.SendAsync(new { cmd = "sign-in", key = damaged, cert, passphrase = Passphrase });
        var edited = await browser.WaitForAsync("refused", 40);
        await browser.SendAsync(new { cmd = "sign-in", key = issuerKey, cert, passphrase = Passphrase });
        var notMine = await browser.WaitForAsync("refused", 40);
        await browser.SendAsync(new { cmd = "sign-in", key = cert, cert, passphrase = Passphrase });
        var notAKey = await browser.WaitForAsync("refused", 40);
        Assert.Multiple(() =>
        {
            Assert.That(notMine.GetProperty("error").GetString(), Is.EqualTo("This key file holds an organisation key, not a counsellor's key."));
            Assert.That(notAKey.GetProperty("error").GetString(), Is.EqualTo("The key file is damaged or is not a TrustLine key file."));
            Assert.That(other.GetProperty("error").GetString(), Is.EqualTo("The certificate file certifies another key than this key file's."));
            Assert.That(edited.GetProperty("error").GetString(), Is.EqualTo("The key file is damaged or is not a TrustLine key file."), "an edited cost is caught by the checksum");
            Assert.That(wrong.GetProperty("error").GetString(), Is.EqualTo("The passphrase is wrong for this key file."));
            Assert.That(wrong.GetProperty("passphraseEmpty").GetBoolean(), Is.True, "the passphrase field is cleared");
            Assert.That(old.GetProperty("error").GetString(), Is.EqualTo("Your certificate has expired; ask your organisation's admin for a new one."));
        });

        await browser.SendAsync(new { cmd = "sign-in", key, cert, passphrase = Passphrase });
        var signedIn = await browser.WaitForAsync("signed-in", 40);
        await TestContext.Out.WriteLineAsync($"Sign-in with a default-cost key file (Argon2id 64 MiB, 3 passes, WebAssembly) took {signedIn.GetProperty("ms").GetInt32()} ms.");
        Assert.Multiple(() =>
        {
            Assert.That(signedIn.GetProperty("org").GetString(), Is.EqualTo("Test organisation"));
            Assert.That(signedIn.GetProperty("fingerprint").GetString(), Is.EqualTo(Certificate.Fingerprint(publicKey)));
            Assert.That(signedIn.GetProperty("expiry").GetString(), Does.StartWith("Certificate valid until"));
            Assert.That(signedIn.GetProperty("queue").GetString(), Is.EqualTo("Nobody is waiting."), "the queue is shown at sign-in");
        });

        // Two people start waiting: a .NET seeker (urgent, returning with a pseudonym) and the seeker page in another browser.
        using var pseudonym = Pseudonym.Create();
        var dotnetSeeker = world.Seeker(pseudonym: pseudonym);
        var dotnetInbox = new Inbox<string>();
        dotnetSeeker.MessageReceived += dotnetInbox.Add;
        var connected = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var dotnetEnded = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        dotnetSeeker.StateChanged += s =>
        {
            if (s == SeekerState.Connected)
            {
                connected.TrySetResult();
            }
            else if (s == SeekerState.Ended)
            {
                dotnetEnded.TrySetResult();
            }
        };
        await dotnetSeeker.OpenAsync("nl", "health", urgent: true).WaitAsync(TimeSpan.FromSeconds(15));
        await browser.SendAsync(new { cmd = "queue", count = 1 });
        var one = await browser.WaitForAsync("queue");
        Assert.Multiple(() =>
        {
            Assert.That(one.GetProperty("urgent").GetInt32(), Is.EqualTo(1), "the urgent entry is marked");
            Assert.That(one.GetProperty("title").GetString(), Does.StartWith("(1) "), "a title badge");
            Assert.That(one.GetProperty("chimes").GetInt32(), Is.EqualTo(1), "a sound when someone starts waiting");
            Assert.That(one.GetProperty("entries")[0].GetString(), Does.Contain("Dutch").And.Contain("health").And.Contain("waiting"));
        });

        await browser.SendAsync(new { cmd = "seeker-open", language = "en", topic = "" });
        await browser.WaitForAsync("seeker-waiting", 30);
        await browser.SendAsync(new { cmd = "queue", count = 2, shot = "console-queue" });
        var two = await browser.WaitForAsync("queue");
        Assert.Multiple(() =>
        {
            Assert.That(two.GetProperty("count").GetString(), Is.EqualTo("2 people are waiting."));
            Assert.That(two.GetProperty("entries")[0].GetString(), Does.Contain("Urgent"), "urgent first");
            Assert.That(two.GetProperty("title").GetString(), Does.StartWith("(2) "));
        });

        // Alt+T takes the next (the urgent .NET seeker); they talk both ways.
        await browser.SendAsync(new { cmd = "take-next" });
        var first = await browser.WaitForAsync("taken");
        Assert.Multiple(() =>
        {
            Assert.That(first.GetProperty("info").GetString(), Does.Contain("Dutch").And.Contain("Urgent"));
            Assert.That(first.GetProperty("labelled").GetBoolean(), Is.True, "every field of the chat has a label");
        });
        await connected.Task.WaitAsync(TimeSpan.FromSeconds(15));
        await browser.SendAsync(new { cmd = "established" });
        var established = await browser.WaitForAsync("established");
        Assert.That(established.GetProperty("returning").GetBoolean(), Is.True, "the verified returning-seeker marker (PROTOCOL.md §4)");
        await browser.SendAsync(new { cmd = "send", text = "Hoi, ik ben er. Waar kan ik je mee helpen?" });
        await browser.WaitForAsync("sent");
        Assert.That(await dotnetInbox.WaitForAsync(1, "the console's first text"), Is.EqualTo(new[] { "Hoi, ik ben er. Waar kan ik je mee helpen?" }));
        await dotnetSeeker.SendTextAsync("Ik heb een vraag over een test.").WaitAsync(TimeSpan.FromSeconds(10));
        await dotnetSeeker.SendTextAsync(Hostile).WaitAsync(TimeSpan.FromSeconds(10));
        await browser.SendAsync(new { cmd = "expect", count = 2 });
        var firstTexts = await browser.WaitForAsync("received");
        Assert.Multiple(() =>
        {
            Assert.That(firstTexts.GetProperty("texts")[0].GetString(), Is.EqualTo("Ik heb een vraag over een test."));
            Assert.That(firstTexts.GetProperty("texts")[1].GetString(), Is.EqualTo(Hostile), "markup from a peer is shown as text");
            Assert.That(firstTexts.GetProperty("elements").GetInt32(), Is.Zero, "and never becomes an element");
        });

        // The page's seeker is taken from the list by hand: a second tab.
        await browser.SendAsync(new { cmd = "take", index = 0, expect = 1 });
        var second = await browser.WaitForAsync("taken");
        Assert.That(second.GetProperty("tabs").GetArrayLength(), Is.EqualTo(2));
        await browser.SendAsync(new { cmd = "seeker-connected" });
        await browser.WaitForAsync("seeker-connected");
        await browser.SendAsync(new { cmd = "established" });
        Assert.That((await browser.WaitForAsync("established")).GetProperty("returning").GetBoolean(), Is.False, "the seeker page keeps no pseudonym");
        await browser.SendAsync(new { cmd = "seeker-send", text = "Hello, is anyone there?" });
        await browser.WaitForAsync("seeker-sent");
        await browser.SendAsync(new { cmd = "expect", count = 1 });
        Assert.That((await browser.WaitForAsync("received")).GetProperty("texts")[0].GetString(), Is.EqualTo("Hello, is anyone there?"));
        await browser.SendAsync(new { cmd = "send", text = "Yes, I am here. How can I help?" });
        await browser.WaitForAsync("sent");
        await browser.SendAsync(new { cmd = "seeker-expect", count = 1 });
        Assert.That((await browser.WaitForAsync("seeker-received")).GetProperty("texts")[0].GetString(), Is.EqualTo("Yes, I am here. How can I help?"));

        // A text in the other chat shows as unread on its tab.
        await dotnetSeeker.SendTextAsync("Ben je er nog?").WaitAsync(TimeSpan.FromSeconds(10));
        await browser.SendAsync(new { cmd = "unread", tab = 1, count = 1 });
        var unread = await browser.WaitForAsync("tabs");
        Assert.That(unread.GetProperty("title").GetString(), Does.Contain("1 unread"));
        await browser.SendAsync(new { cmd = "screenshot", name = "console-two-chats" });
        await browser.WaitForAsync("shot");

        // Alt+N moves to the first chat and reads it; Alt+E ends it with a last message.
        await browser.SendAsync(new { cmd = "next-chat" });
        var moved = await browser.WaitForAsync("tabs");
        Assert.Multiple(() =>
        {
            Assert.That(moved.GetProperty("tabs")[0].GetProperty("selected").GetBoolean(), Is.True);
            Assert.That(moved.GetProperty("tabs")[0].GetProperty("unread").GetInt32(), Is.Zero, "reading clears the count");
        });
        await browser.SendAsync(new { cmd = "expect", count = 3 });
        await browser.WaitForAsync("received");
        await browser.SendAsync(new { cmd = "end", reason = 1 });
        var ended = await browser.WaitForAsync("ended");
        Assert.That(ended.GetProperty("reason").GetString(), Is.EqualTo("You ended the chat."), "words, not a code");
        await dotnetEnded.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Multiple(() =>
        {
            Assert.That(dotnetSeeker.EndReason, Is.EqualTo("peer_closed"), "the console's CLOSE reached the seeker end to end");
            Assert.That(dotnetInbox.Items[^1], Does.StartWith("Thank you for talking with us."), "the reason reached the seeker as the last message");
        });

        // Away: a third person starts waiting; the queue shows them, but no chat is offered and no tone sounds.
        await browser.SendAsync(new { cmd = "availability" });
        Assert.That((await browser.WaitForAsync("availability")).GetProperty("pressed").GetString(), Is.EqualTo("false"));
        var third = world.Seeker();
        await third.OpenAsync("en").WaitAsync(TimeSpan.FromSeconds(15));
        await browser.SendAsync(new { cmd = "queue", count = 1 });
        var away = await browser.WaitForAsync("queue");
        Assert.Multiple(() =>
        {
            Assert.That(away.GetProperty("takeDisabled").GetBoolean(), Is.True, "no new chats while away");
            Assert.That(away.GetProperty("chimes").GetInt32(), Is.EqualTo(2), "no tone while away");
            Assert.That(away.GetProperty("title").GetString(), Does.Not.StartWith("(1)"));
        });
        await browser.SendAsync(new { cmd = "availability" });
        Assert.That((await browser.WaitForAsync("availability")).GetProperty("pressed").GetString(), Is.EqualTo("true"));

        await browser.SendAsync(new { cmd = "audit" });
        var audit = await browser.WaitForAsync("audit");
        Assert.Multiple(() =>
        {
            Assert.That(Strings(audit, "violations"), Is.Empty, "Content-Security-Policy violations");
            Assert.That(Strings(audit, "storage"), Is.Empty, "calls to any browser storage");
            Assert.That(Strings(audit, "pageErrors"), Is.Empty, "uncaught errors in the page");
        });

        // A reload with a chat open is asked about first; dismissing keeps it.
        await browser.SendAsync(new { cmd = "try-reload" });
        var reload = await browser.WaitForAsync("reload");
        Assert.Multiple(() =>
        {
            Assert.That(reload.GetProperty("dialog").GetString(), Is.EqualTo("beforeunload"));
            Assert.That(reload.GetProperty("state").GetString(), Is.EqualTo("console"));
        });

        // Closing the tab, confirmed: the open chat is ended at once and the person is told why.
        await browser.SendAsync(new { cmd = "close" });
        Assert.That((await browser.WaitForAsync("closed")).GetProperty("dialog").GetString(), Is.EqualTo("beforeunload"));
        await browser.SendAsync(new { cmd = "seeker-ended", seconds = 10 });
        Assert.That((await browser.WaitForAsync("seeker-ended", 15)).GetProperty("reason").GetString(), Is.EqualTo("The counsellor ended the chat."));

        await browser.SendAsync(new { cmd = "exit" });
        Assert.That(await browser.WaitForExitAsync(), Is.Zero);
    }

    [Test]
    public async Task TheConsoleIsAvailableOnTheServerAndAnswersOffers()
    {
        var settings = ConsoleOn();
        settings["Organisations:test:Offers"] = "true";
        await using var world = await World.StartAsync(StoreUnderTest.Embedded, extra: settings);
        var (key, cert, _) = await CounsellorFilesAsync(world);
        await using var browser = NodeScript.Start(Driver, null, "--url", world.Nodes[0].BaseAddress.ToString(), "--shots", Screenshots);
        await browser.WaitForAsync("launched", 60);
        await browser.SendAsync(new { cmd = "open" });
        await browser.WaitForAsync("ready", 30);
        await browser.SendAsync(new { cmd = "sign-in", key, cert, passphrase = Passphrase });
        await browser.WaitForAsync("signed-in", 40);

        var first = world.Seeker();
        await first.OpenAsync("en").WaitAsync(TimeSpan.FromSeconds(15));
        await browser.SendAsync(new { cmd = "offer", accept = false });
        var declined = await browser.WaitForAsync("offer-answered");
        var second = world.Seeker();
        await second.OpenAsync("nl").WaitAsync(TimeSpan.FromSeconds(15));
        await browser.SendAsync(new { cmd = "offer", accept = true });
        var accepted = await browser.WaitForAsync("offer-answered");

        Assert.Multiple(() =>
        {
            Assert.That(declined.GetProperty("offer").GetString(), Does.StartWith("A chat is offered to you: English"));
            Assert.That(declined.GetProperty("capacity").GetString(), Is.EqualTo("You hold 0 of at most 2 chats."));
            Assert.That(declined.GetProperty("status").GetString(), Is.EqualTo("Declined; the chat goes to a colleague."));
            Assert.That(accepted.GetProperty("offer").GetString(), Does.StartWith("A chat is offered to you: Dutch"), "the declined one is not offered again");
            Assert.That(accepted.GetProperty("tabs").GetArrayLength(), Is.EqualTo(1));
            Assert.That(accepted.GetProperty("capacityAfter").GetString(), Is.EqualTo("You hold 1 of at most 2 chats."));
        });

        // The toggle is the server's: away, a new seeker is not offered; available again, it is.
        await browser.SendAsync(new { cmd = "availability" });
        Assert.That((await browser.WaitForAsync("availability")).GetProperty("pressed").GetString(), Is.EqualTo("false"));
        var third = world.Seeker();
        await third.OpenAsync("en").WaitAsync(TimeSpan.FromSeconds(15));
        await browser.SendAsync(new { cmd = "queue", count = 2 });
        Assert.That((await browser.WaitForAsync("queue")).GetProperty("offered").GetBoolean(), Is.False, "away: no offer");
        await browser.SendAsync(new { cmd = "availability" });
        Assert.That((await browser.WaitForAsync("availability")).GetProperty("pressed").GetString(), Is.EqualTo("true"));
        await browser.SendAsync(new { cmd = "offer", accept = true });
        var again = await browser.WaitForAsync("offer-answered");
        Assert.That(again.GetProperty("tabs").GetArrayLength(), Is.EqualTo(2), "available again: the new seeker is offered and taken");

        await browser.SendAsync(new { cmd = "exit" });
        Assert.That(await browser.WaitForExitAsync(), Is.Zero);
    }

    [Test]
    public async Task IdleLockWipesTheKeyFromThePageAndThePassphraseBringsItBack()
    {
        await using var world = await World.StartAsync(StoreUnderTest.Embedded, extra: ConsoleOn(idleLock: "00:00:04"));
        var (key, cert, _) = await CounsellorFilesAsync(world, notAfter: World.Now + 86400 - 600);
        await using var browser = NodeScript.Start(Driver, null, "--url", world.Nodes[0].BaseAddress.ToString(), "--shots", Screenshots, "--track-bytes");
        await browser.WaitForAsync("launched", 60);
        await browser.SendAsync(new { cmd = "open" });
        await browser.WaitForAsync("ready", 30);
        await browser.SendAsync(new { cmd = "sign-in", key, cert, passphrase = Passphrase });
        var signedIn = await browser.WaitForAsync("signed-in", 40);
        Assert.That(signedIn.GetProperty("expiry").GetString(), Is.EqualTo("Certificate expires in 23 hours: ask your admin for a new one"), "a warning in the certificate's last two days");

        // The probe finds the live key while signed in (so it can fail) …
        await browser.SendAsync(new { cmd = "key-copies", key, passphrase = Passphrase });
        var before = await browser.WaitForAsync("key-copies");
        Assert.That(before.GetProperty("found").GetInt32(), Is.GreaterThanOrEqualTo(1), "the signed-in page holds the key (so the probe can find it)");

        // … and finds nothing once the idle time has locked the console.
        await browser.SendAsync(new { cmd = "await-locked", seconds = 20 });
        var locked = await browser.WaitForAsync("locked", 25);
        await browser.SendAsync(new { cmd = "key-copies", key, passphrase = Passphrase });
        var after = await browser.WaitForAsync("key-copies");
        Assert.Multiple(() =>
        {
            Assert.That(locked.GetProperty("consoleHidden").GetBoolean(), Is.True, "the console is hidden behind the lock");
            Assert.That(after.GetProperty("found").GetInt32(), Is.Zero, $"no copy of the key is left in the page's memory ({after.GetRawText()})");
            Assert.That(after.GetProperty("wrappingFound").GetInt32(), Is.Zero, "nor of the passphrase-derived key that opens the key file the page keeps");
        });

        await browser.SendAsync(new { cmd = "unlock", passphrase = "wrong passphrase" });
        Assert.That((await browser.WaitForAsync("unlocked", 40)).GetProperty("error").GetString(), Is.EqualTo("The passphrase is wrong for this key file."));
        await browser.SendAsync(new { cmd = "unlock", passphrase = Passphrase });
        Assert.That((await browser.WaitForAsync("unlocked", 40)).GetProperty("state").GetString(), Is.EqualTo("console"));

        // The key is back: the console answers a new seeker's handshake with it.
        var seeker = world.Seeker();
        var connected = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        seeker.StateChanged += s =>
        {
            if (s == SeekerState.Connected)
            {
                connected.TrySetResult();
            }
        };
        await seeker.OpenAsync("en").WaitAsync(TimeSpan.FromSeconds(15));
        await browser.SendAsync(new { cmd = "queue", count = 1 });
        await browser.WaitForAsync("queue");
        await browser.SendAsync(new { cmd = "take-next" });
        await browser.WaitForAsync("taken");
        await connected.Task.WaitAsync(TimeSpan.FromSeconds(15));

        await browser.SendAsync(new { cmd = "exit" });
        Assert.That(await browser.WaitForExitAsync(), Is.Zero);
    }

    [Test]
    public async Task ConsoleIsServedWithTheSeekerPagesHeadersAndOnlyWasmBesides()
    {
        await using var world = await World.StartAsync(StoreUnderTest.Embedded, extra: ConsoleOn());
        var http = world.Nodes[0].Http;

        using var page = await http.GetAsync(new Uri("/console/", UriKind.Relative));
        var csp = string.Join(";", page.Headers.GetValues("Content-Security-Policy"));
        using var config = await http.GetAsync(new Uri("/console/config.json", UriKind.Relative));
        var settings = JsonDocument.Parse(await config.Content.ReadAsStringAsync()).RootElement;
        using var demoKey = await http.GetAsync(new Uri("/console/demo/responder.key", UriKind.Relative));
        using var outside = await http.GetAsync(new Uri("/console/../appsettings.json", UriKind.Relative));

        Assert.Multiple(() =>
        {
            Assert.That(page.IsSuccessStatusCode, Is.True);
            Assert.That(csp, Does.Contain("default-src 'none'").And.Contain("script-src 'self' 'wasm-unsafe-eval';").And.Contain("frame-ancestors 'none'"));
            Assert.That(csp, Does.Not.Contain("unsafe-inline").And.Not.Contain("'unsafe-eval'").And.Not.Contain("*"));
            Assert.That(page.Headers.CacheControl?.NoStore, Is.True);
            Assert.That(page.Headers.GetValues("Referrer-Policy"), Is.EqualTo(new[] { "no-referrer" }));
            Assert.That(settings.GetProperty("idleLockSeconds").GetInt32(), Is.EqualTo(300));
            Assert.That(settings.GetProperty("demo").GetBoolean(), Is.False);
            Assert.That(demoKey.StatusCode, Is.EqualTo(System.Net.HttpStatusCode.NotFound), "the demo key only with the demo organisation");
            Assert.That(outside.IsSuccessStatusCode, Is.False);
        });
    }

    [Test]
    public async Task ConsoleIsOffInProductionUnlessSwitchedOn()
    {
        await using var world = await World.StartAsync(StoreUnderTest.Embedded);

        using var page = await world.Nodes[0].Http.GetAsync(new Uri("/console/", UriKind.Relative));

        Assert.That(page.StatusCode, Is.EqualTo(System.Net.HttpStatusCode.NotFound));
    }

    [Test]
    public async Task DemoOrganisationSignsInWithTheServersDemoKeyFile()
    {
        // Development, as in the README's quick start: the demo organisation comes from appsettings.Development.json.
        await using var node = await TrustLineNode.StartAsync(new NodeSettings { Environment = "Development", Settings = ConsoleOn() });
        await using var browser = NodeScript.Start(Driver, null, "--url", node.BaseAddress.ToString(), "--shots", Path.Combine(Screenshots, "demo"));
        await browser.WaitForAsync("launched", 60);
        await browser.SendAsync(new { cmd = "open" });
        Assert.That((await browser.WaitForAsync("ready", 30)).GetProperty("demo").GetBoolean(), Is.True, "the demo key file is offered");

        await browser.SendAsync(new { cmd = "demo-sign-in" });
        var signedIn = await browser.WaitForAsync("demo-signed-in", 40);

        Assert.Multiple(() =>
        {
            Assert.That(signedIn.GetProperty("state").GetString(), Is.EqualTo("console"), signedIn.GetProperty("org").GetString());
            Assert.That(signedIn.GetProperty("org").GetString(), Does.Contain("Demo organisation").And.Contain("INSECURE"));
            Assert.That(signedIn.GetProperty("fingerprint").GetString(), Is.EqualTo(Certificate.Fingerprint(Crypto.Vectors.PublicOf(Crypto.Vectors.ResponderSeed))));
        });
        await browser.SendAsync(new { cmd = "exit" });
        Assert.That(await browser.WaitForExitAsync(), Is.Zero);
    }

    [Test]
    public async Task DemoKeyFileIsTheInsecureTest3KeyAndOpensWithTheTrustLineReader()
    {
        var path = Path.Combine(NodeScript.WebDirectory, "console", "dist", "demo", "responder.key");
        Assert.That(File.Exists(path), Is.True, "the console build writes the demo key file");

        var error = KeyFile.TryOpen(await File.ReadAllTextAsync(path), "insecure demo passphrase", out var kind, out var key);
        using (key)
        {
            Assert.Multiple(() =>
            {
                Assert.That(error, Is.EqualTo(KeyFileError.None));
                Assert.That(kind, Is.EqualTo(KeyKind.Responder));
                Assert.That(key!.PublicKey.Export(KeyBlobFormat.RawPublicKey), Is.EqualTo(Crypto.Vectors.PublicOf(Crypto.Vectors.ResponderSeed)), "RFC 8032 TEST 3");
            });
        }
    }

    /// <summary>A responder key file made by <c>trustline responder keygen</c>, certified by the test organisation's issuer.</summary>
    private async Task<(string Key, string Cert, byte[] PublicKey)> CounsellorFilesAsync(World world, long? notAfter = null)
    {
        var key = Path.Combine(folder, "counsellor.key");
        var keygen = await CliProcess.RunAsync([Passphrase], "responder", "keygen", "--out", key);
        Assert.That(keygen.ExitCode, Is.Zero, keygen.Errors);
        Assert.That(KeyFile.TryReadPublic(await File.ReadAllTextAsync(key), out _, out var publicKey), Is.True);
        var cert = Path.Combine(folder, "counsellor.cert");
        WriteCertificates(world, publicKey, cert, World.Now - 3600, notAfter ?? World.Now + (10 * 86400));
        return (key, cert, publicKey);
    }

    /// <summary>A certificate file as <c>trustline org certify</c> writes it: a comment, then the issuer's and the responder's certificate.</summary>
    private static void WriteCertificates(World world, byte[] publicKey, string path, long notBefore, long notAfter)
    {
        var responder = Certificate.Issue(world.Org.IssuerKey, CertificateRole.Responder, world.Org.OrgId, publicKey, notBefore, notAfter);
        File.WriteAllText(path, $"# TrustLine responder certificates (public)\n{PublicText.Certificate(world.Org.IssuerCertificate)}\n{PublicText.Certificate(responder)}\n");
    }

    private static IEnumerable<string> Strings(JsonElement e, string property) =>
        e.GetProperty(property).EnumerateArray().Select(x => x.ValueKind == JsonValueKind.String ? x.GetString() ?? "" : x.GetRawText());
}
