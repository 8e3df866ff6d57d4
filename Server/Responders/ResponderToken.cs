using System.Security.Claims;
using System.Security.Cryptography;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;
using TrustLine.Server.Storage;

namespace TrustLine.Server.Responders;

/// <summary>
/// Authenticates responder connections by their opaque access token (query <c>access_token</c>, as
/// WebSocket clients send it, or <c>Authorization: Bearer</c>). Only the token's SHA-256 is stored; the
/// lookup happens once per connection, never per message.
/// </summary>
public sealed class ResponderToken(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory logger,
    UrlEncoder encoder,
    IAccessStore access,
    ResponderGuard guard) : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "ResponderToken";
    private const string OrgClaim = "trustline:org";
    private const string ResponderClaim = "trustline:responder";
    private const string ExpiresClaim = "trustline:expires";

    public static ResponderGrant? GrantOf(ClaimsPrincipal? user)
    {
        var org = user?.FindFirst(OrgClaim)?.Value;
        var responder = user?.FindFirst(ResponderClaim)?.Value;
        var expires = user?.FindFirst(ExpiresClaim)?.Value;
        return org is null || responder is null || expires is null
            ? null
            : new ResponderGrant(Convert.FromHexString(org), responder, DateTimeOffset.FromUnixTimeSeconds(long.Parse(expires, System.Globalization.CultureInfo.InvariantCulture)));
    }

    public static byte[] Hash(string token) => SHA256.HashData(System.Text.Encoding.ASCII.GetBytes(token));

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        string? token = Request.Query["access_token"];
        if (string.IsNullOrEmpty(token) && Request.Headers.Authorization.ToString() is { } header
            && header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            token = header["Bearer ".Length..].Trim();
        }

        if (string.IsNullOrEmpty(token) || token.Length > 128)
        {
            return AuthenticateResult.NoResult();
        }

        var grant = await access.GetTokenAsync(Hash(token));
        if (grant is null || guard.Check(grant) is not null)
        {
            return AuthenticateResult.Fail("The responder token is unknown, expired or denied; sign in again.");
        }

        var identity = new ClaimsIdentity(
        [
            new Claim(OrgClaim, Convert.ToHexStringLower(grant.OrgId)),
            new Claim(ResponderClaim, grant.ResponderId),
            new Claim(ExpiresClaim, grant.ExpiresAt.ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture)),
        ], SchemeName);
        // The ticket's expiry lets SignalR close the connection when the grant runs out (CloseOnAuthenticationExpiration).
        var properties = new AuthenticationProperties { ExpiresUtc = grant.ExpiresAt };
        return AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), properties, SchemeName));
    }
}
