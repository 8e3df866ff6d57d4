using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using TrustLine.Protocol.Contracts;

namespace TrustLine.Client;

/// <summary>How a client connects and reconnects.</summary>
public sealed class ClientOptions
{
    /// <summary>Clock for certificate checks and gap timers.</summary>
    public TimeProvider Time { get; set; } = TimeProvider.System;

    /// <summary>Delays between reconnect attempts; after the last one the client gives up and reports it.</summary>
    public IReadOnlyList<TimeSpan> ReconnectDelays { get; set; } =
        [TimeSpan.Zero, TimeSpan.FromMilliseconds(250), TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(20), TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(30)];

    /// <summary>
    /// Server addresses to try, in turn, on reconnect (any node of one deployment); empty means only the one
    /// given to the client. Useful when a load balancer is not in front of the nodes.
    /// </summary>
    public IReadOnlyList<Uri> FallbackServers { get; set; } = [];
}

internal static class HubCalls
{
    public static HubConnection Build(Uri server, string path, Func<Task<string?>>? token = null) =>
        new HubConnectionBuilder()
            .WithUrl(new Uri(server, path), HttpTransportType.WebSockets, o =>
            {
                // WebSockets only, no negotiation: a reconnect may land on any node.
                o.SkipNegotiation = true;
                if (token is not null)
                {
                    o.AccessTokenProvider = token;
                }
            })
            .AddMessagePackProtocol()
            .Build();

    public static ISeekerHub Seeker(this HubConnection connection, CancellationToken cancellationToken = default) => new SeekerHubProxy(connection, cancellationToken);

    public static IResponderHub Responder(this HubConnection connection, CancellationToken cancellationToken = default) => new ResponderHubProxy(connection, cancellationToken);

    public static async Task<T> InvokeAsync<T>(this HubConnection connection, string method, object?[] args, CancellationToken cancellationToken)
    {
        try
        {
            return await connection.InvokeCoreAsync<T>(method, args, cancellationToken);
        }
        catch (HubException e)
        {
            throw TrustLineException.From(e);
        }
    }

    public static async Task CallAsync(this HubConnection connection, string method, object?[] args, CancellationToken cancellationToken)
    {
        try
        {
            await connection.InvokeCoreAsync(method, args, cancellationToken);
        }
        catch (HubException e)
        {
            throw TrustLineException.From(e);
        }
    }
}

/// <summary>The seeker hub through its shared interface: a renamed or changed hub method fails the build here.</summary>
internal sealed class SeekerHubProxy(HubConnection hub, CancellationToken cancellationToken) : ISeekerHub
{
    public Task<byte[]> GetPuzzle(byte[] orgId) => hub.InvokeAsync<byte[]>(nameof(ISeekerHub.GetPuzzle), [orgId], cancellationToken);

    public Task<OpenSessionResult> OpenSession(OpenSessionRequest request) =>
        hub.InvokeAsync<OpenSessionResult>(nameof(ISeekerHub.OpenSession), [request], cancellationToken);

    public Task<ResumeSessionResult> ResumeSession(ResumeSessionRequest request) =>
        hub.InvokeAsync<ResumeSessionResult>(nameof(ISeekerHub.ResumeSession), [request], cancellationToken);

    public Task<SendResult> Send(byte[] envelope) => hub.InvokeAsync<SendResult>(nameof(ISeekerHub.Send), [envelope], cancellationToken);

    public Task Acknowledge(ulong through) => hub.CallAsync(nameof(ISeekerHub.Acknowledge), [through], cancellationToken);

    public Task Close() => hub.CallAsync(nameof(ISeekerHub.Close), [], cancellationToken);

    public Task<OpenSessionResult> AcceptTransfer(byte[] msg1) =>
        hub.InvokeAsync<OpenSessionResult>(nameof(ISeekerHub.AcceptTransfer), [msg1], cancellationToken);

    public Task DeclineTransfer() => hub.CallAsync(nameof(ISeekerHub.DeclineTransfer), [], cancellationToken);
}

/// <summary>The responder hub through its shared interface.</summary>
internal sealed class ResponderHubProxy(HubConnection hub, CancellationToken cancellationToken) : IResponderHub
{
    public Task<QueueEntry[]> GetQueue() => hub.InvokeAsync<QueueEntry[]>(nameof(IResponderHub.GetQueue), [], cancellationToken);

    public Task<TakenSession?> TakeNext() => hub.InvokeAsync<TakenSession?>(nameof(IResponderHub.TakeNext), [], cancellationToken);

    public Task<TakenSession?> Take(byte[] sessionId) => hub.InvokeAsync<TakenSession?>(nameof(IResponderHub.Take), [sessionId], cancellationToken);

    public Task Answer(byte[] sessionId, byte[] msg2) => hub.CallAsync(nameof(IResponderHub.Answer), [sessionId, msg2], cancellationToken);

    public Task<SendResult> Send(byte[] envelope) => hub.InvokeAsync<SendResult>(nameof(IResponderHub.Send), [envelope], cancellationToken);

    public Task Acknowledge(byte[] sessionId, ulong through) =>
        hub.CallAsync(nameof(IResponderHub.Acknowledge), [sessionId, through], cancellationToken);

    public Task<ResumeSessionResult> ResumeSession(ResumeSessionRequest request) =>
        hub.InvokeAsync<ResumeSessionResult>(nameof(IResponderHub.ResumeSession), [request], cancellationToken);

    public Task Close(byte[] sessionId) => hub.CallAsync(nameof(IResponderHub.Close), [sessionId], cancellationToken);

    public Task Transfer(byte[] sessionId, byte[] orgId) => hub.CallAsync(nameof(IResponderHub.Transfer), [sessionId, orgId], cancellationToken);

    public Task<ResponderStatus> SetAvailability(bool available) =>
        hub.InvokeAsync<ResponderStatus>(nameof(IResponderHub.SetAvailability), [available], cancellationToken);

    public Task<TakenSession> AcceptOffer(byte[] sessionId) => hub.InvokeAsync<TakenSession>(nameof(IResponderHub.AcceptOffer), [sessionId], cancellationToken);

    public Task DeclineOffer(byte[] sessionId) => hub.CallAsync(nameof(IResponderHub.DeclineOffer), [sessionId], cancellationToken);
}
