using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using TrustLine.Client;
using TrustLine.Protocol.Contracts;
using TrustLine.Server.Offers;
using TrustLine.Server.Storage;
using TrustLine.Server.Tests.Infrastructure;
using TrustLine.Server.Tests.Sessions;

namespace TrustLine.Server.Tests.Offers;

/// <summary>
/// Capacity, availability and offers (issue 14 item 3) through the real hubs and the .NET SDK, on a fake clock:
/// who is offered a waiting seeker, accepting, declining, lapsing, capacity, and manual takes beside offers.
/// </summary>
[TestFixture(StoreUnderTest.Redis)]
[TestFixture(StoreUnderTest.Embedded)]
public sealed class OfferTests(StoreUnderTest store)
{
    [Test]
    public async Task AnAvailableCounsellorIsOfferedTheWaitingSeekerAndAcceptingGivesTheSession()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var world = await OffersWorldAsync(time);
        var counsellor = await Counsellor.AvailableAsync(world);
        var seeker = world.Seeker();
        await seeker.OpenAsync("nl").WaitAsync(TimeSpan.FromSeconds(10));

        var offer = (await counsellor.Offers.WaitForAsync(1, "an offer"))[0];
        var session = await counsellor.Client.AcceptOfferAsync(offer.SessionId).WaitAsync(TimeSpan.FromSeconds(10));
        await session.WhenEstablished.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Multiple(() =>
        {
            Assert.That(new Guid(offer.SessionId, bigEndian: true), Is.EqualTo(seeker.SessionId));
            Assert.That(offer.Language, Is.EqualTo("nl"));
            Assert.That(offer.ExpiresInSeconds, Is.EqualTo(30));
            Assert.That(session.Id, Is.EqualTo(seeker.SessionId));
            Assert.That(counsellor.Client.PendingOffer, Is.Null);
        });
    }

    [Test]
    public async Task TheOfferGoesToTheCounsellorWithFewestChatsThenTheLongestSinceTheirLastTake()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var world = await OffersWorldAsync(time);
        var one = await Counsellor.AvailableAsync(world);
        var two = await Counsellor.AvailableAsync(world);

        await RawSeeker.OpenAsync(world);
        var first = await Counsellor.WhoIsOfferedAsync(1, one, two);
        await first.AcceptAsync();
        time.Advance(TimeSpan.FromSeconds(1));

        await RawSeeker.OpenAsync(world);
        var second = await Counsellor.WhoIsOfferedAsync(2, one, two);
        await second.AcceptAsync();
        time.Advance(TimeSpan.FromSeconds(1));

        await RawSeeker.OpenAsync(world);
        var third = await Counsellor.WhoIsOfferedAsync(3, one, two);

        Assert.Multiple(() =>
        {
            Assert.That(second, Is.Not.SameAs(first), "the one without a chat is offered the second seeker");
            Assert.That(third, Is.SameAs(first), "both hold one chat: the one whose last take is longest ago");
        });
    }

    [Test]
    public async Task ADeclinedOfferGoesToTheNextCounsellorAndNotBackToTheOneWhoDeclined()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var world = await OffersWorldAsync(time);
        var one = await Counsellor.AvailableAsync(world);
        var two = await Counsellor.AvailableAsync(world);
        var seeker = await RawSeeker.OpenAsync(world);

        var first = await Counsellor.WhoIsOfferedAsync(1, one, two);
        await first.Client.DeclineOfferAsync(seeker.Id.ToByteArray(bigEndian: true)).WaitAsync(TimeSpan.FromSeconds(10));
        var second = await Counsellor.WhoIsOfferedAsync(2, one, two);
        await second.Client.DeclineOfferAsync(seeker.Id.ToByteArray(bigEndian: true)).WaitAsync(TimeSpan.FromSeconds(10));
        time.Advance(TimeSpan.FromSeconds(1));
        var other = await RawSeeker.OpenAsync(world);
        var third = await Counsellor.WhoIsOfferedAsync(3, one, two);

        Assert.Multiple(() =>
        {
            Assert.That(second, Is.Not.SameAs(first));
            Assert.That(new Guid(second.Offers.Items[0].SessionId, bigEndian: true), Is.EqualTo(seeker.Id));
            Assert.That(new Guid(third.Offers.Items[^1].SessionId, bigEndian: true), Is.EqualTo(other.Id), "the declined seeker is offered to neither again");
        });

        // Declined by all, it still waits, first in the queue: a manual take gets it.
        var taken = await first.Client.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.That(taken?.Id, Is.EqualTo(seeker.Id));
    }

    [Test]
    public async Task AnOfferThatRunsOutGoesToTheNextCounsellor()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var world = await OffersWorldAsync(time);
        var one = await Counsellor.AvailableAsync(world);
        var two = await Counsellor.AvailableAsync(world);
        var seeker = await RawSeeker.OpenAsync(world);
        var first = await Counsellor.WhoIsOfferedAsync(1, one, two);

        time.Advance(TimeSpan.FromSeconds(29));
        await world.Offers().SweepAsync();
        Assert.That(first.Withdrawn.Items, Is.Empty, "still within its time");

        time.Advance(TimeSpan.FromSeconds(2) + OfferRouter.LapseGrace);
        await world.Offers().SweepAsync();

        var withdrawn = await first.Withdrawn.WaitForAsync(1, "the lapse");
        var second = await Counsellor.WhoIsOfferedAsync(2, one, two);
        Assert.Multiple(() =>
        {
            Assert.That(withdrawn[0], Is.EqualTo((seeker.Id, OfferEndReasons.Lapsed)));
            Assert.That(second, Is.Not.SameAs(first));
            Assert.That(new Guid(second.Offers.Items[0].SessionId, bigEndian: true), Is.EqualTo(seeker.Id));
            Assert.That(first.Client.Available, Is.True, "one lapse is not enough to be set away");
        });
    }

    [Test]
    public async Task ACounsellorWhoLetsOffersRunOutTwiceInARowIsSetAwayAndTold()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var world = await OffersWorldAsync(time, lapses: 2);
        var counsellor = await Counsellor.AvailableAsync(world);

        for (var i = 1; i <= 2; i++)
        {
            await RawSeeker.OpenAsync(world);
            await counsellor.Offers.WaitForAsync(i, $"offer {i}");
            time.Advance(TimeSpan.FromSeconds(31) + OfferRouter.LapseGrace);
            await world.Offers().SweepAsync();
            await counsellor.Withdrawn.WaitForAsync(i, $"lapse {i}");
        }

        var told = await counsellor.Status.WaitForAsync(2, "the notice"); // the first is its own SetAvailability
        Assert.Multiple(() =>
        {
            Assert.That(told[1].Available, Is.False);
            Assert.That(told[1].Reason, Is.EqualTo(OfferEndReasons.Lapsed));
            Assert.That(counsellor.Client.Available, Is.False);
        });

        // Away, it is offered nothing more, but a colleague who becomes available is offered both seekers in turn.
        var colleague = await Counsellor.AvailableAsync(world);
        await colleague.Offers.WaitForAsync(1, "the colleague's offer");
        Assert.That(counsellor.Offers.Items, Has.Count.EqualTo(2));
    }

    [Test]
    public async Task AnAwayCounsellorIsOfferedNothingButMayStillTakeByHand()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var world = await OffersWorldAsync(time);
        var away = await Counsellor.ConnectAsync(world);
        var status = await away.Client.SetAvailabilityAsync(false).WaitAsync(TimeSpan.FromSeconds(10));
        var available = await Counsellor.AvailableAsync(world);
        var seeker = await RawSeeker.OpenAsync(world);

        await available.Offers.WaitForAsync(1, "the available counsellor's offer");
        await available.Client.DeclineOfferAsync(seeker.Id.ToByteArray(bigEndian: true)).WaitAsync(TimeSpan.FromSeconds(10));
        var taken = await away.Client.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Multiple(() =>
        {
            Assert.That(status, Is.EqualTo(new ResponderStatus { Available = false, OpenChats = 0, Capacity = 2, OffersOn = true }).Using<ResponderStatus>(Same));
            Assert.That(away.Offers.Items, Is.Empty);
            Assert.That(taken?.Id, Is.EqualTo(seeker.Id));
        });
    }

    [Test]
    public async Task ASessionOfferedToOneCounsellorIsNotTakenByAnother()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var world = await OffersWorldAsync(time);
        var available = await Counsellor.AvailableAsync(world);
        var other = await Counsellor.ConnectAsync(world);
        var seeker = await RawSeeker.OpenAsync(world);
        await available.Offers.WaitForAsync(1, "the offer");

        var next = await other.Client.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(10));
        var named = await CodeOfAsync(other.Client.TakeAsync(seeker.Id.ToByteArray(bigEndian: true)));
        var session = await available.AcceptAsync();

        Assert.Multiple(() =>
        {
            Assert.That(next, Is.Null, "take-next passes over an offered session");
            Assert.That(named, Is.EqualTo(ErrorCodes.NotAvailable));
            Assert.That(session.Id, Is.EqualTo(seeker.Id));
        });
    }

    [Test]
    public async Task CapacityRefusesATakeAndAChatThatEndsFreesAPlaceForTheNextOffer()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var world = await OffersWorldAsync(time, capacity: 1);
        var counsellor = await Counsellor.AvailableAsync(world);
        var first = await RawSeeker.OpenAsync(world);
        await counsellor.Offers.WaitForAsync(1, "the first offer");
        await counsellor.AcceptAsync();
        var second = await RawSeeker.OpenAsync(world);

        var code = await CodeOfAsync(counsellor.Client.TakeNextAsync());
        Assert.That(code, Is.EqualTo(ErrorCodes.AtCapacity));
        Assert.That(counsellor.Offers.Items, Has.Count.EqualTo(1), "at capacity: no offer");

        await first.CloseAsync();
        var offers = await counsellor.Offers.WaitForAsync(2, "the offer once a place is free");
        Assert.That(new Guid(offers[1].SessionId, bigEndian: true), Is.EqualTo(second.Id));
    }

    [Test]
    public async Task EveryBadAnswerToAnOfferIsRefusedWithACode()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var world = await OffersWorldAsync(time);
        var counsellor = await Counsellor.AvailableAsync(world);
        var colleague = await Counsellor.ConnectAsync(world);
        var seeker = await RawSeeker.OpenAsync(world);
        await counsellor.Offers.WaitForAsync(1, "the offer");
        var id = seeker.Id.ToByteArray(bigEndian: true);

        var codes = new Dictionary<string, string?>
        {
            ["accept, short id"] = await CodeOfAsync(counsellor.Client.AcceptOfferAsync([1, 2, 3])),
            ["decline, short id"] = await CodeOfAsync(counsellor.Client.DeclineOfferAsync([])),
            ["accept, not offered"] = await CodeOfAsync(counsellor.Client.AcceptOfferAsync(Guid.NewGuid().ToByteArray())),
            ["accept, offered to a colleague"] = await CodeOfAsync(colleague.Client.AcceptOfferAsync(id)),
            ["decline, offered to a colleague"] = await CodeOfAsync(colleague.Client.DeclineOfferAsync(id)),
        };
        time.Advance(TimeSpan.FromSeconds(30));
        codes["accept, too late"] = await CodeOfAsync(counsellor.Client.AcceptOfferAsync(id));
        codes["decline, too late"] = await CodeOfAsync(counsellor.Client.DeclineOfferAsync(id));

        Assert.That(codes, Is.EqualTo(new Dictionary<string, string?>
        {
            ["accept, short id"] = ErrorCodes.BadRequest,
            ["decline, short id"] = ErrorCodes.BadRequest,
            ["accept, not offered"] = ErrorCodes.NoOffer,
            ["accept, offered to a colleague"] = ErrorCodes.NoOffer,
            ["decline, offered to a colleague"] = ErrorCodes.NoOffer,
            ["accept, too late"] = ErrorCodes.OfferExpired,
            ["decline, too late"] = ErrorCodes.OfferExpired,
        }));

        // The refusals harmed nothing: the lapse is counted and the session still waits for a take.
        time.Advance(OfferRouter.LapseGrace + TimeSpan.FromSeconds(1));
        await world.Offers().SweepAsync();
        await counsellor.Withdrawn.WaitForAsync(1, "the lapse");
        var taken = await colleague.Client.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.That(taken?.Id, Is.EqualTo(seeker.Id));
    }

    [Test]
    public async Task WithOffersOffNothingIsOfferedTakesHaveNoLimitAndAnAcceptIsRefused()
    {
        await using var world = await World.StartAsync(store);
        var counsellor = await Counsellor.ConnectAsync(world);
        var status = await counsellor.Client.SetAvailabilityAsync(true).WaitAsync(TimeSpan.FromSeconds(10));
        var seekers = new List<RawSeeker>();
        for (var i = 0; i < 3; i++)
        {
            seekers.Add(await RawSeeker.OpenAsync(world));
        }

        for (var i = 0; i < 3; i++)
        {
            Assert.That(await counsellor.Client.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(10)), Is.Not.Null, $"take {i + 1}");
        }

        var code = await CodeOfAsync(counsellor.Client.AcceptOfferAsync(seekers[0].Id.ToByteArray(bigEndian: true)));
        Assert.Multiple(() =>
        {
            Assert.That(status.OffersOn, Is.False);
            Assert.That(status.Capacity, Is.Zero);
            Assert.That(counsellor.Offers.Items, Is.Empty);
            Assert.That(code, Is.EqualTo(ErrorCodes.NoOffer));
        });
    }

    [Test]
    public async Task ManyOffersAtOnceOnEveryNodeNeverOfferOneSessionToTwoCounsellors()
    {
        var nodes = store == StoreUnderTest.Redis ? 2 : 1;
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var world = await OffersWorldAsync(time, capacity: 10, nodes: nodes);
        var counsellors = new List<Counsellor>();
        for (var i = 0; i < 6; i++)
        {
            counsellors.Add(await Counsellor.AvailableAsync(world, i % nodes));
        }

        var hand = await Counsellor.ConnectAsync(world, nodes - 1);
        var opens = Enumerable.Range(0, 10).Select(async i =>
        {
            var hub = await RawSeeker.ConnectAsync(world, i % nodes);
            return await RawSeeker.OpenOnAsync(hub, world);
        });
        await Task.WhenAll(opens);

        await Eventually.TrueAsync(() => Task.FromResult(counsellors.Sum(c => c.Offers.Items.Count) >= 6), TimeSpan.FromSeconds(15), "six offers");
        var byHand = new List<Guid>();
        while (await hand.Client.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(10)) is { } taken)
        {
            byHand.Add(taken.Id);
        }

        var perCounsellor = counsellors.Select(c => c.Offers.Items.Count).ToList();
        var offered = counsellors.SelectMany(c => c.Offers.Items).Select(o => new Guid(o.SessionId, bigEndian: true)).ToList();
        var accepted = await Task.WhenAll(counsellors.Select(c => c.AcceptAsync()));

        Assert.Multiple(() =>
        {
            Assert.That(perCounsellor, Is.All.EqualTo(1), "one offer at a time per counsellor");
            Assert.That(offered, Is.Unique, "no session offered to two");
            Assert.That(byHand, Has.Count.EqualTo(4), "take-next got the sessions not offered");
            Assert.That(byHand.Intersect(offered), Is.Empty, "and none offered");
            Assert.That(accepted.Select(s => s.Id), Is.EquivalentTo(offered), "every accept got its session");
        });
    }

    [Test]
    public async Task TakeNextRacingOffersOnEveryNodeNeverTakesAnOfferedSession()
    {
        var nodes = store == StoreUnderTest.Redis ? 2 : 1;
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var world = await OffersWorldAsync(time, capacity: 20, nodes: nodes);
        var counsellors = new List<Counsellor>();
        for (var i = 0; i < 4; i++)
        {
            counsellors.Add(await Counsellor.AvailableAsync(world, i % nodes));
        }

        var hands = new[] { await Counsellor.ConnectAsync(world, 0), await Counsellor.ConnectAsync(world, nodes - 1) };
        var byHand = new System.Collections.Concurrent.ConcurrentBag<Guid>();
        var opens = Task.WhenAll(Enumerable.Range(0, 12).Select(async i => await RawSeeker.OpenOnAsync(await RawSeeker.ConnectAsync(world, i % nodes), world)));
        var takes = Task.WhenAll(hands.Select(async hand =>
        {
            for (var i = 0; i < 6; i++)
            {
                if (await hand.Client.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(10)) is { } taken)
                {
                    byHand.Add(taken.Id);
                }
            }
        }));
        await Task.WhenAll(opens, takes);

        var expected = Math.Min(counsellors.Count, 12 - byHand.Count);
        await Eventually.TrueAsync(() => Task.FromResult(counsellors.Sum(c => c.Offers.Items.Count) >= expected), TimeSpan.FromSeconds(15), $"{expected} offers");
        // Before the accepts: each accept frees its counsellor for the next offer.
        var perCounsellor = counsellors.Select(c => c.Offers.Items.Count).ToList();
        var offered = counsellors.SelectMany(c => c.Offers.Items).Select(o => new Guid(o.SessionId, bigEndian: true)).ToList();
        var accepted = await Task.WhenAll(counsellors.Where(c => c.Client.PendingOffer is not null).Select(c => c.AcceptAsync()));

        Assert.Multiple(() =>
        {
            Assert.That(offered, Is.Unique);
            Assert.That(byHand, Is.Unique);
            Assert.That(byHand.Intersect(offered), Is.Empty, "no session offered to a counsellor was taken by hand");
            Assert.That(accepted.Select(s => s.Id), Is.EquivalentTo(offered), "every offer could be accepted");
            Assert.That(perCounsellor, Is.All.LessThanOrEqualTo(1), "one offer at a time per counsellor");
        });
    }

    [Test]
    public async Task NothingOfPresenceOrOffersRemainsOnceTheChatsEndAndTheCounsellorsLeave()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var world = await OffersWorldAsync(time);
        var one = await Counsellor.AvailableAsync(world);
        var two = await Counsellor.AvailableAsync(world);
        var seeker = await RawSeeker.OpenAsync(world);
        var first = await Counsellor.WhoIsOfferedAsync(1, one, two);
        await first.Client.DeclineOfferAsync(seeker.Id.ToByteArray(bigEndian: true)).WaitAsync(TimeSpan.FromSeconds(10));
        var second = await Counsellor.WhoIsOfferedAsync(2, one, two);
        var session = await second.AcceptAsync();
        time.Advance(TimeSpan.FromSeconds(1));
        var leaving = await RawSeeker.OpenAsync(world);
        await first.Offers.WaitForAsync(2, "the second seeker's offer");
        Assert.That(await Remaining(world), Is.Not.Zero, "presence and offers are kept while they matter (so the check can fail)");

        await leaving.CloseAsync();
        var withdrawn = await first.Withdrawn.WaitForAsync(1, "the withdrawal");
        await session.CloseAsync().WaitAsync(TimeSpan.FromSeconds(10));
        await one.Client.DisposeAsync();
        await two.Client.DisposeAsync();

        Assert.That(withdrawn[0], Is.EqualTo((leaving.Id, OfferEndReasons.Gone)));
        await Eventually.TrueAsync(async () => await Remaining(world) == 0, TimeSpan.FromSeconds(10), "nothing of presence or offers remains");
    }

    /// <summary>How many presence and offer entries the store holds (Redis: keys of the organisation's offer slot).</summary>
    private async Task<int> Remaining(World world)
    {
        if (store == StoreUnderTest.Embedded)
        {
            return ((EmbeddedOfferStore)world.Nodes[0].Services.GetRequiredService<IOfferStore>()).CountEntries();
        }

        var keys = new RedisKeys(world.Prefix);
        var db = TestRedis.Connection.GetDatabase();
        return (await db.KeyExistsAsync(keys.Presence(world.Org.OrgId)) ? 1 : 0) + (await db.KeyExistsAsync(keys.Offers(world.Org.OrgId)) ? 1 : 0);
    }

    private static bool Same(ResponderStatus a, ResponderStatus b) =>
        (a.Available, a.OpenChats, a.Capacity, a.OffersOn, a.Reason) == (b.Available, b.OpenChats, b.Capacity, b.OffersOn, b.Reason);

    private Task<World> OffersWorldAsync(FakeTimeProvider time, int? capacity = null, int lapses = 3, int nodes = 1)
    {
        var extra = new Dictionary<string, string?>
        {
            ["Organisations:test:Offers"] = "true",
            ["Organisations:test:OfferTimeout"] = "00:00:30",
            ["Organisations:test:LapsesBeforeAway"] = lapses.ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        if (capacity is { } c)
        {
            extra["Organisations:test:Capacity"] = c.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        return World.StartAsync(store, nodes, extra, time: time);
    }

    internal static async Task<string?> CodeOfAsync(Task call)
    {
        try
        {
            await call.WaitAsync(TimeSpan.FromSeconds(10));
            return null;
        }
        catch (TrustLineException e)
        {
            return e.Code;
        }
    }
}

/// <summary>A counsellor's SDK client and what it has been told.</summary>
internal sealed class Counsellor
{
    private Counsellor(ResponderClient client)
    {
        Client = client;
        client.Offered += Offers.Add;
        client.OfferWithdrawn += (id, reason) => Withdrawn.Add((id, reason));
        client.AvailabilityChanged += Status.Add;
    }

    public ResponderClient Client { get; }

    public Inbox<Offer> Offers { get; } = new();

    public Inbox<(Guid, string)> Withdrawn { get; } = new();

    public Inbox<ResponderStatus> Status { get; } = new();

    public static async Task<Counsellor> ConnectAsync(World world, int node = 0) => new(await world.ResponderAsync(node));

    public static async Task<Counsellor> AvailableAsync(World world, int node = 0)
    {
        var counsellor = await ConnectAsync(world, node);
        await counsellor.Client.SetAvailabilityAsync(true).WaitAsync(TimeSpan.FromSeconds(10));
        return counsellor;
    }

    /// <summary>Waits until the counsellors have been offered <paramref name="total"/> sessions in all; returns who got the last.</summary>
    public static async Task<Counsellor> WhoIsOfferedAsync(int total, params Counsellor[] counsellors)
    {
        await Eventually.TrueAsync(() => Task.FromResult(counsellors.Sum(c => c.Offers.Items.Count) >= total), TimeSpan.FromSeconds(15), $"offer {total}");
        Assert.That(counsellors.Sum(c => c.Offers.Items.Count), Is.EqualTo(total), "one offer per seeker");
        return counsellors.Single(c => c.Client.PendingOffer is not null);
    }

    public Task<ResponderSession> AcceptAsync() =>
        Client.AcceptOfferAsync(Client.PendingOffer?.SessionId ?? throw new AssertionException("no offer is pending")).WaitAsync(TimeSpan.FromSeconds(10));
}

internal static class OfferWorld
{
    public static OfferRouter Offers(this World world) => world.Nodes[0].Services.GetRequiredService<OfferRouter>();
}
