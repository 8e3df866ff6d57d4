using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;

namespace TrustLine.Server.Responders;

/// <summary>
/// No scheme is the default for authenticating: the responder hub names <see cref="ResponderToken.SchemeName"/>, so
/// authorization authenticates that hub's requests alone. With the only scheme as the default (ASP.NET Core's choice
/// when there is one), the authentication middleware would also run it for every seeker connection, and its handler
/// would stay alive as long as the WebSocket: a few hundred bytes per connected seeker, for nothing.
/// </summary>
internal sealed class NamedSchemeOnly(IOptions<AuthenticationOptions> options) : AuthenticationSchemeProvider(options)
{
    public override Task<AuthenticationScheme?> GetDefaultAuthenticateSchemeAsync() => Task.FromResult<AuthenticationScheme?>(null);
}
