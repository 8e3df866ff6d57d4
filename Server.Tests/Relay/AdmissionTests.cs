using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using TrustLine.Protocol.Contracts;
using TrustLine.Protocol.Crypto;
using TrustLine.Server.Tests.Infrastructure;

namespace TrustLine.Server.Tests.Relay;

/// <summary>The admission puzzle (PROTOCOL.md §9) as the server asks for and checks it.</summary>
[TestFixture(StoreUnderTest.Redis)]
[TestFixture(StoreUnderTest.Embedded)]
public sealed class AdmissionTests(StoreUnderTest store)
{
    // Any open at all puts the organisation under pressure; small difficulties keep the tests fast.
    private static readonly Dictionary<string, string?> Busy = new()
    {
        ["Admission:OpenRateThreshold"] = "0.01",
        ["Admission:BaseDifficulty"] = "4",
        ["Admission:MaxDifficulty"] = "6",
        ["Organisations:test:QueueCapacity"] = "1000",
    };

    [Test]
    public async Task CalmOrganisationOpensWithoutAPuzzle()
    {
        await using var world = await World.StartAsync(store);
        await using var hub = await RawHub.SeekerAsync(world.Nodes[0]);

        Assert.That(Difficulty(await hub.InvokeAsync<byte[]>(SeekerHubMethods.GetPuzzle, world.Org.OrgId)), Is.Zero);
        var result = await OpenAsync(hub, world, Msg1(world), [], []);
        Assert.That(result.Queue.Position, Is.EqualTo(1));
    }

    [Test]
    public async Task UnderPressureAnOpenWithoutAPuzzleIsRefusedAndASolvedOneIsAdmitted()
    {
        await using var world = await World.StartAsync(store, extra: Busy);
        await PressureAsync(world);
        await using var hub = await RawHub.SeekerAsync(world.Nodes[0]);
        var msg1 = Msg1(world);

        Assert.That(await RawHub.CodeOfAsync(OpenAsync(hub, world, msg1, [], [])), Is.EqualTo(ErrorCodes.PuzzleRequired));
        var puzzle = await hub.InvokeAsync<byte[]>(SeekerHubMethods.GetPuzzle, world.Org.OrgId);
        Assert.That(Difficulty(puzzle), Is.InRange(4, 6));
        var result = await OpenAsync(hub, world, msg1, puzzle, Solve(puzzle, msg1));
        Assert.That(result.ResumeToken, Is.Not.Empty);
    }

    [Test]
    public async Task APuzzleOpensOneSessionOnly()
    {
        await using var world = await World.StartAsync(store, extra: Busy);
        await PressureAsync(world);
        await using var first = await RawHub.SeekerAsync(world.Nodes[0]);
        await using var second = await RawHub.SeekerAsync(world.Nodes[0]);
        var puzzle = await first.InvokeAsync<byte[]>(SeekerHubMethods.GetPuzzle, world.Org.OrgId);
        var msg1 = Msg1(world);
        var other = Msg1(world);
        await OpenAsync(first, world, msg1, puzzle, Solve(puzzle, msg1));

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(await RawHub.CodeOfAsync(OpenAsync(second, world, other, puzzle, Solve(puzzle, other))), Is.EqualTo(ErrorCodes.BadPuzzle), "the nonce is spent");
            Assert.That(await RawHub.CodeOfAsync(OpenAsync(second, world, other, puzzle, Solve(puzzle, msg1))), Is.EqualTo(ErrorCodes.BadPuzzle), "a solution is bound to its sid");
        });
    }

    [Test]
    public async Task TamperedForeignOrUnsolvedPuzzlesAreRefused()
    {
        var extra = new Dictionary<string, string?>(Busy)
        {
            ["Organisations:other:Id"] = "22222222222222222222222222222222",
            ["Organisations:other:Name"] = "Other",
            ["Organisations:other:Languages:0"] = "nl",
            ["Organisations:other:Roots:0"] = "1111111111111111111111111111111111111111111111111111111111111111",
        };
        await using var world = await World.StartAsync(store, extra: extra);
        await PressureAsync(world);
        await using var hub = await RawHub.SeekerAsync(world.Nodes[0]);
        var msg1 = Msg1(world);
        var puzzle = await hub.InvokeAsync<byte[]>(SeekerHubMethods.GetPuzzle, world.Org.OrgId);
        var easier = (byte[])puzzle.Clone();
        easier[1] = 0;
        var foreign = await hub.InvokeAsync<byte[]>(SeekerHubMethods.GetPuzzle, Convert.FromHexString("22222222222222222222222222222222"));
        var unsolved = Solve(puzzle, msg1);
        unsolved[7] ^= 1;
        while (Solves(puzzle, msg1, unsolved))
        {
            unsolved[6]++;
        }

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(await RawHub.CodeOfAsync(OpenAsync(hub, world, msg1, easier, new byte[8])), Is.EqualTo(ErrorCodes.BadPuzzle), "difficulty lowered");
            Assert.That(await RawHub.CodeOfAsync(OpenAsync(hub, world, msg1, foreign, Solve(foreign, msg1))), Is.EqualTo(ErrorCodes.BadPuzzle), "another organisation's puzzle");
            Assert.That(await RawHub.CodeOfAsync(OpenAsync(hub, world, msg1, puzzle, unsolved)), Is.EqualTo(ErrorCodes.BadPuzzle), "not a solution");
            Assert.That(await RawHub.CodeOfAsync(OpenAsync(hub, world, msg1, puzzle[..41], new byte[8])), Is.EqualTo(ErrorCodes.BadPuzzle), "truncated");
            Assert.That(await RawHub.CodeOfAsync(OpenAsync(hub, world, msg1, puzzle, new byte[7])), Is.EqualTo(ErrorCodes.BadPuzzle), "short solution");
            Assert.That(await RawHub.CodeOfAsync(hub.InvokeAsync<byte[]>(SeekerHubMethods.GetPuzzle, new byte[3])), Is.EqualTo(ErrorCodes.BadRequest));
            Assert.That(await RawHub.CodeOfAsync(hub.InvokeAsync<byte[]>(SeekerHubMethods.GetPuzzle, new byte[16])), Is.EqualTo(ErrorCodes.UnknownOrganisation));
        });
        // None of those refusals spent the puzzle or harmed the connection.
        Assert.That((await OpenAsync(hub, world, msg1, puzzle, Solve(puzzle, msg1))).ResumeToken, Is.Not.Empty);
    }

    [Test]
    public async Task AnExpiredPuzzleIsRefusedAndPressureFallsBackWhenItEnds()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var world = await World.StartAsync(store, extra: Busy, services: s => s.AddSingleton<TimeProvider>(clock));
        await PressureAsync(world);
        await using var hub = await RawHub.SeekerAsync(world.Nodes[0]);
        var msg1 = Msg1(world);
        var puzzle = await hub.InvokeAsync<byte[]>(SeekerHubMethods.GetPuzzle, world.Org.OrgId);
        Assert.That(Difficulty(puzzle), Is.GreaterThan(0));

        clock.Advance(TimeSpan.FromMinutes(3));

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(await RawHub.CodeOfAsync(OpenAsync(hub, world, msg1, puzzle, Solve(puzzle, msg1))), Is.EqualTo(ErrorCodes.BadPuzzle));
            Assert.That(Difficulty(await hub.InvokeAsync<byte[]>(SeekerHubMethods.GetPuzzle, world.Org.OrgId)), Is.Zero, "calm again after the window");
        });
        Assert.That((await OpenAsync(hub, world, msg1, [], [])).ResumeToken, Is.Not.Empty);
    }

    [Test]
    public async Task ABurstOfConcurrentOpensOnACalmLineLetsOnlyTheThresholdsWorthInWithoutAPuzzle()
    {
        // 1 open a second over a 10-second window: 10 may come in calm, however many arrive at once.
        await using var world = await World.StartAsync(store, extra: new Dictionary<string, string?> { ["Admission:OpenRateThreshold"] = "1.0" });
        var hubs = await Task.WhenAll(Enumerable.Range(0, 40).Select(_ => RawHub.SeekerAsync(world.Nodes[0])));
        try
        {
            var codes = await Task.WhenAll(hubs.Select(hub => RawHub.CodeOfAsync(OpenAsync(hub, world, Msg1(world), [], []))));

            Assert.Multiple(() =>
            {
                Assert.That(codes.Count(c => c == "accepted"), Is.EqualTo(10));
                Assert.That(codes.Count(c => c == ErrorCodes.PuzzleRequired), Is.EqualTo(30));
            });
        }
        finally
        {
            await Task.WhenAll(hubs.Select(h => h.DisposeAsync().AsTask()));
        }
    }

    [Test]
    public async Task APuzzleFetchedWhileCalmDoesNotOpenASessionOnceTheLineIsBusy()
    {
        await using var world = await World.StartAsync(store, extra: new Dictionary<string, string?>
        {
            ["Admission:OpenRateThreshold"] = "0.01",
            ["Admission:BaseDifficulty"] = "8",
            ["Admission:MaxDifficulty"] = "10",
        });
        await using var hub = await RawHub.SeekerAsync(world.Nodes[0]);
        var banked = await hub.InvokeAsync<byte[]>(SeekerHubMethods.GetPuzzle, world.Org.OrgId);
        Assert.That(Difficulty(banked), Is.Zero, "calm: a puzzle of difficulty 0");
        await PressureAsync(world);
        var msg1 = Msg1(world);

        Assert.That(await RawHub.CodeOfAsync(OpenAsync(hub, world, msg1, banked, Solve(banked, msg1))), Is.EqualTo(ErrorCodes.PuzzleRequired));
        var fresh = await hub.InvokeAsync<byte[]>(SeekerHubMethods.GetPuzzle, world.Org.OrgId);
        Assert.That((await OpenAsync(hub, world, msg1, fresh, Solve(fresh, msg1))).ResumeToken, Is.Not.Empty, "a puzzle of the difficulty now opens it");
    }

    [Test]
    public async Task TheSeekerSdkSolvesThePuzzleWhenAskedAndIsAnswered()
    {
        await using var world = await World.StartAsync(store, extra: Busy);
        await PressureAsync(world);
        var seeker = world.Seeker();
        var progress = new List<long>();

        await seeker.OpenAsync("nl", admissionProgress: new SyncProgress(progress.Add)).WaitAsync(TimeSpan.FromSeconds(20));
        var responder = await world.ResponderAsync();
        var session = await responder.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(15));

        Assert.Multiple(() =>
        {
            Assert.That(progress, Does.Contain(0L), "the SDK reported that it started solving");
            Assert.That(session, Is.Not.Null);
        });
    }

    private static async Task PressureAsync(World world)
    {
        await using var hub = await RawHub.SeekerAsync(world.Nodes[0]);
        await OpenAsync(hub, world, Msg1(world), [], []);
    }

    private static int Difficulty(byte[] puzzle) => puzzle[1];

    private static byte[] Msg1(World world)
    {
        using var handshake = SeekerHandshake.Start(world.Org.Pin);
        return handshake.Msg1.ToArray();
    }

    private static byte[] Solve(byte[] puzzle, byte[] msg1)
    {
        Assert.That(AdmissionPuzzle.TryParse(puzzle, out var parsed, out _), Is.True);
        return parsed!.Solve(msg1.AsSpan(19, 16));
    }

    private static bool Solves(byte[] puzzle, byte[] msg1, byte[] solution) =>
        AdmissionPuzzle.TryParse(puzzle, out var parsed, out _) && parsed.IsSolvedBy(msg1.AsSpan(19, 16), solution);

    private static Task<OpenSessionResult> OpenAsync(HubConnection hub, World world, byte[] msg1, byte[] puzzle, byte[] solution) =>
        hub.InvokeAsync<OpenSessionResult>(SeekerHubMethods.OpenSession,
            new OpenSessionRequest { Msg1 = msg1, Language = "nl", Puzzle = puzzle, Solution = solution }).WaitAsync(TimeSpan.FromSeconds(10));

    private sealed class SyncProgress(Action<long> report) : IProgress<long>
    {
        public void Report(long value)
        {
            lock (this)
            {
                report(value);
            }
        }
    }
}
