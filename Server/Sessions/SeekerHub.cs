using Mediator;
using Microsoft.AspNetCore.SignalR;
using TrustLine.Protocol.Contracts;
using TrustLine.Server.Relay;
using TrustLine.Server.Storage;

namespace TrustLine.Server.Sessions;

/// <summary>The anonymous seeker hub: each method binds the connection's state into a command.</summary>
public sealed class SeekerHub(IMediator mediator) : Hub<ISeekerClient>
{
    public override Task OnConnectedAsync()
    {
        ConnectionState.Attach(Context, Party.Seeker);
        return Task.CompletedTask;
    }

    public override async Task OnDisconnectedAsync(Exception? exception) =>
        await mediator.Send(new ConnectionLostCommand(ConnectionState.Of(Context)));

    public ValueTask<Outcome<OpenSessionResult>> OpenSession(OpenSessionRequest request) =>
        mediator.Send(new OpenSessionCommand(ConnectionState.Of(Context), request), Context.ConnectionAborted);

    public ValueTask<Outcome<ResumeSessionResult>> ResumeSession(ResumeSessionRequest request) =>
        mediator.Send(new ResumeSessionCommand(ConnectionState.Of(Context), request), Context.ConnectionAborted);

    public ValueTask<Outcome<SendResult>> Send(byte[] envelope) =>
        mediator.Send(new SendEnvelopeCommand(ConnectionState.Of(Context), envelope), Context.ConnectionAborted);

    public ValueTask<Outcome<Done>> Acknowledge(ulong through) =>
        mediator.Send(new AcknowledgeCommand(ConnectionState.Of(Context), null, through), Context.ConnectionAborted);

    public ValueTask<Outcome<Done>> Close() =>
        mediator.Send(new CloseSessionCommand(ConnectionState.Of(Context), null), Context.ConnectionAborted);
}
