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
        builder.Services.AddSingleton<ISpentTokens>(sp => sp.GetRequiredService<StoreMode>().Kind == StoreKind.Redis
            ? ActivatorUtilities.CreateInstance<RedisSpentTokens>(sp)
            : ActivatorUtilities.CreateInstance<EmbeddedSpentTokens>(sp));
        builder.Services.AddSingleton<IPipelineBehavior<OpenSessionCommand, Outcome<OpenSessionResult>>, AdmissionBehaviour>();
        builder.Services.AddSingleton<WaitEstimator>();
        builder.Services.AddSingleton<IPipelineBehavior<Responders.TakeSessionCommand, Outcome<TakenSession?>>, TakeRateBehaviour>();
        return builder;
    }
}

public sealed record GetPuzzleQuery(byte[]? OrgId) : IQuery<Outcome<byte[]>>;

/// <summary>A fresh puzzle for an organisation this server serves.</summary>
public sealed class GetPuzzleHandler(OrganisationDirectory organisations, PuzzleBook puzzles) : IQueryHandler<GetPuzzleQuery, Outcome<byte[]>>
{
    public ValueTask<Outcome<byte[]>> Handle(GetPuzzleQuery query, CancellationToken cancellationToken)
    {
        if (query.OrgId is not { Length: Wire.OrgIdSize } orgId)
        {
            return ValueTask.FromResult<Outcome<byte[]>>(Refuse.With(ErrorCodes.BadRequest, "An organisation id is 16 bytes."));
        }

        return ValueTask.FromResult<Outcome<byte[]>>(organisations.Find(orgId) is { } org
            ? puzzles.Issue(org.OrgId, org.OrgIdHex)
            : Refuse.With(ErrorCodes.UnknownOrganisation, "This server does not serve that organisation."));
    }
}

/// <summary>
/// Before a session opens: the organisation must be open (or queue while closed), and a well-formed
/// <c>msg1</c> for it must bring a valid puzzle solution whenever it is under pressure. Opens that reach the
/// queue feed the policy.
/// </summary>
internal sealed class AdmissionBehaviour(PuzzleBook puzzles, AdmissionPolicy policy, OrganisationDirectory organisations, TimeProvider time)
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

        if (await puzzles.AdmitAsync(request, org.OrgId, org.OrgIdHex, sessionId.ToByteArray(bigEndian: true)) is { } refusal)
        {
            return refusal;
        }

        var outcome = await next(message, cancellationToken);
        double? fill = outcome.Succeeded ? (double)outcome.Value!.Queue.Waiting / org.QueueCapacity
            : outcome.Code == ErrorCodes.QueueFull ? 1.0
            : null;
        policy.RecordOpen(org.OrgIdHex, fill);
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
