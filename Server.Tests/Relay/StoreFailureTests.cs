using System.Diagnostics;
using TrustLine.Client;
using TrustLine.Protocol.Contracts;
using TrustLine.Server.Tests.Crypto;
using TrustLine.Server.Tests.Infrastructure;

namespace TrustLine.Server.Tests.Relay;

/// <summary>
/// Redis fails under a live chat whose parties sit on two server nodes (real processes, the real SDK on both
/// ends, talking at a fixed rate): a Sentinel failover and a Cluster primary's death lose nothing that was
/// accepted and duplicate nothing; a restart of a Redis without persistence ends the chat for both with
/// <c>store_lost</c>, and new chats work. Every wait has its own timeout (a run takes 8 to 18 s), and every process
/// a test starts is stopped when it ends, passed or failed.
/// </summary>
[NonParallelizable]
public sealed class StoreFailureTests
{
    private static readonly TimeSpan Rate = TimeSpan.FromMilliseconds(50);

    [Test]
    public async Task SentinelFailoverMidChatAcrossNodesLosesAndDuplicatesNothing()
    {
        if (await RedisServer.CannotRunAsync("sentinel") is { } why)
        {
            Assert.Ignore(why);
        }

        await using var redis = await RedisSetup.SentinelAsync();
        await using var chat = await SplitChat.StartAsync(redis.Configuration);
        await chat.TalkAsync(TimeSpan.FromSeconds(1));

        var killed = Stopwatch.StartNew();
        await redis.Servers[0].StopAsync(); // kill -9 of the primary
        bool notReady;
        try
        {
            notReady = await chat.WaitUntilReadyAsync(TimeSpan.FromSeconds(30));
        }
        catch (AssertionException)
        {
            await TestContext.Progress.WriteLineAsync($"Node A:\n{chat.NodeA.RecentOutput}\nNode B:\n{chat.NodeB.RecentOutput}");
            throw;
        }

        var followed = killed.Elapsed;
        await chat.TalkAsync(TimeSpan.FromSeconds(2));
        var (seekerSent, responderSent) = await chat.StopTalkingAsync();

        var atResponder = await chat.ResponderInbox.WaitForAsync(seekerSent.Count, "accepted texts at the responder", seconds: 30);
        var atSeeker = await chat.SeekerInbox.WaitForAsync(responderSent.Count, "accepted texts at the seeker", seconds: 30);
        await TestContext.Progress.WriteLineAsync(
            $"Sentinel failover: nodes ready again after {followed.TotalSeconds:0.0} s; seeker→responder {atResponder.Count}/{seekerSent.Count}, " +
            $"responder→seeker {atSeeker.Count}/{responderSent.Count}; longest pause {chat.LongestPause.TotalSeconds:0.0} s.");
        Assert.Multiple(() =>
        {
            Assert.That(notReady, Is.True, "readiness turned false while no primary answered");
            Assert.That(atResponder, Is.EqualTo(seekerSent), "everything the seeker was told was accepted arrived once, in order");
            Assert.That(atSeeker, Is.EqualTo(responderSent), "everything the responder was told was accepted arrived once, in order");
            Assert.That(chat.Seeker.EndReason, Is.Null, "the seeker's session goes on");
            Assert.That(chat.Session.EndReason, Is.Null, "the responder's session goes on");
        });
    }

    [TestCase(true, TestName = "RestartOfAnEmptyRedisMidChatTellsBothPartiesStoreLostAndNewChatsWork")]
    [TestCase(false, TestName = "RestartOfAnEmptyRedisDuringASilenceTellsBothPartiesStoreLost")]
    public async Task RestartOfAnEmptyRedis(bool talking)
    {
        await using var redis = await RedisServer.StartAsync();
        await using var chat = await SplitChat.StartAsync(redis.Configuration);
        await chat.TalkAsync(TimeSpan.FromSeconds(1));
        if (!talking)
        {
            // Nobody sends or acknowledges while Redis is away: only the nodes' own look finds the loss.
            await chat.StopTalkingAsync();
        }

        await redis.StopAsync();
        await Task.Delay(TimeSpan.FromSeconds(2)); // the outage itself: Redis is away this long
        await redis.StartAgainAsync();
        var back = Stopwatch.StartNew();
        await Eventually.TrueAsync(() => Task.FromResult(chat.Seeker.EndReason is not null && chat.Session.EndReason is not null),
            TimeSpan.FromSeconds(15), "both parties are told the session ended");
        var told = back.Elapsed;
        await chat.StopTalkingAsync(expectEnd: true);
        await TestContext.Progress.WriteLineAsync($"Redis restart ({(talking ? "mid-chat" : "silence")}): both parties told after {told.TotalSeconds:0.0} s ({chat.Seeker.EndReason}, {chat.Session.EndReason}).");
        Assert.Multiple(() =>
        {
            Assert.That(chat.Seeker.EndReason, Is.EqualTo(EndReasons.StoreLost));
            Assert.That(chat.Session.EndReason, Is.EqualTo(EndReasons.StoreLost));
        });

        // A new chat works on the same nodes, across them.
        var fresh = Stopwatch.StartNew();
        await using var again = await SplitChat.OpenAsync(chat.Org, chat.NodeA, chat.NodeB);
        await again.TalkAsync(TimeSpan.FromMilliseconds(500));
        var (seekerSent, responderSent) = await again.StopTalkingAsync();
        Assert.That(await again.ResponderInbox.WaitForAsync(seekerSent.Count, "texts of the new chat", seconds: 15), Is.EqualTo(seekerSent));
        Assert.That(await again.SeekerInbox.WaitForAsync(responderSent.Count, "texts of the new chat", seconds: 15), Is.EqualTo(responderSent));
        await TestContext.Progress.WriteLineAsync($"Redis restart: a new chat opened and talked in {fresh.Elapsed.TotalSeconds:0.0} s.");
    }

    [Test]
    public async Task ClusterPrimaryKilledMidChatAcrossNodesLosesAndDuplicatesNothing()
    {
        if (await RedisServer.CannotRunAsync("cluster") is { } why)
        {
            Assert.Ignore(why);
        }

        await using var redis = await RedisSetup.ClusterAsync();
        await using var chat = await SplitChat.StartAsync(redis.Configuration);
        await chat.TalkAsync(TimeSpan.FromSeconds(1));

        var holder = await redis.ClusterPrimaryOfAsync($"{{{chat.Seeker.SessionId:N}}}");
        await holder.StopAsync();
        await chat.TalkAsync(TimeSpan.FromSeconds(5));
        var (seekerSent, responderSent) = await chat.StopTalkingAsync();

        var atResponder = await chat.ResponderInbox.WaitForAsync(seekerSent.Count, "accepted texts at the responder", seconds: 30);
        var atSeeker = await chat.SeekerInbox.WaitForAsync(responderSent.Count, "accepted texts at the seeker", seconds: 30);
        await TestContext.Progress.WriteLineAsync(
            $"Cluster primary killed: seeker→responder {atResponder.Count}/{seekerSent.Count}, responder→seeker {atSeeker.Count}/{responderSent.Count}; " +
            $"longest pause {chat.LongestPause.TotalSeconds:0.0} s.");
        Assert.Multiple(() =>
        {
            Assert.That(atResponder, Is.EqualTo(seekerSent), "everything the seeker was told was accepted arrived once, in order");
            Assert.That(atSeeker, Is.EqualTo(responderSent), "everything the responder was told was accepted arrived once, in order");
            Assert.That(chat.Seeker.EndReason, Is.Null, "the seeker's session goes on");
            Assert.That(chat.Session.EndReason, Is.Null, "the responder's session goes on");
        });
    }

    /// <summary>Two server nodes on one Redis deployment; a seeker on one and its responder on the other, talking at a fixed rate.</summary>
    private sealed class SplitChat : IAsyncDisposable
    {
        private readonly List<IAsyncDisposable> owned = [];
        private readonly Lock gate = new();
        private readonly List<string> seekerAccepted = [];
        private readonly List<string> responderAccepted = [];
        private CancellationTokenSource? talking;
        private Task? seekerTalk;
        private Task? responderTalk;
        private int counter;
        private readonly Dictionary<Inbox<string>, long> lastArrival = [];
        private TimeSpan longestPause;

        public TestOrganisation Org { get; private set; } = null!;

        public ServerProcess NodeA { get; private set; } = null!;

        public ServerProcess NodeB { get; private set; } = null!;

        public SeekerClient Seeker { get; private set; } = null!;

        public ResponderSession Session { get; private set; } = null!;

        public Inbox<string> SeekerInbox { get; } = new();

        public Inbox<string> ResponderInbox { get; } = new();

        /// <summary>The longest time in which one party received nothing while they talked.</summary>
        public TimeSpan LongestPause
        {
            get
            {
                lock (gate)
                {
                    return longestPause;
                }
            }
        }

        public static async Task<SplitChat> StartAsync(string redisConfiguration)
        {
            var org = new TestOrganisation(orgId: System.Security.Cryptography.RandomNumberGenerator.GetBytes(16),
                issuerNotBefore: World.Now - 3600, issuerNotAfter: World.Now + (80 * 86400),
                responderNotBefore: World.Now - 3600, responderNotAfter: World.Now + (10 * 86400), fresh: true);
            var settings = World.OrganisationSettings(org);
            settings["Redis:Configuration"] = redisConfiguration;
            settings["Redis:KeyPrefix"] = TestRedis.NewPrefix();
            var nodeA = await ServerProcess.StartAsync(settings);
            ServerProcess nodeB;
            try
            {
                nodeB = await ServerProcess.StartAsync(settings);
            }
            catch
            {
                await nodeA.DisposeAsync();
                throw;
            }

            var chat = await OpenAsync(org, nodeA, nodeB);
            chat.owned.Add(nodeB);
            chat.owned.Add(nodeA);
            return chat;
        }

        /// <summary>A new chat on running nodes: the seeker on <paramref name="a"/>, the responder on <paramref name="b"/>.</summary>
        public static async Task<SplitChat> OpenAsync(TestOrganisation org, ServerProcess a, ServerProcess b)
        {
            var chat = new SplitChat { Org = org, NodeA = a, NodeB = b };
            try
            {
                chat.Seeker = new SeekerClient(a.BaseAddress, org.Pin);
                chat.owned.Add(chat.Seeker);
                chat.Seeker.MessageReceived += text => chat.Arrived(chat.SeekerInbox, text);
                await chat.Seeker.OpenAsync("nl").WaitAsync(TimeSpan.FromSeconds(15));
                using var credentials = org.Credentials();
                var responder = await ResponderClient.SignInAsync(b.BaseAddress, credentials).WaitAsync(TimeSpan.FromSeconds(15));
                chat.owned.Add(responder);
                chat.Session = (await responder.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(15)))!;
                chat.Session.MessageReceived += text => chat.Arrived(chat.ResponderInbox, text);
                await Eventually.TrueAsync(() => Task.FromResult(chat.Seeker.State == SeekerState.Connected), TimeSpan.FromSeconds(15), "the seeker is connected");
                return chat;
            }
            catch
            {
                await chat.DisposeAsync();
                throw;
            }
        }

        /// <summary>Both parties send a text every <see cref="Rate"/> (waiting for each to be accepted) for <paramref name="duration"/> more.</summary>
        public async Task TalkAsync(TimeSpan duration)
        {
            if (talking is null)
            {
                lock (gate)
                {
                    lastArrival[SeekerInbox] = lastArrival[ResponderInbox] = Stopwatch.GetTimestamp();
                }

                talking = new CancellationTokenSource();
                seekerTalk = TalkLoopAsync("s", Seeker.SendTextAsync, seekerAccepted, talking.Token);
                responderTalk = TalkLoopAsync("r", Session.SendTextAsync, responderAccepted, talking.Token);
            }

            await Task.Delay(duration);
        }

        /// <summary>Stops talking; what each party was told was accepted, in order.</summary>
        public async Task<(IReadOnlyList<string> Seeker, IReadOnlyList<string> Responder)> StopTalkingAsync(bool expectEnd = false)
        {
            await talking!.CancelAsync();
            try
            {
                await Task.WhenAll(seekerTalk!, responderTalk!).WaitAsync(TimeSpan.FromSeconds(40));
            }
            catch (InvalidOperationException) when (expectEnd)
            {
                // A send the session's end cut short.
            }

            lock (gate)
            {
                return ([.. seekerAccepted], [.. responderAccepted]);
            }
        }

        /// <summary>Polls both nodes' readiness until both are ready again; true if either was seen not ready meanwhile.</summary>
        public async Task<bool> WaitUntilReadyAsync(TimeSpan limit)
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(3) };
            var sawNotReady = false;
            await Eventually.TrueAsync(async () =>
            {
                var ready = true;
                foreach (var node in new[] { NodeA, NodeB })
                {
                    try
                    {
                        using var response = await http.GetAsync(new Uri(node.BaseAddress, "/health/ready"));
                        ready &= response.IsSuccessStatusCode;
                    }
                    catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
                    {
                        ready = false;
                    }
                }

                sawNotReady |= !ready;
                return ready && sawNotReady;
            }, limit, "both nodes are ready again after the primary's death");
            return sawNotReady;
        }

        public async ValueTask DisposeAsync()
        {
            if (talking is not null)
            {
                await talking.CancelAsync();
            }

            foreach (var item in owned)
            {
                try
                {
                    await item.DisposeAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10));
                }
                catch (Exception e) when (e is TimeoutException or InvalidOperationException or ObjectDisposedException)
                {
                    // Tearing down after a failure: the processes are killed below regardless.
                }
            }

            talking?.Dispose();
        }

        private async Task TalkLoopAsync(string who, Func<string, CancellationToken, Task> send, List<string> accepted, CancellationToken stop)
        {
            await Task.Yield();
            while (!stop.IsCancellationRequested)
            {
                var text = $"{who}{Interlocked.Increment(ref counter)}";
                await send(text, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30), CancellationToken.None);
                lock (gate)
                {
                    accepted.Add(text);
                }

                try
                {
                    await Task.Delay(Rate, stop);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }

        private void Arrived(Inbox<string> inbox, string text)
        {
            var now = Stopwatch.GetTimestamp();
            lock (gate)
            {
                if (lastArrival.TryGetValue(inbox, out var last) && Stopwatch.GetElapsedTime(last, now) is var pause && pause > longestPause)
                {
                    longestPause = pause;
                }

                lastArrival[inbox] = now;
            }

            inbox.Add(text);
        }
    }
}
