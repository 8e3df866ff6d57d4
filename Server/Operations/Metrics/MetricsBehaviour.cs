using System.Diagnostics;
using Mediator;
using Microsoft.Extensions.Options;
using StackExchange.Redis;
using TrustLine.Protocol.Contracts;
using TrustLine.Protocol.Crypto;
using TrustLine.Server.Relay;
using TrustLine.Server.Responders;
using TrustLine.Server.Sessions;
using TrustLine.Server.Storage;

namespace TrustLine.Server.Operations.Metrics;

/// <summary>
/// Around every hub command: its duration and outcome (ok, refused with a code, or a store error), and the
/// session figures a command's answer tells (opened, taken after a wait, answered, resumed, envelope
/// relayed). Reads nothing from the store: what it needs is in the command, its answer and the connection.
/// </summary>
public sealed class MetricsBehaviour<TMessage, TResponse>(TrustLineMetrics metrics, IOptions<SessionLimits> limits, TimeProvider time)
    : IPipelineBehavior<TMessage, TResponse>
    where TMessage : IMessage
    where TResponse : IOutcome
{
    private static readonly string Command = MetricsBehaviour.CommandName(typeof(TMessage));

    public async ValueTask<TResponse> Handle(TMessage message, MessageHandlerDelegate<TMessage, TResponse> next, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        TResponse response;
        try
        {
            response = await next(message, cancellationToken);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            metrics.StoreFailed(Command);
            metrics.CommandHandled(Command, "error", Stopwatch.GetElapsedTime(started));
            if (message is ResumeSessionCommand resume)
            {
                metrics.Resumed(resume.Connection.Party == Party.Seeker ? "seeker" : "responder", "error");
            }

            throw;
        }

        metrics.CommandHandled(Command, response.Succeeded ? "ok" : "refused", Stopwatch.GetElapsedTime(started));
        if (!response.Succeeded)
        {
            metrics.Refused(Command, response.Code);
        }

        Count(message, response);
        return response;
    }

    private void Count(TMessage message, TResponse response)
    {
        switch (message)
        {
            case ResumeSessionCommand resume:
                metrics.Resumed(resume.Connection.Party == Party.Seeker ? "seeker" : "responder", response.Succeeded ? "resumed" : "refused");
                break;
            case OpenSessionCommand open when response.Succeeded && open.Connection.Single() is { } link:
                metrics.SessionOpened(link.OrgId);
                break;
            case OpenSessionCommand open when response.Code is ErrorCodes.Closed or ErrorCodes.QueueFull
                && open.Request?.Msg1 is { } msg1 && ResponderHandshake.TryParseMsg1(msg1, out var orgId, out _):
                metrics.SessionOutcome(orgId, SessionOutcomes.Refused, null);
                break;
            case TakeSessionCommand take when response.BoxedValue is TakenSession taken && Link(take.Connection, taken.SessionId) is { } link:
                metrics.SessionTaken(link.OrgId, time.GetUtcNow() - OpenedAt(link));
                break;
            case AnswerSessionCommand answer when response.Succeeded && Link(answer.Connection, answer.SessionId) is { } link:
                metrics.SessionAnswered(link.OrgId, time.GetUtcNow() - OpenedAt(link));
                break;
        }
    }

    private static SessionLink? Link(ConnectionState connection, byte[]? sessionId) =>
        sessionId is { Length: Wire.SessionIdSize } ? connection.Find(new Guid(sessionId, bigEndian: true)) : null;

    // A session's deadline is its opening plus the maximum lifetime (OpenSessionHandler sets it so).
    private DateTimeOffset OpenedAt(SessionLink link) => link.Deadline - limits.Value.MaxLifetime;
}

public static class MetricsBehaviour
{
    /// <summary>The label of the one command metered outside the mediator: the hubs' send path (SendEnvelope.cs).</summary>
    public const string SendEnvelope = "SendEnvelope";

    /// <summary>Command labels of paths the hubs call directly, beside the mediator's messages: part of the closed set.</summary>
    public static readonly IReadOnlyList<string> Direct = [SendEnvelope];

    /// <summary>The command label: the message type's name without its suffix, a closed set fixed at compile time.</summary>
    public static string CommandName(Type message) =>
        message.Name.Replace("Command", "", StringComparison.Ordinal).Replace("Query", "", StringComparison.Ordinal);
}
