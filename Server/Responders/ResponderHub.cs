using Mediator;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.SignalR;
using TrustLine.Protocol.Contracts;
using TrustLine.Server.Relay;
using TrustLine.Server.Sessions;
using TrustLine.Server.Storage;

namespace TrustLine.Server.Responders;

/// <summary>The responder hub: only connections with a valid responder token get in.</summary>
[Authorize(AuthenticationSchemes = ResponderToken.SchemeName)]
public sealed class ResponderHub(IMediator mediator) : Hub<IResponderClient>
{
    public override async Task OnConnectedAsync()
    {
        var grant = ResponderToken.GrantOf(Context.User) ?? throw new HubException($"{ErrorCodes.Denied}: This connection has no responder grant.");
        ConnectionState.Attach(Context, Party.Responder, grant);
        await Groups.AddToGroupAsync(Context.ConnectionId, QueueNotifier.GroupOf(grant.OrgId));
    }

    public override async Task OnDisconnectedAsync(Exception? exception) =>
        await mediator.Send(new ConnectionLostCommand(ConnectionState.Of(Context)));

    public ValueTask<Outcome<QueueEntry[]>> GetQueue() =>
        mediator.Send(new GetQueueQuery(ConnectionState.Of(Context)), Context.ConnectionAborted);

    public ValueTask<Outcome<TakenSession?>> TakeNext() =>
        mediator.Send(new TakeSessionCommand(ConnectionState.Of(Context), null), Context.ConnectionAborted);

    public ValueTask<Outcome<TakenSession?>> Take(byte[] sessionId) =>
        mediator.Send(new TakeSessionCommand(ConnectionState.Of(Context), sessionId ?? []), Context.ConnectionAborted);

    public ValueTask<Outcome<Done>> Answer(byte[] sessionId, byte[] msg2) =>
        mediator.Send(new AnswerSessionCommand(ConnectionState.Of(Context), sessionId, msg2), Context.ConnectionAborted);

    public ValueTask<Outcome<SendResult>> Send(byte[] envelope) =>
        mediator.Send(new SendEnvelopeCommand(ConnectionState.Of(Context), envelope), Context.ConnectionAborted);

    public ValueTask<Outcome<Done>> Acknowledge(byte[] sessionId, ulong through) =>
        mediator.Send(new AcknowledgeCommand(ConnectionState.Of(Context), sessionId, through), Context.ConnectionAborted);

    public ValueTask<Outcome<ResumeSessionResult>> ResumeSession(ResumeSessionRequest request) =>
        mediator.Send(new ResumeSessionCommand(ConnectionState.Of(Context), request), Context.ConnectionAborted);

    public ValueTask<Outcome<Done>> Close(byte[] sessionId) =>
        mediator.Send(new CloseSessionCommand(ConnectionState.Of(Context), sessionId), Context.ConnectionAborted);
}
