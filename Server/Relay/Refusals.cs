using System.Buffers;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Protocol;
using Microsoft.Extensions.Options;
using StackExchange.Redis;
using TrustLine.Protocol.Contracts;
using TrustLine.Server.Sessions;

namespace TrustLine.Server.Relay;

/// <summary>
/// Turns a hub method's refusal into the call's error text, exactly <c>"code: sentence"</c>, and a store outage
/// into <c>unavailable</c>. A refusal is an expected answer, not a fault: it is never thrown through SignalR's
/// dispatcher (which would log an error with a stack trace and prefix the text), but returned as a
/// <see cref="RefusalReply"/> that <see cref="RefusingHubProtocol"/> writes as the completion's error. Logs one
/// Information line per refusal (code and method only), rate-limited.
/// </summary>
internal sealed class RefusalFilter(RefusalLog log, StoreWatch watch, ILogger<RefusalFilter> logger) : IHubFilter
{
    /// <summary>A call answered at once passes straight through; only one still waiting is awaited here.</summary>
    public ValueTask<object?> InvokeMethodAsync(HubInvocationContext context, Func<HubInvocationContext, ValueTask<object?>> next)
    {
        ValueTask<object?> call;
        try
        {
            call = next(context);
        }
        catch (Exception e) when (e is RefusedException or RedisException or TimeoutException)
        {
            return new(Reply(context, e));
        }

        return call.IsCompletedSuccessfully ? call : AwaitAsync(context, call);
    }

    private async ValueTask<object?> AwaitAsync(HubInvocationContext context, ValueTask<object?> call)
    {
        try
        {
            return await call;
        }
        catch (Exception e) when (e is RefusedException or RedisException or TimeoutException)
        {
            return Reply(context, e);
        }
    }

    /// <summary>The answer for a refusal, or for a store failure (any other exception goes on to SignalR).</summary>
    private RefusalReply Reply(HubInvocationContext context, Exception e)
    {
        if (e is RefusedException refused)
        {
            log.Refused(context.HubMethodName, refused.Code);
            return new RefusalReply(refused.Code, refused.Message);
        }

        SessionLog.StoreFailed(logger, context.HubMethodName, e.GetType().Name);
        watch.Reported(); // live forwards may have been lost meanwhile: re-deliver from the buffer once it answers
        return new RefusalReply(ErrorCodes.Unavailable, "The service cannot reach its store just now; try again shortly.");
    }
}

/// <summary>A refused call's answer: written on the wire as the completion's error <c>"code: sentence"</c>.</summary>
public sealed record RefusalReply(string Code, string Message)
{
    public string Text => $"{Code}: {Message}";
}

/// <summary>
/// The MessagePack hub protocol, the only one the hubs speak, writing a <see cref="RefusalReply"/> result as
/// the completion's error. Everything else passes through unchanged.
/// </summary>
internal sealed class RefusingHubProtocol(IOptions<MessagePackHubProtocolOptions> options) : IHubProtocol
{
    public const string ProtocolName = "messagepack";

    private readonly MessagePackHubProtocol inner = new(options);

    public string Name => inner.Name;

    public int Version => inner.Version;

    public TransferFormat TransferFormat => inner.TransferFormat;

    public bool IsVersionSupported(int version) => inner.IsVersionSupported(version);

    public bool TryParseMessage(ref ReadOnlySequence<byte> input, IInvocationBinder binder, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out HubMessage? message) =>
        inner.TryParseMessage(ref input, binder, out message);

    public void WriteMessage(HubMessage message, IBufferWriter<byte> output) => inner.WriteMessage(Rewrite(message), output);

    public ReadOnlyMemory<byte> GetMessageBytes(HubMessage message) => inner.GetMessageBytes(Rewrite(message));

    private static HubMessage Rewrite(HubMessage message) =>
        message is CompletionMessage { Result: RefusalReply refusal, InvocationId: { } id }
            ? CompletionMessage.WithError(id, refusal.Text)
            : message;
}

/// <summary>
/// One Information line per refusal, at most <see cref="Burst"/> per <see cref="Window"/>; the rest are counted
/// and reported in one line when the next window opens, so a client refusing itself in a loop cannot fill
/// the logs.
/// </summary>
public sealed class RefusalLog(ILogger<RefusalLog> logger, TimeProvider time)
{
    internal const int Burst = 20;
    internal static readonly TimeSpan Window = TimeSpan.FromSeconds(10);

    private readonly Lock gate = new();
    private DateTimeOffset windowStart = DateTimeOffset.MinValue;
    private int written;
    private long suppressed;

    public void Refused(string method, string code)
    {
        long report;
        lock (gate)
        {
            var now = time.GetUtcNow();
            report = 0;
            if (now - windowStart >= Window)
            {
                windowStart = now;
                written = 0;
                report = suppressed;
                suppressed = 0;
            }

            if (written >= Burst)
            {
                suppressed++;
                return;
            }

            written++;
        }

        if (report > 0)
        {
            RelayLog.RefusalsSuppressed(logger, report);
        }

        RelayLog.Refused(logger, method, code);
    }
}

internal static partial class RelayLog
{
    [LoggerMessage(EventId = 205, Level = LogLevel.Information, Message = "Refused {Method}: {Code}.")]
    public static partial void Refused(ILogger logger, string method, string code);

    [LoggerMessage(EventId = 208, Level = LogLevel.Information, Message = "{Count} more refusals were not logged (rate limit).")]
    public static partial void RefusalsSuppressed(ILogger logger, long count);
}
