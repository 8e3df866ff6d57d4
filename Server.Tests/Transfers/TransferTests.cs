using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using TrustLine.Client;
using TrustLine.Protocol.Contracts;
using TrustLine.Protocol.Crypto;
using TrustLine.Server.Tests.Crypto;
using TrustLine.Server.Tests.Infrastructure;
using TrustLine.Server.Tests.Relay;
using TrustLine.Server.Tests.Sessions;

namespace TrustLine.Server.Tests.Transfers;

/// <summary>
/// Transfer of a chat to a colleague or a partner organisation (issue 14 item 4), through the real hubs:
/// a fresh handshake under the target's pins, the old session gone at once, the seeker ahead of later arrivals.
/// </summary>
[TestFixture(StoreUnderTest.Redis)]
[TestFixture(StoreUnderTest.Embedded)]
public sealed class TransferTests(StoreUnderTest store)
{
    [Test]
    public async Task ATransferToAColleagueRunsAFreshHandshakeAndEndsTheOldSessionForBothSides()
    {
        await using var scene = await Scene.StartAsync(store);
        var (seeker, first) = await scene.ChatAsync();
        var colleague = await scene.World.ResponderAsync(credentials: scene.World.Org.AnotherResponder());
        var oldId = seeker.SessionId;
        var oldMsg1 = (await scene.World.Store().GetAsync(oldId))!.Msg1;
        var proposals = new Inbox<TransferOffer>();
        seeker.TransferProposed += proposals.Add;
        var outcomes = new Inbox<string>();
        first.TransferOutcome += outcomes.Add;
        var firstEnded = new Inbox<string>();
        first.Ended += firstEnded.Add;

        await first.TransferAsync(scene.World.Org.OrgId).WaitAsync(TimeSpan.FromSeconds(10));
        var offer = (await proposals.WaitForAsync(1, "the proposal"))[0];
        Assert.Multiple(() =>
        {
            Assert.That(offer.SameOrganisation, Is.True);
            Assert.That(offer.Target.Name, Is.EqualTo("Test organisation"), "the name the app knows, not one from the server");
        });

        var place = await seeker.AcceptTransferAsync().WaitAsync(TimeSpan.FromSeconds(10));
        await outcomes.WaitForAsync(1, "the outcome at the first counsellor");
        await firstEnded.WaitForAsync(1, "the end of the old session at the first counsellor");
        Assert.Multiple(() =>
        {
            Assert.That(place.Position, Is.EqualTo(1));
            Assert.That(seeker.State, Is.EqualTo(SeekerState.Waiting));
            Assert.That(seeker.SessionId, Is.Not.EqualTo(oldId), "a new session id");
            Assert.That(outcomes.Items, Is.EqualTo(new[] { TransferOutcomes.Accepted }));
            Assert.That(firstEnded.Items, Is.EqualTo(new[] { EndReasons.Transferred }));
        });
        await scene.AssertGoneAsync(oldId);

        var record = await scene.World.Store().GetAsync(seeker.SessionId);
        Assert.That(record!.Msg1, Is.Not.EqualTo(oldMsg1), "a fresh msg1");
        Assert.That(record.Msg1.AsSpan(35, 32).SequenceEqual(oldMsg1.AsSpan(35, 32)), Is.False, "a fresh ephemeral key");

        var next = await colleague.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(15));
        Assert.That(next?.Id, Is.EqualTo(seeker.SessionId));
        await Scene.AssertTalkAsync(seeker, next!);
    }

    [Test]
    public async Task ATransferToAPartnerIsVerifiedUnderThePartnersPinsAndTheConversationGoesOnThere()
    {
        await using var scene = await Scene.StartAsync(store);
        var (seeker, first) = await scene.ChatAsync();
        var partner = await scene.PartnerResponderAsync();
        var oldId = seeker.SessionId;
        var proposals = new Inbox<TransferOffer>();
        seeker.TransferProposed += proposals.Add;
        var transferred = new Inbox<KnownOrganisation>();
        seeker.Transferred += transferred.Add;

        await first.TransferAsync(scene.Partner.OrgId).WaitAsync(TimeSpan.FromSeconds(10));
        var offer = (await proposals.WaitForAsync(1, "the proposal"))[0];
        Assert.Multiple(() =>
        {
            Assert.That(offer.SameOrganisation, Is.False);
            Assert.That(offer.Target.Name, Is.EqualTo("Partner"));
        });
        await seeker.AcceptTransferAsync().WaitAsync(TimeSpan.FromSeconds(10));
        await transferred.WaitForAsync(1, "the transfer");
        await scene.AssertGoneAsync(oldId);

        var next = await partner.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(15));
        Assert.That(next?.Id, Is.EqualTo(seeker.SessionId));
        await Scene.AssertTalkAsync(seeker, next!);
        Assert.Multiple(() =>
        {
            Assert.That(seeker.OrganisationId, Is.EqualTo(scene.Partner.OrgId));
            Assert.That(seeker.ResponderFingerprint, Is.EqualTo(Certificate.Fingerprint(scene.Partner.ResponderPublic)), "the partner's counsellor, verified");
        });
    }

    [TestCase(true)]
    [TestCase(false)]
    public async Task TheSeekersPseudonymGoesToAColleagueButNeverToAnotherOrganisation(bool colleague)
    {
        await using var scene = await Scene.StartAsync(store);
        using var pseudonym = Pseudonym.Create();
        var (seeker, first) = await scene.ChatAsync(pseudonym);
        var next = colleague ? await scene.World.ResponderAsync(credentials: scene.World.Org.AnotherResponder()) : await scene.PartnerResponderAsync();
        var proposals = new Inbox<TransferOffer>();
        seeker.TransferProposed += proposals.Add;

        await first.TransferAsync(colleague ? scene.World.Org.OrgId : scene.Partner.OrgId).WaitAsync(TimeSpan.FromSeconds(10));
        await proposals.WaitForAsync(1, "the proposal");
        await seeker.AcceptTransferAsync().WaitAsync(TimeSpan.FromSeconds(10));
        var session = (await next.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(15)))!;
        var hello = await session.WhenEstablished.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Multiple(() =>
        {
            Assert.That(first.Hello!.IsReturning, Is.True, "the first counsellor recognised the pseudonym");
            Assert.That(hello.IsReturning, Is.EqualTo(colleague), colleague ? "the same organisation" : "a partner must not link the visits");
            Assert.That(hello.PseudonymPublicKey is null, Is.EqualTo(!colleague));
        });
    }

    [Test]
    public async Task AnAnswerFromAKeyThatDoesNotChainToTheTargetsPinnedRootsEndsTheNewSession()
    {
        // The server lists the partner under roots the seeker's app does not pin: whoever it certified cannot pass.
        using var impostor = new TestOrganisation(orgId: null, issuerNotBefore: World.Now - 3600, issuerNotAfter: World.Now + (80 * 86400),
            responderNotBefore: World.Now - 3600, responderNotAfter: World.Now + (10 * 86400), fresh: true);
        await using var scene = await Scene.StartAsync(store, seekerPinsPartnerAs: impostor);
        var (seeker, first) = await scene.ChatAsync();
        var partner = await scene.PartnerResponderAsync();
        var proposals = new Inbox<TransferOffer>();
        seeker.TransferProposed += proposals.Add;
        var states = new Inbox<SeekerState>();
        seeker.StateChanged += states.Add;

        await first.TransferAsync(scene.Partner.OrgId).WaitAsync(TimeSpan.FromSeconds(10));
        await proposals.WaitForAsync(1, "the proposal");
        await seeker.AcceptTransferAsync().WaitAsync(TimeSpan.FromSeconds(10));
        var newId = seeker.SessionId;
        await partner.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(15));

        await Eventually.TrueAsync(() => Task.FromResult(seeker.State == SeekerState.Ended), TimeSpan.FromSeconds(15), "the seeker refuses the answer");
        Assert.That(seeker.EndReason, Does.StartWith(SessionEndReasons.HandshakeFailed + ":"));
        // The seeker's app ends the session at once and then closes it on the server: wait for that close.
        await Eventually.TrueAsync(async () => await scene.World.Store().GetAsync(newId) is null, TimeSpan.FromSeconds(15), "the server ends the new session");
        await scene.AssertGoneAsync(newId);
    }

    [Test]
    public async Task ADeclinedTransferLeavesTheChatGoingAndTellsTheCounsellor()
    {
        await using var scene = await Scene.StartAsync(store);
        var (seeker, first) = await scene.ChatAsync();
        var oldId = seeker.SessionId;
        var proposals = new Inbox<TransferOffer>();
        seeker.TransferProposed += proposals.Add;
        var outcomes = new Inbox<string>();
        first.TransferOutcome += outcomes.Add;

        await first.TransferAsync(scene.Partner.OrgId).WaitAsync(TimeSpan.FromSeconds(10));
        await proposals.WaitForAsync(1, "the proposal");
        await seeker.DeclineTransferAsync().WaitAsync(TimeSpan.FromSeconds(10));
        await outcomes.WaitForAsync(1, "the outcome");

        Assert.Multiple(() =>
        {
            Assert.That(outcomes.Items, Is.EqualTo(new[] { TransferOutcomes.Declined }));
            Assert.That(seeker.SessionId, Is.EqualTo(oldId));
            Assert.That(seeker.PendingTransfer, Is.Null);
        });
        await Scene.AssertTalkAsync(seeker, first, round: 2);
    }

    [Test]
    public async Task AProposalForAnOrganisationTheAppHasNoPinsForIsDeclinedWithoutAsking()
    {
        await using var scene = await Scene.StartAsync(store, seekerKnowsPartner: false);
        var (seeker, first) = await scene.ChatAsync();
        var asked = new Inbox<TransferOffer>();
        seeker.TransferProposed += asked.Add;
        var declined = new Inbox<string>();
        seeker.TransferDeclinedAutomatically += declined.Add;
        var outcomes = new Inbox<string>();
        first.TransferOutcome += outcomes.Add;

        await first.TransferAsync(scene.Partner.OrgId).WaitAsync(TimeSpan.FromSeconds(10));
        await outcomes.WaitForAsync(1, "the outcome");

        Assert.Multiple(() =>
        {
            Assert.That(declined.Items, Is.EqualTo(new[] { ErrorCodes.UnknownOrganisation }));
            Assert.That(asked.Items, Is.Empty, "nobody is asked about an organisation the app cannot verify");
            Assert.That(outcomes.Items, Is.EqualTo(new[] { TransferOutcomes.Declined }));
        });
        await Scene.AssertTalkAsync(seeker, first, round: 2);
    }

    [Test]
    public async Task AProposalTheSeekerDoesNotAnswerLapsesAndTheChatGoesOn()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var scene = await Scene.StartAsync(store, time: time);
        var (seeker, first) = await scene.ChatAsync();
        var proposals = new Inbox<TransferOffer>();
        seeker.TransferProposed += proposals.Add;
        var outcomes = new Inbox<string>();
        first.TransferOutcome += outcomes.Add;

        await first.TransferAsync(scene.Partner.OrgId).WaitAsync(TimeSpan.FromSeconds(10));
        await proposals.WaitForAsync(1, "the proposal");
        time.Advance(TimeSpan.FromSeconds(59));
        await scene.World.Reaper().SweepAsync().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.That(outcomes.Items, Is.Empty, "within the answer time");

        time.Advance(TimeSpan.FromSeconds(2));
        await scene.World.Reaper().SweepAsync().WaitAsync(TimeSpan.FromSeconds(10));
        await outcomes.WaitForAsync(1, "the lapse");
        Assert.That(outcomes.Items, Is.EqualTo(new[] { TransferOutcomes.TimedOut }));

        var late = await CodeAndSentenceAsync(seeker.AcceptTransferAsync());
        Assert.That(late.Code, Is.EqualTo(ErrorCodes.NoTransfer), late.Sentence);
        Assert.That(seeker.State, Is.EqualTo(SeekerState.Connected));
        await Scene.AssertTalkAsync(seeker, first, round: 2);
    }

    [Test]
    public async Task ATransferredSeekerStandsAheadOfLaterArrivalsAndBehindUrgentOnes()
    {
        await using var scene = await Scene.StartAsync(store);
        var seeker = scene.Seeker();
        await seeker.OpenAsync("nl").WaitAsync(TimeSpan.FromSeconds(10));
        var later = await scene.RawPartnerSeekerAsync(urgent: false);
        var urgent = await scene.RawPartnerSeekerAsync(urgent: true);
        var first = await scene.World.ResponderAsync();
        var session = (await first.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(15)))!;
        await session.WhenEstablished.WaitAsync(TimeSpan.FromSeconds(10));
        var proposals = new Inbox<TransferOffer>();
        seeker.TransferProposed += proposals.Add;

        await session.TransferAsync(scene.Partner.OrgId).WaitAsync(TimeSpan.FromSeconds(10));
        await proposals.WaitForAsync(1, "the proposal");
        var place = await seeker.AcceptTransferAsync().WaitAsync(TimeSpan.FromSeconds(10));
        var queue = await scene.World.Store().GetQueueAsync(scene.Partner.OrgId, 10);

        Assert.Multiple(() =>
        {
            Assert.That(place.Position, Is.EqualTo(2));
            Assert.That(queue.Select(q => q.Id), Is.EqualTo(new[] { urgent, seeker.SessionId, later }));
        });
    }

    [Test]
    public async Task EveryRefusalHasItsCodeAndASentenceAndHarmsNothing()
    {
        await using var scene = await Scene.StartAsync(store, extra: new Dictionary<string, string?>
        {
            ["Organisations:full:Id"] = "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f",
            ["Organisations:full:Name"] = "Full",
            ["Organisations:full:Languages:0"] = "nl",
            ["Organisations:full:QueueCapacity"] = "1",
            ["Organisations:test:Partners:1"] = "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f",
            ["Organisations:closed:Id"] = "0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e",
            ["Organisations:closed:Name"] = "Closed",
            ["Organisations:closed:Languages:0"] = "nl",
            ["Organisations:closed:Hours:TimeZone"] = "UTC",
            ["Organisations:closed:Hours:Weekly:Monday:0"] = "09:00-09:01",
            ["Organisations:closed:Hours:Holidays:0"] = DateTimeOffset.UtcNow.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture),
            ["Organisations:closed:Hours:Holidays:1"] = DateTimeOffset.UtcNow.AddDays(1).ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture),
            ["Organisations:test:Partners:2"] = "0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e",
            ["Organisations:english:Id"] = "0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d",
            ["Organisations:english:Name"] = "English only",
            ["Organisations:english:Languages:0"] = "en",
            ["Organisations:test:Partners:3"] = "0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d",
            ["Organisations:other:Id"] = "0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c",
            ["Organisations:other:Name"] = "Not a partner",
            ["Organisations:other:Languages:0"] = "nl",
        });
        var world = scene.World;
        var fullOrg = Convert.FromHexString("0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f");
        await using (var filler = await RawSeeker.ConnectAsync(world))
        {
            using var hs = SeekerHandshake.Start(new OrganisationPin(fullOrg, [world.Org.RootPublic]));
            await filler.InvokeAsync<OpenSessionResult>(SeekerHubMethods.OpenSession, new OpenSessionRequest { Msg1 = hs.Msg1.ToArray(), Language = "nl" })
                .WaitAsync(TimeSpan.FromSeconds(10));
            var (seeker, first) = await scene.ChatAsync();
            var sid = seeker.SessionId.ToByteArray(bigEndian: true);
            await using var raw = await scene.RawResponderAsync();
            var bystander = await scene.RawSeekerAsync();

            // Before any proposal.
            var refusals = new Dictionary<string, (string Code, string Sentence)>
            {
                ["not the holder"] = await CodeAndSentenceAsync(raw.InvokeAsync(ResponderHubMethods.Transfer, sid, world.Org.OrgId)),
                ["short org id"] = await CodeAndSentenceAsync(first.TransferAsync([1, 2, 3])),
                ["unknown org"] = await CodeAndSentenceAsync(first.TransferAsync(new byte[16])),
                ["configured, not a partner"] = await CodeAndSentenceAsync(first.TransferAsync(Convert.FromHexString("0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c"))),
                ["target full"] = await CodeAndSentenceAsync(first.TransferAsync(fullOrg)),
                ["target closed"] = await CodeAndSentenceAsync(first.TransferAsync(Convert.FromHexString("0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e"))),
                ["language not served"] = await CodeAndSentenceAsync(first.TransferAsync(Convert.FromHexString("0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d"))),
                ["accept without proposal"] = await CodeAndSentenceAsync(bystander.Hub.InvokeAsync<OpenSessionResult>(SeekerHubMethods.AcceptTransfer, bystander.FreshMsg1(world.Org.Pin))),
                ["decline without proposal"] = await CodeAndSentenceAsync(bystander.Hub.InvokeAsync(SeekerHubMethods.DeclineTransfer)),
            };

            // A taken session that is not answered yet cannot be transferred.
            var taken = await raw.InvokeAsync<TakenSession?>(ResponderHubMethods.TakeNext).WaitAsync(TimeSpan.FromSeconds(10));
            refusals["not answered"] = await CodeAndSentenceAsync(raw.InvokeAsync(ResponderHubMethods.Transfer, taken!.SessionId, world.Org.OrgId));

            // With a proposal pending: a second one, and msg1s that are not a fresh ClientHello for the target.
            var proposals = new Inbox<TransferOffer>();
            seeker.TransferProposed += proposals.Add;
            await first.TransferAsync(scene.Partner.OrgId).WaitAsync(TimeSpan.FromSeconds(10));
            await proposals.WaitForAsync(1, "the proposal");
            refusals["second proposal"] = await CodeAndSentenceAsync(first.TransferAsync(scene.Partner.OrgId));

            Assert.Multiple(() =>
            {
                Assert.That(refusals["not the holder"].Code, Is.EqualTo(ErrorCodes.NoSuchSession));
                Assert.That(refusals["short org id"].Code, Is.EqualTo(ErrorCodes.BadRequest));
                Assert.That(refusals["unknown org"].Code, Is.EqualTo(ErrorCodes.NotAPartner));
                Assert.That(refusals["configured, not a partner"].Code, Is.EqualTo(ErrorCodes.NotAPartner));
                Assert.That(refusals["target full"].Code, Is.EqualTo(ErrorCodes.QueueFull));
                Assert.That(refusals["target closed"].Code, Is.EqualTo(ErrorCodes.Closed));
                Assert.That(refusals["language not served"].Code, Is.EqualTo(ErrorCodes.UnknownRouting));
                Assert.That(refusals["accept without proposal"].Code, Is.EqualTo(ErrorCodes.NoTransfer));
                Assert.That(refusals["decline without proposal"].Code, Is.EqualTo(ErrorCodes.NoTransfer));
                Assert.That(refusals["not answered"].Code, Is.EqualTo(ErrorCodes.WrongState));
                Assert.That(refusals["second proposal"].Code, Is.EqualTo(ErrorCodes.WrongState));
                foreach (var (what, (_, sentence)) in refusals)
                {
                    Assert.That(sentence, Does.EndWith(".").And.Length.GreaterThan(20), what);
                }
            });

            await Scene.AssertTalkAsync(seeker, first, round: 2);
            var place = await seeker.AcceptTransferAsync().WaitAsync(TimeSpan.FromSeconds(10));
            Assert.That(place.Position, Is.EqualTo(1), "the proposal survived every refusal");
        }
    }

    [Test]
    public async Task AnAcceptCarryingAMsg1ForAnotherOrganisationOrTheOldSessionIsRefusedAndTheProposalStands()
    {
        await using var scene = await Scene.StartAsync(store);
        var world = scene.World;
        var seeker = await scene.RawSeekerAsync();
        var first = await world.ResponderAsync();
        var session = (await first.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(15)))!;
        var proposed = new TaskCompletionSource<TransferProposal>();
        seeker.Hub.On<TransferProposal>(nameof(ISeekerClient.TransferProposed), p => proposed.TrySetResult(p));
        await session.TransferAsync(scene.Partner.OrgId).WaitAsync(TimeSpan.FromSeconds(10));
        var proposal = await proposed.Task.WaitAsync(TimeSpan.FromSeconds(10));

        var wrongOrg = await CodeAndSentenceAsync(seeker.Hub.InvokeAsync<OpenSessionResult>(SeekerHubMethods.AcceptTransfer, seeker.FreshMsg1(world.Org.Pin)));
        var replayed = await CodeAndSentenceAsync(seeker.Hub.InvokeAsync<OpenSessionResult>(SeekerHubMethods.AcceptTransfer, seeker.OldMsg1WithOrg(scene.Partner.OrgId)));
        var garbage = await CodeAndSentenceAsync(seeker.Hub.InvokeAsync<OpenSessionResult>(SeekerHubMethods.AcceptTransfer, new byte[67]));
        var accepted = await seeker.Hub.InvokeAsync<OpenSessionResult>(SeekerHubMethods.AcceptTransfer, seeker.FreshMsg1(scene.Partner.Pin)).WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Multiple(() =>
        {
            Assert.That(proposal.OrgId, Is.EqualTo(scene.Partner.OrgId));
            Assert.That(proposal.AnswerWithinSeconds, Is.EqualTo(60));
            Assert.That(wrongOrg.Code, Is.EqualTo(ErrorCodes.BadMsg1), wrongOrg.Sentence);
            Assert.That(replayed.Code, Is.EqualTo(ErrorCodes.BadMsg1), replayed.Sentence);
            Assert.That(garbage.Code, Is.EqualTo(ErrorCodes.BadMsg1), garbage.Sentence);
            Assert.That(accepted.ResumeToken, Has.Length.EqualTo(32));
        });
    }

    [Test]
    public async Task AProposalIsAskedAgainWhenTheSeekerResumesWhileItRuns()
    {
        await using var scene = await Scene.StartAsync(store);
        var world = scene.World;
        var seeker = await scene.RawSeekerAsync();
        var first = await world.ResponderAsync();
        var session = (await first.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(15)))!;
        await session.TransferAsync(scene.Partner.OrgId).WaitAsync(TimeSpan.FromSeconds(10));
        await seeker.Hub.DisposeAsync();
        await Eventually.TrueAsync(async () => await world.Store().GetAsync(session.Id) is { SeekerConnection: null }, TimeSpan.FromSeconds(10), "the seeker is away");

        var again = await RawSeeker.ConnectAsync(world);
        var proposed = new TaskCompletionSource<TransferProposal>();
        again.On<TransferProposal>(nameof(ISeekerClient.TransferProposed), p => proposed.TrySetResult(p));
        await again.InvokeAsync<ResumeSessionResult>(SeekerHubMethods.ResumeSession, new ResumeSessionRequest
        {
            SessionId = session.Id.ToByteArray(bigEndian: true),
            ResumeToken = seeker.ResumeToken,
        }).WaitAsync(TimeSpan.FromSeconds(10));
        var proposal = await proposed.Task.WaitAsync(TimeSpan.FromSeconds(10));
        var accepted = await again.InvokeAsync<OpenSessionResult>(SeekerHubMethods.AcceptTransfer, seeker.FreshMsg1(scene.Partner.Pin)).WaitAsync(TimeSpan.FromSeconds(10));
        await again.DisposeAsync();

        Assert.Multiple(() =>
        {
            Assert.That(proposal.OrgId, Is.EqualTo(scene.Partner.OrgId));
            Assert.That(proposal.AnswerWithinSeconds, Is.InRange(1, 60));
            Assert.That(accepted.Queue.Position, Is.EqualTo(1));
        });
    }

    private static async Task<(string Code, string Sentence)> CodeAndSentenceAsync(Task call)
    {
        try
        {
            await call.WaitAsync(TimeSpan.FromSeconds(10));
            return ("accepted", "");
        }
        catch (Exception e) when (e is HubException or TrustLineException)
        {
            var text = e is TrustLineException t ? $"{t.Code}: {t.Message}" : e.Message;
            var colon = text.IndexOf(": ", StringComparison.Ordinal);
            return colon < 0 ? (text, "") : (text[..colon], text[(colon + 2)..]);
        }
    }
}

/// <summary>A transfer across nodes (they share state only through Redis): every message finds its party wherever it is connected.</summary>
public sealed class TransferAcrossNodesTests
{
    [Test]
    public async Task AcrossTwoNodesTheProposalAndTheOutcomeFindTheirPartyAndTheNewSessionResumesAfterADropWithNothingLogged()
    {
        await using var scene = await Scene.StartAsync(StoreUnderTest.Redis, nodes: 2);
        var seeker = scene.Seeker(node: 0);
        await seeker.OpenAsync("nl").WaitAsync(TimeSpan.FromSeconds(10));
        var first = await scene.World.ResponderAsync(node: 1);
        var session = (await first.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(15)))!;
        await session.WhenEstablished.WaitAsync(TimeSpan.FromSeconds(15));
        var oldId = seeker.SessionId;
        var proposals = new Inbox<TransferOffer>();
        seeker.TransferProposed += proposals.Add;
        var outcomes = new Inbox<string>();
        session.TransferOutcome += outcomes.Add;

        await session.TransferAsync(scene.Partner.OrgId).WaitAsync(TimeSpan.FromSeconds(10));
        await proposals.WaitForAsync(1, "the proposal, across nodes");
        await seeker.AcceptTransferAsync().WaitAsync(TimeSpan.FromSeconds(10));
        await outcomes.WaitForAsync(1, "the outcome, across nodes");
        var newId = seeker.SessionId;

        // The phone drops while waiting with the partner, and comes back on the other node with the new token.
        await seeker.SimulateNetworkLossAsync(preferServer: 1);
        await Eventually.TrueAsync(async () => await scene.World.Store().GetAsync(newId) is { SeekerConnection: not null, SeekerGoneAt: null } && seeker.State == SeekerState.Waiting,
            TimeSpan.FromSeconds(15), "the seeker is back in the partner's queue");
        var partner = await scene.PartnerResponderAsync(node: 1);
        var next = (await partner.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(15)))!;
        await Scene.AssertTalkAsync(seeker, next);
        await scene.AssertGoneAsync(oldId);

        var ids = new[] { oldId, newId }.SelectMany(id => new[] { id.ToString("N"), id.ToString() }).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(outcomes.Items, Is.EqualTo(new[] { TransferOutcomes.Accepted }));
            Assert.That(next.Id, Is.EqualTo(newId));
            Assert.That(scene.World.Logs.Entries.Where(e => ids.Any(id => e.Text.Contains(id, StringComparison.OrdinalIgnoreCase))), Is.Empty, "no log line names a session");
            Assert.That(scene.World.Logs.Entries.Count(e => e.EventId.Id == 500), Is.EqualTo(1), "the proposal is logged, in fixed words");
        });
    }
}

/// <summary>One organisation with a partner, both on the node; seekers that know the partner's name and pins.</summary>
internal sealed class Scene : IAsyncDisposable
{
    private readonly List<IAsyncDisposable> owned = [];
    private readonly TestOrganisation? seekerPin;
    private readonly bool seekerKnowsPartner;

    private readonly StoreUnderTest store;

    private Scene(World world, StoreUnderTest store, TestOrganisation partner, TestOrganisation? seekerPin, bool seekerKnowsPartner)
    {
        World = world;
        this.store = store;
        Partner = partner;
        this.seekerPin = seekerPin;
        this.seekerKnowsPartner = seekerKnowsPartner;
    }

    public World World { get; }

    public TestOrganisation Partner { get; }

    public static async Task<Scene> StartAsync(StoreUnderTest store, TimeProvider? time = null, TestOrganisation? seekerPinsPartnerAs = null,
        bool seekerKnowsPartner = true, IReadOnlyDictionary<string, string?>? extra = null, int nodes = 1)
    {
        var partner = new TestOrganisation(orgId: System.Security.Cryptography.RandomNumberGenerator.GetBytes(16), issuerNotBefore: World.Now - 3600,
            issuerNotAfter: World.Now + (80 * 86400), responderNotBefore: World.Now - 3600, responderNotAfter: World.Now + (10 * 86400), fresh: true);
        var settings = new Dictionary<string, string?>
        {
            ["Organisations:partner:Id"] = Convert.ToHexStringLower(partner.OrgId),
            ["Organisations:partner:Name"] = "Partner organisation",
            ["Organisations:partner:Languages:0"] = "nl",
            ["Organisations:partner:Roots:0"] = Convert.ToHexStringLower(partner.RootPublic),
            ["Organisations:test:Partners:0"] = Convert.ToHexStringLower(partner.OrgId),
            ["Sessions:TransferAnswerTime"] = "00:01:00",
        };
        foreach (var (key, value) in extra ?? new Dictionary<string, string?>())
        {
            settings[key] = value;
        }

        // Organisations a test adds (for refusals) borrow the partner's root: any valid key will do.
        foreach (var key in settings.Keys.Where(k => k.EndsWith(":Id", StringComparison.Ordinal)).ToList())
        {
            settings.TryAdd(key[..^":Id".Length] + ":Roots:0", Convert.ToHexStringLower(partner.RootPublic));
        }

        var world = await World.StartAsync(store, nodes: nodes, time: time, extra: settings);
        return new Scene(world, store, partner, seekerPinsPartnerAs, seekerKnowsPartner);
    }

    public SeekerClient Seeker(Pseudonym? pseudonym = null, int node = 0)
    {
        var partnerPin = seekerPin is { } impostor ? new OrganisationPin(Partner.OrgId, [impostor.RootPublic]) : Partner.Pin;
        var client = new SeekerClient(World.Nodes[node].BaseAddress, World.Org.Pin, pseudonym, new ClientOptions
        {
            FallbackServers = [.. World.Nodes.Where((_, i) => i != node).Select(n => n.BaseAddress)],
            ReconnectDelays = [TimeSpan.Zero, TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(250), TimeSpan.FromMilliseconds(500), TimeSpan.FromSeconds(1)],
        })
        {
            OrganisationName = "Test organisation",
            TransferTargets = seekerKnowsPartner ? [new KnownOrganisation("Partner", partnerPin)] : [],
        };
        owned.Add(client);
        return client;
    }

    /// <summary>A seeker in an established chat with the organisation's responder.</summary>
    public async Task<(SeekerClient Seeker, ResponderSession Session)> ChatAsync(Pseudonym? pseudonym = null)
    {
        var seeker = Seeker(pseudonym);
        await seeker.OpenAsync("nl").WaitAsync(TimeSpan.FromSeconds(10));
        var responder = await World.ResponderAsync();
        var session = (await responder.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(15)))!;
        await session.WhenEstablished.WaitAsync(TimeSpan.FromSeconds(10));
        await Eventually.TrueAsync(() => Task.FromResult(seeker.State == SeekerState.Connected), TimeSpan.FromSeconds(10), "the seeker is connected");
        return (seeker, session);
    }

    public async Task<ResponderClient> PartnerResponderAsync(int node = 0)
    {
        var client = await ResponderClient.SignInAsync(World.Nodes[node].BaseAddress, Partner.Credentials()).WaitAsync(TimeSpan.FromSeconds(15));
        owned.Add(client);
        return client;
    }

    /// <summary>A responder hub connection by hand, signed in as another counsellor of the organisation.</summary>
    public async Task<HubConnection> RawResponderAsync()
    {
        using var credentials = World.Org.AnotherResponder();
        var token = await ResponderClient.RequestTokenAsync(World.Nodes[0].BaseAddress, credentials);
        var hub = new HubConnectionBuilder()
            .WithUrl(new Uri(World.Nodes[0].BaseAddress, Routes.ResponderHub), HttpTransportType.WebSockets, o =>
            {
                o.SkipNegotiation = true;
                o.AccessTokenProvider = () => Task.FromResult<string?>(token);
            })
            .AddMessagePackProtocol()
            .Build();
        await hub.StartAsync().WaitAsync(TimeSpan.FromSeconds(10));
        return hub;
    }

    public async Task<RawTransferSeeker> RawSeekerAsync()
    {
        var hub = await RawSeeker.ConnectAsync(World);
        owned.Add(hub);
        using var handshake = SeekerHandshake.Start(World.Org.Pin);
        var msg1 = handshake.Msg1.ToArray();
        var opened = await RawSeeker.OpenOnAsync(hub, World, msg1: msg1);
        return new RawTransferSeeker(hub, msg1, opened.ResumeToken);
    }

    /// <summary>A seeker waiting in the partner's queue; returns its session id.</summary>
    public async Task<Guid> RawPartnerSeekerAsync(bool urgent)
    {
        var hub = await RawSeeker.ConnectAsync(World);
        owned.Add(hub);
        using var handshake = SeekerHandshake.Start(Partner.Pin);
        await hub.InvokeAsync<OpenSessionResult>(SeekerHubMethods.OpenSession,
            new OpenSessionRequest { Msg1 = handshake.Msg1.ToArray(), Language = "nl", Urgent = urgent }).WaitAsync(TimeSpan.FromSeconds(10));
        return handshake.SessionGuid;
    }

    /// <summary>Nothing of the session remains: no record, and in Redis no key that names it.</summary>
    public async Task AssertGoneAsync(Guid sessionId)
    {
        Assert.That(await World.Store().GetAsync(sessionId), Is.Null, "the old session's record");
        if (store == StoreUnderTest.Redis)
        {
            var sid = RedisInspection.Hex(sessionId).ToString();
            Assert.That((await RedisInspection.KeysAsync(World.Prefix)).Where(k => k.Key.Contains(sid, StringComparison.Ordinal)), Is.Empty, "keys of the old session");
        }
    }

    /// <summary>A text each way arrives decrypted.</summary>
    public static async Task AssertTalkAsync(SeekerClient seeker, ResponderSession session, int round = 1)
    {
        var atSeeker = new Inbox<string>();
        var atResponder = new Inbox<string>();
        seeker.MessageReceived += atSeeker.Add;
        session.MessageReceived += atResponder.Add;
        await Eventually.TrueAsync(() => Task.FromResult(seeker.State == SeekerState.Connected), TimeSpan.FromSeconds(15), "the seeker is connected");
        await session.WhenEstablished.WaitAsync(TimeSpan.FromSeconds(10));
        await seeker.SendTextAsync($"from the seeker {round}").WaitAsync(TimeSpan.FromSeconds(10));
        await session.SendTextAsync($"from the counsellor {round}").WaitAsync(TimeSpan.FromSeconds(10));
        var heard = (await atResponder.WaitForAsync(1, "the seeker's text"))[0];
        var read = (await atSeeker.WaitForAsync(1, "the counsellor's text"))[0];
        Assert.Multiple(() =>
        {
            Assert.That(heard, Is.EqualTo($"from the seeker {round}"));
            Assert.That(read, Is.EqualTo($"from the counsellor {round}"));
        });
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var item in Enumerable.Reverse(owned))
        {
            await item.DisposeAsync();
        }

        await World.DisposeAsync();
        Partner.Dispose();
    }
}

/// <summary>A seeker hub connection by hand, with its open session's msg1.</summary>
internal sealed class RawTransferSeeker(HubConnection hub, byte[] msg1, byte[] resumeToken)
{
    public HubConnection Hub => hub;

    public byte[] ResumeToken => resumeToken;

    public byte[] FreshMsg1(OrganisationPin pin)
    {
        using var handshake = SeekerHandshake.Start(pin);
        return handshake.Msg1.ToArray();
    }

    /// <summary>The open session's own msg1 (its session id and key) relabelled for another organisation.</summary>
    public byte[] OldMsg1WithOrg(byte[] orgId)
    {
        var copy = msg1.ToArray();
        orgId.CopyTo(copy, 3);
        return copy;
    }
}
