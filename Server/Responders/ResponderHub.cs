using Mediator;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.SignalR;
using TrustLine.Protocol.Contracts;
using TrustLine.Server.Offers;
using TrustLine.Server.Relay;
using TrustLine.Server.Sessions;
using TrustLine.Server.Storage;

namespace TrustLine.Server.Responders;

/// <summary>The responder hub: only connections with a valid responder token get in.</summary>
[Authorize(AuthenticationSchemes = ResponderToken.SchemeName)]
public sealed class ResponderHub(IMediator mediator, SendEnvelopeHandler sends, ResponderGuard guard, OfferRouter offers, ThisNode node) : Hub<IResponderClient>, IResponderHub
{
    public override async Task OnConnectedAsync()
    {
        var grant = ResponderToken.GrantOf(Context.User) ?? throw new HubException($"{ErrorCodes.Denied}: This connection has no responder grant.");
        ConnectionState.Attach(Context, node, Party.Responder, grant);
        guard.Add(Context, grant);
        await Groups.AddToGroupAsync(Context.ConnectionId, QueueNotifier.GroupOf(grant.OrgId));
    }

    public override async Task OnDisconnectedAsync(Exception? exception)
    {
        guard.Remove(Context);
        await mediator.Send(new ConnectionLostCommand(ConnectionState.Of(Context)));
        await offers.ConnectionClosedAsync(ConnectionState.Of(Context));
    }

    public async Task<QueueEntry[]> GetQueue() =>
        (await mediator.Send(new GetQueueQuery(ConnectionState.Of(Context)), Context.ConnectionAborted)).ValueOrRefuse();

    public async Task<TakenSession?> TakeNext() =>
        (await mediator.Send(new TakeSessionCommand(ConnectionState.Of(Context), null), Context.ConnectionAborted)).ValueOrRefuse();

    public async Task<TakenSession?> Take(byte[] sessionId) =>
        (await mediator.Send(new TakeSessionCommand(ConnectionState.Of(Context), sessionId ?? []), Context.ConnectionAborted)).ValueOrRefuse();

    public async Task Answer(byte[] sessionId, byte[] msg2) =>
        (await mediator.Send(new AnswerSessionCommand(ConnectionState.Of(Context), sessionId, msg2), Context.ConnectionAborted)).ValueOrRefuse();

    /// <summary>Not through the mediator: the hot path, one async layer to the buffer write (see <see cref="SendEnvelopeHandler"/>).</summary>
    public Task<SendResult> Send(byte[] envelope) => sends.SendAsync(ConnectionState.Of(Context), envelope);

    public async Task Acknowledge(byte[] sessionId, ulong through) =>
        (await mediator.Send(new AcknowledgeCommand(ConnectionState.Of(Context), sessionId, through), Context.ConnectionAborted)).ValueOrRefuse();

    public async Task<ResumeSessionResult> ResumeSession(ResumeSessionRequest request) =>
        (await mediator.Send(new ResumeSessionCommand(ConnectionState.Of(Context), request), Context.ConnectionAborted)).ValueOrRefuse();

    public async Task Close(byte[] sessionId) =>
        (await mediator.Send(new CloseSessionCommand(ConnectionState.Of(Context), sessionId), Context.ConnectionAborted)).ValueOrRefuse();

    public async Task Transfer(byte[] sessionId, byte[] orgId) =>
        (await mediator.Send(new Transfers.ProposeTransferCommand(ConnectionState.Of(Context), sessionId, orgId), Context.ConnectionAborted)).ValueOrRefuse();

    public async Task<ResponderStatus> SetAvailability(bool available) =>
        (await mediator.Send(new SetAvailabilityCommand(ConnectionState.Of(Context), available), Context.ConnectionAborted)).ValueOrRefuse();

    public async Task<TakenSession> AcceptOffer(byte[] sessionId) =>
        (await mediator.Send(new AnswerOfferCommand(ConnectionState.Of(Context), sessionId, Accept: true), Context.ConnectionAborted)).ValueOrRefuse();

    public async Task DeclineOffer(byte[] sessionId) =>
        (await mediator.Send(new AnswerOfferCommand(ConnectionState.Of(Context), sessionId, Accept: false), Context.ConnectionAborted)).ValueOrRefuse();
}
