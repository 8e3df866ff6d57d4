using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.DependencyInjection;
using TrustLine.Client;
using TrustLine.Protocol.Contracts;
using TrustLine.Protocol.Crypto;
using TrustLine.Server.Tests.Crypto;

namespace TrustLine.Server.Tests.Client;

/// <summary>
/// The seeker SDK's side of the admission puzzle (PROTOCOL.md §9), against a stand-in seeker hub that asks
/// for one (the real server's puzzle policy comes with its own tests).
/// </summary>
public sealed class AdmissionTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);

    [Test]
    public async Task OpenSolvesTheServersPuzzleAndOpensAgainWhenAskedForOne()
    {
        await using var app = await StartAsync();
        var pinRoots = new[] { new byte[32] };
        await using var seeker = new SeekerClient(Address(app), new OrganisationPin(Vectors.OrgId, pinRoots));
        var progress = new List<long>();

        var place = await seeker.OpenAsync("nl", admissionProgress: new Recorder(progress.Add)).WaitAsync(Timeout);

        var hub = app.Services.GetRequiredService<PuzzleLog>();
        Assert.Multiple(() =>
        {
            Assert.That(place.Position, Is.EqualTo(1));
            Assert.That(hub.Opens, Is.EqualTo(2), "once without, once with the solution");
            Assert.That(hub.Solved, Is.True, "the solution holds for this session's id");
            Assert.That(progress, Has.Count.GreaterThanOrEqualTo(1).And.Member(0L), "the app hears that solving began");
            Assert.That(seeker.State, Is.EqualTo(SeekerState.Waiting));
        });
    }

    [Test]
    public async Task OpenTriesAgainWhileTheServersStoreIsBrieflyUnavailable()
    {
        await using var app = await StartAsync<BlipHub>();
        var clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var seeker = new SeekerClient(Address(app), new OrganisationPin(Vectors.OrgId, [new byte[32]]), options: new ClientOptions { Time = clock });

        var open = seeker.OpenAsync("nl");
        var log = app.Services.GetRequiredService<PuzzleLog>();
        var deadline = DateTime.UtcNow + Timeout;
        while (!open.IsCompleted && DateTime.UtcNow < deadline)
        {
            // The SDK waits on its clock between tries; move it on whenever it has tried again.
            await Task.Delay(20);
            clock.Advance(TimeSpan.FromSeconds(1));
        }

        var place = await open.WaitAsync(Timeout);
        Assert.Multiple(() =>
        {
            Assert.That(place.Position, Is.EqualTo(1));
            Assert.That(log.Opens, Is.EqualTo(3), "two refusals as unavailable, then admitted");
        });
    }

    private static Task<WebApplication> StartAsync() => StartAsync<PuzzleHub>();

    private static async Task<WebApplication> StartAsync<THub>()
        where THub : Hub
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Services.AddSignalR().AddMessagePackProtocol();
        builder.Services.AddSingleton<PuzzleLog>();
        var app = builder.Build();
        app.UseWebSockets();
        app.MapHub<THub>(Routes.SeekerHub, o => o.Transports = HttpTransportType.WebSockets);
        await app.StartAsync().WaitAsync(Timeout);
        return app;
    }

    private static Uri Address(WebApplication app) =>
        new(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());

    internal sealed class PuzzleLog
    {
        // d = 12: a few thousand hashes, so the first progress report (every 65536) need not come.
        public static readonly byte[] Puzzle = Convert.FromHexString("010c" + "7fffffffffffffff" + new string('4', 32) + new string('5', 32));

        public int Opens { get; set; }

        public bool Solved { get; set; }
    }

    /// <summary>A seeker hub whose store is unavailable for the first two opens.</summary>
    internal sealed class BlipHub(PuzzleLog log) : Hub, ISeekerHub
    {
        public Task<byte[]> GetPuzzle(byte[] orgId) => Task.FromResult(PuzzleLog.Puzzle);

        public Task<OpenSessionResult> OpenSession(OpenSessionRequest request) =>
            ++log.Opens <= 2
                ? throw new HubException($"{ErrorCodes.Unavailable}: The service cannot reach its store just now; try again shortly.")
                : Task.FromResult(new OpenSessionResult { ResumeToken = [1], Queue = new QueueStatus { Position = 1, Waiting = 1 } });

        public Task<ResumeSessionResult> ResumeSession(ResumeSessionRequest request) => throw new HubException("bad_request: not here");

        public Task<SendResult> Send(byte[] envelope) => throw new HubException("bad_request: not here");

        public Task Acknowledge(ulong through) => Task.CompletedTask;

        public Task Close() => Task.CompletedTask;

        public Task<OpenSessionResult> AcceptTransfer(byte[] msg1) => throw new HubException("bad_request: not here");

        public Task DeclineTransfer() => throw new HubException("bad_request: not here");
    }

    /// <summary>A seeker hub that admits only with a solved puzzle.</summary>
    internal sealed class PuzzleHub(PuzzleLog log) : Hub, ISeekerHub
    {
        public Task<byte[]> GetPuzzle(byte[] orgId) => Task.FromResult(PuzzleLog.Puzzle);

        public Task<OpenSessionResult> OpenSession(OpenSessionRequest request)
        {
            log.Opens++;
            if (request.Puzzle.Length == 0)
            {
                throw new HubException($"{ErrorCodes.PuzzleRequired}: The server is busy; solve a puzzle first.");
            }

            Assert.That(AdmissionPuzzle.TryParse(request.Puzzle, out var puzzle, out _), Is.True);
            log.Solved = puzzle!.IsSolvedBy(request.Msg1.AsSpan(19, Wire.SessionIdSize), request.Solution);
            return Task.FromResult(new OpenSessionResult { ResumeToken = new byte[32], Queue = new QueueStatus { Position = 1, Waiting = 1 } });
        }

        public Task<ResumeSessionResult> ResumeSession(ResumeSessionRequest request) => throw new HubException($"{ErrorCodes.ResumeRefused}: Not here.");

        public Task<SendResult> Send(byte[] envelope) => throw new HubException($"{ErrorCodes.WrongState}: Not here.");

        public Task Acknowledge(ulong through) => Task.CompletedTask;

        public Task Close() => Task.CompletedTask;

        public Task<OpenSessionResult> AcceptTransfer(byte[] msg1) => throw new HubException("bad_request: not here");

        public Task DeclineTransfer() => throw new HubException("bad_request: not here");
    }

    private sealed class Recorder(Action<long> report) : IProgress<long>
    {
        public void Report(long value) => report(value);
    }
}
