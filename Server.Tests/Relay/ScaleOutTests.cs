using StackExchange.Redis;
using TrustLine.Client;
using TrustLine.Server.Tests.Infrastructure;

namespace TrustLine.Server.Tests.Relay;

/// <summary>Two nodes on one Redis: relaying across nodes, resume on another node, and atomic claims.</summary>
public sealed class ScaleOutTests
{
    [Test]
    public async Task ConversationFlowsWithSeekerAndResponderOnDifferentNodes()
    {
        await using var world = await World.StartAsync(StoreUnderTest.Redis, nodes: 2);
        var (seeker, session, seekerInbox, responderInbox) = await Connected.PairAsync(world, seekerNode: 0, responderNode: 1);

        await seeker.SendTextAsync("van node 0");
        await session.SendTextAsync("van node 1");

        Assert.That(await responderInbox.WaitForAsync(1, "texts at the responder"), Is.EqualTo(new[] { "van node 0" }));
        Assert.That(await seekerInbox.WaitForAsync(1, "texts at the seeker"), Is.EqualTo(new[] { "van node 1" }));
    }

    [Test]
    public async Task SeekerCutMidConversationResumesOnTheOtherNodeWithNothingLostOrDuplicated()
    {
        await using var world = await World.StartAsync(StoreUnderTest.Redis, nodes: 2);
        var (seeker, session, seekerInbox, responderInbox) = await Connected.PairAsync(world, seekerNode: 0, responderNode: 1);
        await seeker.SendTextAsync("s1");
        await session.SendTextAsync("r1");
        await seekerInbox.WaitForAsync(1, "first text at the seeker");
        await responderInbox.WaitForAsync(1, "first text at the responder");
        var states = new Inbox<SeekerState>();
        seeker.StateChanged += states.Add;

        await seeker.SimulateNetworkLossAsync(preferServer: 1);
        await session.SendTextAsync("r2");
        await session.SendTextAsync("r3");
        await seeker.SendTextAsync("s2");
        await seeker.SendTextAsync("s3");

        await seekerInbox.WaitForAsync(3, "texts at the seeker after the resume");
        await responderInbox.WaitForAsync(3, "texts at the responder after the resume");
        await session.SendTextAsync("r4");
        await seekerInbox.WaitForAsync(4, "texts at the seeker");

        Assert.Multiple(() =>
        {
            Assert.That(seekerInbox.Items, Is.EqualTo(new[] { "r1", "r2", "r3", "r4" }));
            Assert.That(responderInbox.Items, Is.EqualTo(new[] { "s1", "s2", "s3" }));
            Assert.That(states.Items, Does.Contain(SeekerState.Reconnecting));
            Assert.That(seeker.State, Is.EqualTo(SeekerState.Connected));
        });
    }

    [Test]
    public async Task TwoRespondersOnTwoNodesRacingForOneSessionExactlyOneWins()
    {
        await using var world = await World.StartAsync(StoreUnderTest.Redis, nodes: 2);
        var seeker = world.Seeker(0);
        await seeker.OpenAsync("nl").WaitAsync(TimeSpan.FromSeconds(15));
        var first = await world.ResponderAsync(0);
        var second = await world.ResponderAsync(1);
        var id = seeker.SessionId.ToByteArray(bigEndian: true);

        var attempts = await Task.WhenAll(Attempt(first), Attempt(second)).WaitAsync(TimeSpan.FromSeconds(15));

        Assert.Multiple(() =>
        {
            Assert.That(attempts.Count(a => a == "won"), Is.EqualTo(1));
            Assert.That(attempts.Count(a => a == "not_available"), Is.EqualTo(1));
        });

        async Task<string> Attempt(ResponderClient responder)
        {
            try
            {
                await responder.TakeAsync(id);
                return "won";
            }
            catch (TrustLineException e)
            {
                return e.Code;
            }
        }
    }
}

/// <summary>A seeker and a responder through the handshake, with inboxes for their texts.</summary>
internal static class Connected
{
    public static async Task<(SeekerClient Seeker, ResponderSession Session, Inbox<string> SeekerInbox, Inbox<string> ResponderInbox)> PairAsync(
        World world, int seekerNode = 0, int responderNode = 0)
    {
        var seeker = world.Seeker(seekerNode);
        var seekerInbox = new Inbox<string>();
        seeker.MessageReceived += seekerInbox.Add;
        var connected = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        seeker.StateChanged += s =>
        {
            if (s == SeekerState.Connected)
            {
                connected.TrySetResult();
            }
        };
        await seeker.OpenAsync("nl").WaitAsync(TimeSpan.FromSeconds(15));
        var responder = await world.ResponderAsync(responderNode);
        var session = await responder.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(15));
        Assert.That(session, Is.Not.Null, "the queue should hold the seeker's session");
        var responderInbox = new Inbox<string>();
        session!.MessageReceived += responderInbox.Add;
        await connected.Task.WaitAsync(TimeSpan.FromSeconds(15));
        await session.WhenEstablished.WaitAsync(TimeSpan.FromSeconds(15));
        return (seeker, session, seekerInbox, responderInbox);
    }
}

/// <summary>Reads what a deployment left in Redis.</summary>
internal static class RedisInspection
{
    /// <summary>Keys of responder sign-in, not of any session: tokens, spent challenges and the day's challenge key (all with TTLs).</summary>
    public static bool IsSignInKey(string prefix, string key) =>
        key.StartsWith(prefix + ":tok:", StringComparison.Ordinal)
        || key.StartsWith(prefix + ":spent:ch:", StringComparison.Ordinal)
        || key.StartsWith(prefix + ":challenge-key:", StringComparison.Ordinal);

    /// <summary>
    /// What may remain when no session is left: sign-in keys, and the organisations the nodes serve as holding timers
    /// (organisation ids, which the directory publishes; with a TTL).
    /// </summary>
    public static bool MayRemain(string prefix, string key) => IsSignInKey(prefix, key) || key == prefix + ":timer-orgs";

    public static async Task<List<(string Key, TimeSpan? Ttl)>> KeysAsync(string prefix)
    {
        var server = TestRedis.Connection.GetServer(TestRedis.Connection.GetEndPoints()[0]);
        var db = TestRedis.Connection.GetDatabase();
        var found = new List<(string, TimeSpan?)>();
        await foreach (var key in server.KeysAsync(pattern: prefix + ":*", pageSize: 500))
        {
            // PTTL: -1 means "no TTL"; -2 means the key went away since the SCAN (an ack), which is fine.
            var ttl = (long)await db.ExecuteAsync("PTTL", key);
            if (ttl != -2)
            {
                found.Add((key.ToString(), ttl == -1 ? null : TimeSpan.FromMilliseconds(ttl)));
            }
        }

        return found;
    }

    public static async Task AssertEveryKeyHasATtlAsync(string prefix, string when)
    {
        var keys = await KeysAsync(prefix);
        Assert.That(keys.Where(k => k.Ttl is null).Select(k => k.Key), Is.Empty, $"keys without a TTL {when}");
    }

    public static RedisValue Hex(Guid id) => id.ToString("N");
}
