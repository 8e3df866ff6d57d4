using System.ComponentModel.DataAnnotations;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using TrustLine.Protocol.Contracts;
using TrustLine.Protocol.Crypto;
using TrustLine.Server.Admission;
using TrustLine.Server.Organisations;
using TrustLine.Server.Storage;

namespace TrustLine.Server.Responders;

/// <summary>Responder sign-in settings (section <c>Responders</c>).</summary>
public sealed class ResponderOptions
{
    public const string Section = "Responders";

    [Range(typeof(TimeSpan), "00:01:00", "1.00:00:00", ErrorMessage = "Responders:TokenLifetime must be between 1 minute and 1 day.")]
    public TimeSpan TokenLifetime { get; set; } = TimeSpan.FromHours(8);

    [Range(typeof(TimeSpan), "00:00:05", "00:10:00", ErrorMessage = "Responders:ChallengeLifetime must be between 5 seconds and 10 minutes.")]
    public TimeSpan ChallengeLifetime { get; set; } = TimeSpan.FromMinutes(1);
}

/// <summary>
/// Sign-in without passwords: the responder proves it holds a certified responder key by signing a fresh,
/// single-use challenge; the server checks the chain against the organisation's configured roots (every
/// rule of PROTOCOL.md §1, server clock) and its denylist, then issues a short-lived opaque token.
/// </summary>
public static class SignInEndpoints
{
    /// <summary>Stateless challenges; the spent-challenge store comes with the admission services.</summary>
    public static IHostApplicationBuilder AddSignIn(this IHostApplicationBuilder builder)
    {
        builder.Services.AddSingleton<Challenges>();
        return builder;
    }

    public static IEndpointRouteBuilder MapSignIn(this IEndpointRouteBuilder app)
    {
        app.MapPost(Routes.Challenge, IssueChallengeAsync);
        app.MapPost(Routes.SignIn, SignInAsync);
        return app;
    }

    private static async Task<Ok<ChallengeResponse>> IssueChallengeAsync(Challenges challenges, IOptions<ResponderOptions> options)
    {
        var challenge = await challenges.IssueAsync(options.Value.ChallengeLifetime);
        return TypedResults.Ok(new ChallengeResponse { Challenge = Convert.ToBase64String(challenge) });
    }

    private static async Task<Results<Ok<SignInResponse>, JsonHttpResult<ErrorResponse>>> SignInAsync(
        HttpRequest http,
        IAccessStore access,
        Challenges challenges,
        ISpentTokens spent,
        OrganisationDirectory organisations,
        IOptions<ResponderOptions> options,
        TimeProvider time,
        Operations.Metrics.TrustLineMetrics metrics,
        ILoggerFactory loggers)
    {
        var logger = loggers.CreateLogger(typeof(SignInEndpoints).FullName!);
        SignInRequest? request;
        try
        {
            request = await http.ReadFromJsonAsync<SignInRequest>(http.HttpContext.RequestAborted);
        }
        catch (BadHttpRequestException e)
        {
            return Error(e.StatusCode, ErrorCodes.BadRequest, "The request is too large or malformed.");
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException)
        {
            request = null;
        }

        if (request is null
            || !TryBase64(request.Challenge, Challenges.Size, out var challenge)
            || !TryBase64(request.Signature, Wire.SignatureSize, out var signature))
        {
            return Error(400, ErrorCodes.BadRequest, "Give the challenge, the signature and both certificates, base64, as JSON.");
        }

        // Stateless first: a challenge this deployment did not make, or an expired one, costs nothing more.
        if (!await challenges.IsGenuineAsync(challenge))
        {
            return Error(401, ErrorCodes.BadChallenge, "The challenge is unknown, expired or already used; ask for a new one.");
        }

        if (!PublicText.TryParseCertificate(request.IssuerCertificate, out var issuer) || !PublicText.TryParseCertificate(request.ResponderCertificate, out var responder))
        {
            return Error(400, ErrorCodes.BadCertificate, "The certificates are not valid 133-byte TrustLine certificates (size, magic or validity window).");
        }

        if (organisations.Find(responder!.OrgId) is not { } org)
        {
            return Error(403, ErrorCodes.UnknownOrganisation, "This server does not serve the certificate's organisation.");
        }

        var now = time.GetUtcNow();
        switch (CertificateChain.Verify(issuer!, responder, org.Pin, now.ToUnixTimeSeconds()))
        {
            case ChainError.None:
                break;
            case ChainError.Expired or ChainError.NotYetValid:
                return Error(403, ErrorCodes.CertificateExpired, "A certificate has expired or is not valid yet; ask the organisation for a new one.");
            case var error:
                ResponderLog.ChainRefused(logger, error.ToString());
                return Error(403, ErrorCodes.BadCertificate, "The certificates do not chain to the organisation's roots.");
        }

        var fingerprint = OrganisationDirectory.NormaliseFingerprint(Certificate.Fingerprint(responder.SubjectPublicKey));
        if (org.DeniedFingerprints.Contains(fingerprint))
        {
            return Error(403, ErrorCodes.Denied, "This responder key may no longer sign in.");
        }

        if (!ResponderSignIn.Verify(responder.SubjectPublicKey, challenge, signature))
        {
            return Error(401, ErrorCodes.BadSignature, "The signature over the challenge does not verify under the responder key.");
        }

        // Spent only now, after everything verified: a replay of this exact request fails, and requests that
        // fail earlier store nothing.
        if (!await spent.TrySpendAsync("ch", challenge, Challenges.ExpiryOf(challenge).AddSeconds(1)))
        {
            return Error(401, ErrorCodes.BadChallenge, "The challenge is unknown, expired or already used; ask for a new one.");
        }

        var token = Base64Url(RandomNumberGenerator.GetBytes(32));
        var expires = now + options.Value.TokenLifetime;
        var certificateEnd = responder.ValidUntil;
        if (certificateEnd < expires)
        {
            expires = certificateEnd;
        }

        await access.StoreTokenAsync(ResponderToken.Hash(token), new ResponderGrant(org.OrgId, fingerprint, expires), expires - now);
        metrics.SignedIn(org.OrgId, issuer!.NotAfter, responder.NotAfter, expires);
        ResponderLog.SignedIn(logger);
        return TypedResults.Ok(new SignInResponse { Token = token, ExpiresAt = expires });
    }

    private static JsonHttpResult<ErrorResponse> Error(int status, string code, string message) =>
        TypedResults.Json(new ErrorResponse { Code = code, Message = message }, statusCode: status);

    private static bool TryBase64(string? text, int size, out byte[] bytes)
    {
        bytes = new byte[size + 3];
        if (text is null || !Convert.TryFromBase64String(text, bytes, out var written) || written != size)
        {
            bytes = [];
            return false;
        }

        bytes = bytes[..size];
        return true;
    }

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}

internal static partial class ResponderLog
{
    [LoggerMessage(EventId = 300, Level = LogLevel.Information, Message = "A responder signed in.")]
    public static partial void SignedIn(ILogger logger);

    [LoggerMessage(EventId = 301, Level = LogLevel.Warning, Message = "Sign-in refused: certificate chain ({Rule}).")]
    public static partial void ChainRefused(ILogger logger, string rule);

    [LoggerMessage(EventId = 302, Level = LogLevel.Information, Message = "A responder connection was closed: {Code}.")]
    public static partial void ConnectionClosed(ILogger logger, string code);
}
