using System.Collections.Concurrent;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using TrustLine.Protocol.Contracts;
using TrustLine.Server.Tests.Infrastructure;
using TrustLine.Server.Tests.Sessions;

namespace TrustLine.Server.Tests.Relay;

/// <summary>A flood of sessions from many connections does not keep a real seeker from a counsellor (issue 10).</summary>
public sealed class FloodTests
{
    private const int Connections = 60;

    [Test]
    public async Task DuringAFloodOfSessionsARealSeekerGetsAPlaceAndACounsellorTakesIt()
    {
        // The puzzle's thresholds as shipped (the test world turns them off), with smaller difficulties so the
        // test's own solving is quick.
        await using var world = await World.StartAsync(StoreUnderTest.Redis, extra: new Dictionary<string, string?>
        {
            ["Admission:OpenRateThreshold"] = "1.0",
            ["Admission:QueueFillThreshold"] = "0.25",
            ["Admission:BaseDifficulty"] = "8",
            ["Admission:MaxDifficulty"] = "12",
        });
        var refusals = new ConcurrentDictionary<string, int>();
        var admitted = 0;
        using var stop = new CancellationTokenSource();
        var flooding = System.Diagnostics.Stopwatch.StartNew();

        // Half the attackers open one session each and hold it; the other half open and drop as fast as they
        // can, from fresh connections. None solves the puzzle.
        var attackers = Enumerable.Range(0, Connections).Select(i => Task.Run(async () =>
        {
            var hold = i % 2 == 0;
            HubConnection? hub = null;
            try
            {
                while (!stop.IsCancellationRequested)
                {
                    hub ??= await RawSeeker.ConnectAsync(world);
                    try
                    {
                        await RawSeeker.OpenOnAsync(hub, world);
                        Interlocked.Increment(ref admitted);
                        if (hold)
                        {
                            await Task.Delay(Timeout.Infinite, stop.Token);
                        }

                        await hub.DisposeAsync();
                        hub = null;
                    }
                    catch (HubException e)
                    {
                        refusals.AddOrUpdate(e.Message[..e.Message.IndexOf(':', StringComparison.Ordinal)], 1, (_, n) => n + 1);
                        if (e.Message.StartsWith(ErrorCodes.RateLimited, StringComparison.Ordinal))
                        {
                            await Task.Delay(100, stop.Token); // the call budget refills; no use calling into a closed door
                        }
                    }
                }
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
            }
            finally
            {
                if (hub is not null)
                {
                    await hub.DisposeAsync();
                }
            }
        })).ToList();

        await Eventually.TrueAsync(() => Task.FromResult(refusals.ContainsKey(ErrorCodes.PuzzleRequired)), TimeSpan.FromSeconds(30), "the flood meets the puzzle");
        var seeker = world.Seeker();
        var place = await seeker.OpenAsync("nl").WaitAsync(TimeSpan.FromSeconds(30));
        var responder = await world.ResponderAsync();

        // The counsellor takes from the head: held flood sessions come first (they were there earlier), dropped
        // ones are passed over. It ends each flood session it gets, as a counsellor would.
        var takes = 0;
        Guid? taken = null;
        while (taken != seeker.SessionId && takes < Connections + 10)
        {
            takes++;
            var session = await responder.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(15));
            Assert.That(session, Is.Not.Null, "the real seeker is still waiting");
            taken = session!.Id;
            if (taken != seeker.SessionId)
            {
                await session.CloseAsync().WaitAsync(TimeSpan.FromSeconds(10));
            }
        }

        await stop.CancelAsync();
        await Task.WhenAll(attackers).WaitAsync(TimeSpan.FromSeconds(30));
        // Without a puzzle, at most the threshold's worth (1 a second over a 10-second window) per window begun.
        var calmAllowance = 10 * (1 + (int)Math.Ceiling(flooding.Elapsed.TotalSeconds / 10));
        await TestContext.Out.WriteLineAsync($"flood: {admitted} admitted, refusals {string.Join(", ", refusals.Select(r => $"{r.Key} {r.Value}"))}; real seeker at place {place.Position} of {place.Waiting}, taken at take {takes}");
        Assert.Multiple(() =>
        {
            Assert.That(taken, Is.EqualTo(seeker.SessionId), "a counsellor took the real seeker");
            Assert.That(refusals.GetValueOrDefault(ErrorCodes.PuzzleRequired), Is.GreaterThan(Connections), "the flood was refused puzzle_required, counted");
            Assert.That(refusals.ContainsKey(ErrorCodes.QueueFull), Is.False, "the flood never filled the queue");
            Assert.That(admitted, Is.LessThanOrEqualTo(calmAllowance), "a burst of opens does not all pass as calm");
            Assert.That(place.Waiting, Is.LessThan(200));
        });
    }
}
