using Mediator;
using Microsoft.AspNetCore.SignalR;
using TrustLine.Protocol.Contracts;
using TrustLine.Server.Admission;
using TrustLine.Server.Limits;
using TrustLine.Server.Relay;
using TrustLine.Server.Storage;

namespace TrustLine.Server.Sessions;

/// <summary>The anonymous seeker hub: each method binds the connection's state into a command.</summary>
public sealed class SeekerHub(IMediator mediator, SendEnvelopeHandler sends, SilentConnections silent, AddressTags addresses, ThisNode node) : Hub<ISeekerClient>, ISeekerHub
{
    public override Task OnConnectedAsync()
    {
        ConnectionState.Attach(Context, node, Party.Seeker).Address = addresses.Of(Context.GetHttpContext());
        silent.Connected(Context);
        return Task.CompletedTask;
    }

    public override async Task OnDisconnectedAsync(Exception? exception)
    {
        silent.Heard(Context);
        await mediator.Send(new ConnectionLostCommand(ConnectionState.Of(Context)));
    }

    public async Task<byte[]> GetPuzzle(byte[] orgId) =>
        (await mediator.Send(new GetPuzzleQuery(orgId), Context.ConnectionAborted)).ValueOrRefuse();

    public async Task<OpenSessionResult> OpenSession(OpenSessionRequest request) =>
        (await mediator.Send(new OpenSessionCommand(ConnectionState.Of(Context), request), Context.ConnectionAborted)).ValueOrRefuse();

    public async Task<ResumeSessionResult> ResumeSession(ResumeSessionRequest request) =>
        (await mediator.Send(new ResumeSessionCommand(ConnectionState.Of(Context), request), Context.ConnectionAborted)).ValueOrRefuse();

    /// <summary>Not through the mediator: the hot path, one async layer to the buffer write (see <see cref="SendEnvelopeHandler"/>).</summary>
    public Task<SendResult> Send(byte[] envelope) => sends.SendAsync(ConnectionState.Of(Context), envelope);

    public async Task Acknowledge(ulong through) =>
        (await mediator.Send(new AcknowledgeCommand(ConnectionState.Of(Context), null, through), Context.ConnectionAborted)).ValueOrRefuse();

    public async Task Close() =>
        (await mediator.Send(new CloseSessionCommand(ConnectionState.Of(Context), null), Context.ConnectionAborted)).ValueOrRefuse();

    public async Task<OpenSessionResult> AcceptTransfer(byte[] msg1) =>
        (await mediator.Send(new Transfers.AcceptTransferCommand(ConnectionState.Of(Context), msg1), Context.ConnectionAborted)).ValueOrRefuse();

    public async Task DeclineTransfer() =>
        (await mediator.Send(new Transfers.DeclineTransferCommand(ConnectionState.Of(Context)), Context.ConnectionAborted)).ValueOrRefuse();
}
