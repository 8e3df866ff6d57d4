using Mediator;
using TrustLine.Protocol.Contracts;
using TrustLine.Protocol.Crypto;
using TrustLine.Server.Organisations;
using TrustLine.Server.Sessions;
using TrustLine.Server.Storage;

namespace TrustLine.Server.Admission;

public static class AdmissionSetup
{
    /// <summary>The admission puzzle: policy, puzzle book, single-use token store, and the check before every open.</summary>
    public static IHostApplicationBuilder AddAdmission(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<AdmissionOptions>().BindConfiguration(AdmissionOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddSingleton<AdmissionPolicy>();
        builder.Services.AddSingleton<PuzzleBook>();
        builder.Services.AddSingleton<QueueFillProbe>();
        builder.Services.AddSingleton<ISpentTokens>(sp => sp.GetRequiredService<StoreMode>().Kind == StoreKind.Redis
            ? ActivatorUtilities.CreateInstance<RedisSpentTokens>(sp)
            : ActivatorUtilities.CreateInstance<EmbeddedSpentTokens>(sp));
        builder.Services.AddSingleton<IPipelineBehavior<OpenSessionCommand, Outcome<OpenSessionResult>>, Limits.PlacesBehaviour>();
        builder.Services.AddSingleton<IPipelineBehavior<OpenSessionCommand, Outcome<OpenSessionResult>>, AdmissionBehaviour>();
        builder.Services.AddSingleton<WaitEstimator>();
        builder.Services.AddSingleton<IPipelineBehavior<Responders.TakeSessionCommand, Outcome<TakenSession?>>, TakeRateBehaviour>();
        return builder;
    }
}

public sealed record GetPuzzleQuery(byte[]? OrgId) : IQuery<Outcome<byte[]>>;

/// <summary>A fresh puzzle for an organisation this server serves.</summary>
public sealed class GetPuzzleHandler(OrganisationDirectory organisations, PuzzleBook puzzles, QueueFillProbe fill) : IQueryHandler<GetPuzzleQuery, Outcome<byte[]>>
{
    public async ValueTask<Outcome<byte[]>> Handle(GetPuzzleQuery query, CancellationToken cancellationToken)
    {
        if (query.OrgId is not { Length: Wire.OrgIdSize } orgId)
        {
            return Refuse.With(ErrorCodes.BadRequest, "An organisation id is 16 bytes.");
        }

        if (organisations.Find(orgId) is not { } org)
        {
            return Refuse.With(ErrorCodes.UnknownOrganisation, "This server does not serve that organisation.");
        }

        await fill.RefreshAsync(org);
        return puzzles.Issue(org.OrgId, org.OrgIdHex);
    }
}

/// <summary>
/// Reads an organisation's queue length from the store at most once a second per node, so the queue-fill
/// pressure holds while the puzzle keeps every open out (and sees what other nodes added or took).
/// </summary>
public sealed class QueueFillProbe(ISessionStore store, AdmissionPolicy policy, TimeProvider time, ILogger<QueueFillProbe> logger)
{
    private static readonly long Every = TimeSpan.FromSeconds(1).Ticks;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, long> probedAt = new();

    public async ValueTask RefreshAsync(Organisation org)
    {
        var now = time.GetUtcNow().UtcTicks;
        var last = probedAt.GetOrAdd(org.OrgIdHex, 0);
        if (now - last < Every || !probedAt.TryUpdate(org.OrgIdHex, now, last))
        {
            return; // read recently, or being read by another call right now
        }

        try
        {
            var (_, waiting) = await store.GetQueuePositionAsync(org.OrgId, Guid.Empty);
            policy.RecordFill(org.OrgIdHex, (double)waiting / org.QueueCapacity);
        }
        catch (Exception e) when (e is StackExchange.Redis.RedisException or TimeoutException)
        {
            AdmissionLog.FillProbeFailed(logger, e.GetType().Name); // the last figure stands until the next read
        }
    }
}

internal static partial class AdmissionLog
{
    [LoggerMessage(EventId = 400, Level = LogLevel.Warning, Message = "Reading the queue's fill for the admission puzzle failed ({ErrorType}).")]
    public static partial void FillProbeFailed(ILogger logger, string errorType);
}

/// <summary>
/// Before a session opens: the organisation must be open (or queue while closed), and a well-formed
/// <c>msg1</c> for it must bring a valid puzzle solution whenever it is under pressure. An open let in without a puzzle is counted as it is
/// let in; one with a puzzle when it reaches the queue. Each feeds the policy the queue's fill it found.
/// </summary>
internal sealed class AdmissionBehaviour(PuzzleBook puzzles, AdmissionPolicy policy, OrganisationDirectory organisations, QueueFillProbe probe, TimeProvider time)
    : IPipelineBehavior<OpenSessionCommand, Outcome<OpenSessionResult>>
{
    public async ValueTask<Outcome<OpenSessionResult>> Handle(
        OpenSessionCommand message, MessageHandlerDelegate<OpenSessionCommand, Outcome<OpenSessionResult>> next, CancellationToken cancellationToken)
    {
        var request = message.Request;
        // Malformed requests and unknown organisations are the handler's to refuse; they cost nothing to check.
        if (request?.Msg1 is null || !ResponderHandshake.TryParseMsg1(request.Msg1, out var orgId, out var sessionId)
            || organisations.Find(orgId) is not { } org)
        {
            return await next(message, cancellationToken);
        }

        // Closed: no puzzle to solve, no place to take (unless the organisation queues while closed).
        if (!org.Hours.QueueWhenClosed && !org.Hours.IsOpen(time.GetUtcNow()))
        {
            return Refuse.With(ErrorCodes.Closed, "The organisation is closed now; the directory says when it opens and where else to turn.");
        }

        await probe.RefreshAsync(org);
        if (await puzzles.AdmitAsync(request, org.OrgId, org.OrgIdHex, sessionId.ToByteArray(bigEndian: true)) is { } refusal)
        {
            return refusal;
        }

        var outcome = await next(message, cancellationToken);
        double? fill = outcome.Succeeded ? (double)outcome.Value!.Queue.Waiting / org.QueueCapacity
            : outcome.Code == ErrorCodes.QueueFull ? 1.0
            : null;
        if (request.Puzzle is { Length: > 0 })
        {
            policy.RecordOpen(org.OrgIdHex, fill);
        }
        else if (fill is { } known)
        {
            policy.RecordFill(org.OrgIdHex, known); // the open itself was counted when it was let in without a puzzle
        }
        return outcome;
    }
}

/// <summary>Feeds the wait estimate with each take: its time and organisation, nothing of the session.</summary>
internal sealed class TakeRateBehaviour(WaitEstimator waits) : IPipelineBehavior<Responders.TakeSessionCommand, Outcome<TakenSession?>>
{
    public async ValueTask<Outcome<TakenSession?>> Handle(
        Responders.TakeSessionCommand message, MessageHandlerDelegate<Responders.TakeSessionCommand, Outcome<TakenSession?>> next, CancellationToken cancellationToken)
    {
        var outcome = await next(message, cancellationToken);
        if (outcome.Succeeded && outcome.Value is not null && message.Connection.Grant is { } grant)
        {
            waits.Taken(Convert.ToHexStringLower(grant.OrgId));
        }

        return outcome;
    }
}
