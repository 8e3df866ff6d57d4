using System.Security.Cryptography;
using NSec.Cryptography;
using TrustLine.Client;
using TrustLine.Protocol.Crypto;
using TrustLine.Server.Tests.Infrastructure;

namespace TrustLine.Server.Tests.Web;

/// <summary>
/// The TypeScript SDK (<c>Web/sdk</c>, run by node) against the .NET SDK through a real server: each role in
/// each language, texts of every bucket size and multi-byte UTF-8 both ways, and a resume after a dropped
/// connection with nothing lost.
/// </summary>
public sealed class SdkInteropTests
{
    private const string Peer = "sdk/dist/test/interop/peer.js";

    /// <summary>One text per padding bucket (bodies up to 253, 1021, 4093 and 16381 bytes), edges and multi-byte UTF-8 included.</summary>
    internal static readonly string[] Texts =
    [
        "Hoi",
        "Ik ben bang 😟 — ajutor, помощ, ayuda, segítség, pomocy, ช่วยด้วย",
        new string('a', 253),
        new string('é', 500),
        string.Concat(Enumerable.Repeat("ж", 2046)) + "!",
        new string('x', 10_000),
        string.Concat(Enumerable.Repeat("😀", 4095)) + "x",
    ];

    [Test]
    public async Task TypeScriptSeekerTalksWithDotNetResponderAndResumesAfterADroppedConnection()
    {
        await using var world = await World.StartAsync(StoreUnderTest.Redis);
        await using var seeker = NodeScript.Start(Peer, null, "seeker", "--server", world.Nodes[0].BaseAddress.ToString(),
            "--org", Convert.ToHexStringLower(world.Org.OrgId), "--root", Convert.ToHexStringLower(world.Org.RootPublic));

        await seeker.SendAsync(new { cmd = "open", language = "nl", topic = "health", urgent = true });
        var opened = await seeker.WaitForAsync("opened");
        Assert.That(opened.GetProperty("position").GetInt32(), Is.EqualTo(1));

        var responder = await world.ResponderAsync();
        var session = await responder.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(15));
        Assert.That(session, Is.Not.Null);
        var inbox = new Inbox<string>();
        session!.MessageReceived += inbox.Add;
        var ended = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        session.Ended += reason => ended.TrySetResult(reason);
        var hello = await session.WhenEstablished.WaitAsync(TimeSpan.FromSeconds(15));
        var fingerprint = await seeker.WaitForAsync("fingerprint");
        Assert.Multiple(() =>
        {
            Assert.That(session.Urgent, Is.True);
            Assert.That(session.Topic, Is.EqualTo("health"));
            Assert.That(hello.IsReturning, Is.False);
            Assert.That(fingerprint.GetProperty("value").GetString(), Is.EqualTo(Certificate.Fingerprint(world.Org.ResponderPublic)));
        });

        foreach (var text in Texts)
        {
            await session.SendTextAsync(text).WaitAsync(TimeSpan.FromSeconds(10));
        }

        var received = await seeker.WaitForCountAsync("message", Texts.Length);
        Assert.That(received.Select(m => m.GetProperty("text").GetString()), Is.EqualTo(Texts));

        foreach (var text in Texts)
        {
            await seeker.SendAsync(new { cmd = "send", text });
        }

        await seeker.WaitForCountAsync("sent", Texts.Length);
        await inbox.WaitForAsync(Texts.Length, "texts at the .NET responder");
        Assert.That(inbox.Items, Is.EqualTo(Texts));

        // A dropped connection: the seeker writes while away, the responder too; both arrive, once, in order.
        await seeker.SendAsync(new { cmd = "drop" });
        await seeker.WaitForAsync("dropped");
        await seeker.SendAsync(new { cmd = "send", text = "na het wegvallen" });
        await session.SendTextAsync("terwijl je weg was").WaitAsync(TimeSpan.FromSeconds(10));
        await inbox.WaitForAsync(Texts.Length + 1, "the text written while away");
        var afterDrop = await seeker.WaitForCountAsync("message", Texts.Length + 1);
        Assert.Multiple(() =>
        {
            Assert.That(inbox.Items, Is.EqualTo(Texts.Append("na het wegvallen")));
            Assert.That(afterDrop[^1].GetProperty("text").GetString(), Is.EqualTo("terwijl je weg was"));
            Assert.That(seeker.All("state").Select(s => s.GetProperty("state").GetString()), Does.Contain("reconnecting"));
        });

        await seeker.SendAsync(new { cmd = "close" });
        await seeker.WaitForAsync("closed");
        // The TypeScript seeker's CLOSE reached the .NET responder end to end, before the server's close.
        Assert.That(await ended.Task.WaitAsync(TimeSpan.FromSeconds(10)), Is.EqualTo("peer_closed"));
    }

    [Test]
    public async Task TypeScriptSeekerResumesOnAnotherNodeWithNothingLost()
    {
        await using var world = await World.StartAsync(StoreUnderTest.Redis, nodes: 2);
        await using var seeker = NodeScript.Start(Peer, null, "seeker", "--server", world.Nodes[0].BaseAddress.ToString(),
            "--fallback", world.Nodes[1].BaseAddress.ToString(),
            "--org", Convert.ToHexStringLower(world.Org.OrgId), "--root", Convert.ToHexStringLower(world.Org.RootPublic));
        await seeker.SendAsync(new { cmd = "open", language = "en" });
        await seeker.WaitForAsync("opened");
        var responder = await world.ResponderAsync(node: 1);
        var session = await responder.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(15));
        var inbox = new Inbox<string>();
        session!.MessageReceived += inbox.Add;
        await session.WhenEstablished.WaitAsync(TimeSpan.FromSeconds(15));
        await seeker.WaitForAsync("fingerprint");

        // The seeker comes back on the other node (index 1: the fallback); both sides wrote meanwhile.
        await seeker.SendAsync(new { cmd = "drop", server = 1 });
        await seeker.WaitForAsync("dropped");
        await seeker.SendAsync(new { cmd = "send", text = "from the other node" });
        await session.SendTextAsync("while you moved").WaitAsync(TimeSpan.FromSeconds(10));

        await inbox.WaitForAsync(1, "the seeker's text through the other node");
        var received = await seeker.WaitForCountAsync("message", 1);
        Assert.Multiple(() =>
        {
            Assert.That(inbox.Items, Is.EqualTo(new[] { "from the other node" }));
            Assert.That(received.Select(m => m.GetProperty("text").GetString()), Is.EqualTo(new[] { "while you moved" }));
        });
    }

    [Test]
    public async Task DotNetSeekerTalksWithTypeScriptResponderAndResumesAfterADroppedConnection()
    {
        await using var world = await World.StartAsync(StoreUnderTest.Redis);
        var seed = RandomNumberGenerator.GetBytes(32);
        using var key = Key.Import(SignatureAlgorithm.Ed25519, seed, KeyBlobFormat.RawPrivateKey);
        var responderPublic = key.PublicKey.Export(KeyBlobFormat.RawPublicKey);
        var certificate = Certificate.Issue(world.Org.IssuerKey, CertificateRole.Responder, world.Org.OrgId, responderPublic, World.Now - 3600, World.Now + (10 * 86400));
        await using var responder = NodeScript.Start(Peer, null, "responder", "--server", world.Nodes[0].BaseAddress.ToString(),
            "--seed", Convert.ToHexStringLower(seed),
            "--issuer", Convert.ToBase64String(world.Org.IssuerCertificate.Encoded),
            "--responder", Convert.ToBase64String(certificate.Encoded));
        await responder.WaitForAsync("signed-in");

        var seeker = world.Seeker();
        var inbox = new Inbox<string>();
        seeker.MessageReceived += inbox.Add;
        var states = new Inbox<SeekerState>();
        seeker.StateChanged += states.Add;
        await seeker.OpenAsync("en", "", urgent: false).WaitAsync(TimeSpan.FromSeconds(15));

        await responder.SendAsync(new { cmd = "take" });
        var taken = await responder.WaitForAsync("taken");
        var established = await responder.WaitForAsync("established");
        await states.WaitForAsync(2, "seeker states (waiting, connected)");
        Assert.Multiple(() =>
        {
            Assert.That(taken.GetProperty("language").GetString(), Is.EqualTo("en"));
            Assert.That(taken.GetProperty("urgent").GetBoolean(), Is.False);
            Assert.That(established.GetProperty("returning").GetBoolean(), Is.False);
            Assert.That(seeker.State, Is.EqualTo(SeekerState.Connected));
            Assert.That(seeker.ResponderFingerprint, Is.EqualTo(Certificate.Fingerprint(responderPublic)));
        });

        foreach (var text in Texts)
        {
            await seeker.SendTextAsync(text).WaitAsync(TimeSpan.FromSeconds(10));
        }

        var received = await responder.WaitForCountAsync("message", Texts.Length);
        Assert.That(received.Select(m => m.GetProperty("text").GetString()), Is.EqualTo(Texts));

        foreach (var text in Texts)
        {
            await responder.SendAsync(new { cmd = "send", text });
        }

        await responder.WaitForCountAsync("sent", Texts.Length);
        await inbox.WaitForAsync(Texts.Length, "texts at the .NET seeker");
        Assert.That(inbox.Items, Is.EqualTo(Texts));

        await responder.SendAsync(new { cmd = "drop" });
        await responder.WaitForAsync("dropped");
        await responder.SendAsync(new { cmd = "send", text = "sorry, my connection dropped" });
        await seeker.SendTextAsync("still here").WaitAsync(TimeSpan.FromSeconds(10));
        await inbox.WaitForAsync(Texts.Length + 1, "the text written while the responder was away");
        var afterDrop = await responder.WaitForCountAsync("message", Texts.Length + 1);
        Assert.Multiple(() =>
        {
            Assert.That(inbox.Items[^1], Is.EqualTo("sorry, my connection dropped"));
            Assert.That(afterDrop[^1].GetProperty("text").GetString(), Is.EqualTo("still here"));
        });

        await responder.SendAsync(new { cmd = "close" });
        await responder.WaitForAsync("closed");
        await states.WaitForAsync(3, "the seeker's ended state");
        // The TypeScript responder's CLOSE reached the .NET seeker end to end, before the server's close.
        Assert.That(seeker.EndReason, Is.EqualTo("peer_closed"));
    }
}
