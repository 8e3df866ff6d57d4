using System.ComponentModel.DataAnnotations;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;
using TrustLine.Server.Organisations;

namespace TrustLine.Server.Web;

/// <summary>The seeker page's and the counsellor console's settings (section <c>Web</c>).</summary>
public sealed class WebOptions
{
    public const string Section = "Web";

    /// <summary>Serve the counsellor console at <c>/console/</c>. Unset means on in Development and off elsewhere.</summary>
    public bool? Console { get; set; }

    /// <summary>The folder of the built console; empty means <c>Web/console/dist</c> of this repository, beside the content root.</summary>
    public string ConsoleRoot { get; set; } = "";

    /// <summary>The console locks itself (and forgets the key) after this long without a key press, click or touch.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "08:00:00")]
    public TimeSpan ConsoleIdleLock { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Serve the seeker page at <c>/</c>. Unset means on in Development and off elsewhere.</summary>
    public bool? Seeker { get; set; }

    /// <summary>The folder of the built page; empty means <c>Web/seeker/dist</c> of this repository, beside the content root.</summary>
    public string SeekerRoot { get; set; } = "";

    /// <summary>Where quick exit sends the browser (replacing the page in its history): a neutral site.</summary>
    [Required]
    public string QuickExitUrl { get; set; } = "https://www.bbc.com/weather";
}

internal sealed class WebOptionsValidator : IValidateOptions<WebOptions>
{
    public ValidateOptionsResult Validate(string? name, WebOptions options) =>
        Uri.TryCreate(options.QuickExitUrl, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttps || uri.Scheme == Uri.UriSchemeHttp)
            ? ValidateOptionsResult.Success
            : ValidateOptionsResult.Fail("Web:QuickExitUrl must be an absolute http or https address (a neutral site quick exit goes to).");
}

/// <summary>
/// Serves the seeker page (<c>Web/seeker</c>) as static files that leave no trace and run nothing but
/// their own bundle: a strict Content-Security-Policy, no referrer, no caching, and the organisations' pins
/// in a generated <c>config.json</c>. See docs/web.md for what a page served by the relay can promise.
/// </summary>
public static partial class WebSetup
{
    // The page's files, by URL path; anything else is not served.
    private static readonly Dictionary<string, string> ContentTypes = new(StringComparer.OrdinalIgnoreCase)
    {
        [".js"] = "text/javascript; charset=utf-8",
        [".css"] = "text/css; charset=utf-8",
        [".json"] = "application/json; charset=utf-8",
        [".svg"] = "image/svg+xml",
        [".html"] = "text/html; charset=utf-8",
    };

    public static IHostApplicationBuilder AddWeb(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<WebOptions>()
            .BindConfiguration(WebOptions.Section)
            .ValidateDataAnnotations()
            .ValidateOnStart();
        builder.Services.AddSingleton<IValidateOptions<WebOptions>, WebOptionsValidator>();
        return builder;
    }

    public static IEndpointRouteBuilder MapWeb(this IEndpointRouteBuilder app)
    {
        var options = app.ServiceProvider.GetRequiredService<IOptions<WebOptions>>().Value;
        var environment = app.ServiceProvider.GetRequiredService<IHostEnvironment>();
        var logger = app.ServiceProvider.GetRequiredService<ILoggerFactory>().CreateLogger("TrustLine.Server.Web");
        if (options.Seeker ?? environment.IsDevelopment())
        {
            MapSeekerPage(app, options, environment, logger);
        }

        if (options.Console ?? environment.IsDevelopment())
        {
            MapConsole(app, options, environment, logger);
        }

        return app;
    }

    private static void MapSeekerPage(IEndpointRouteBuilder app, WebOptions options, IHostEnvironment environment, ILogger logger)
    {
        var root = BuiltFolder(options.SeekerRoot, "seeker", environment);
        if (!File.Exists(Path.Combine(root, "index.html")))
        {
            WebLog.PageNotBuilt(logger);
            return;
        }

        var files = ListFiles(root);
        var directory = app.ServiceProvider.GetRequiredService<OrganisationDirectory>();
        var config = new
        {
            quickExitUrl = options.QuickExitUrl,
            organisations = directory.All.Select(o => new
            {
                id = o.OrgIdHex,
                name = o.Name,
                insecure = o.Insecure,
                roots = o.Pin.Roots.Select(Convert.ToHexStringLower),
            }).ToArray(),
        };

        app.MapGet("/", (HttpContext context) => Serve(context, files, "index.html"));
        app.MapGet("/seeker/config.json", (HttpContext context) =>
        {
            Protect(context);
            return Results.Json(config);
        });
        app.MapGet("/seeker/{**file}", (HttpContext context, string file) => Serve(context, files, file));
        WebLog.PageServed(logger);
    }

    /// <summary>
    /// The counsellor console at <c>/console/</c>: the same headers as the seeker page, except that its script may
    /// compile WebAssembly (<c>'wasm-unsafe-eval'</c>, not <c>'unsafe-eval'</c>): the key file's Argon2id runs in WASM.
    /// The demo organisation's INSECURE key file is offered only when that organisation is configured.
    /// </summary>
    private static void MapConsole(IEndpointRouteBuilder app, WebOptions options, IHostEnvironment environment, ILogger logger)
    {
        var root = BuiltFolder(options.ConsoleRoot, "console", environment);
        if (!File.Exists(Path.Combine(root, "index.html")))
        {
            WebLog.ConsoleNotBuilt(logger);
            return;
        }

        var files = ListFiles(root);
        var directory = app.ServiceProvider.GetRequiredService<OrganisationDirectory>();
        var demo = directory.All.Any(o => o.Insecure && o.OrgIdHex == DemoOrgIdHex) && File.Exists(Path.Combine(root, "demo", "responder.key"));
        var config = new
        {
            organisations = directory.All.Select(o => new
            {
                id = o.OrgIdHex,
                name = o.Name,
                insecure = o.Insecure,
                roots = o.Pin.Roots.Select(Convert.ToHexStringLower),
            }).ToArray(),
            idleLockSeconds = (int)Math.Ceiling(options.ConsoleIdleLock.TotalSeconds),
            demo,
        };

        // Routing treats "/console" and "/console/" alike; the page's own paths are absolute, so both work.
        app.MapGet("/console/", (HttpContext context) => Serve(context, files, "index.html", wasm: true));
        app.MapGet("/console/config.json", (HttpContext context) =>
        {
            Protect(context, wasm: true);
            return Results.Json(config);
        });
        app.MapGet("/console/demo/responder.key", (HttpContext context) =>
        {
            Protect(context, wasm: true);
            return demo ? Results.File(Path.Combine(root, "demo", "responder.key"), "application/json; charset=utf-8") : Results.NotFound();
        });
        app.MapGet("/console/{**file}", (HttpContext context, string file) => Serve(context, files, file, wasm: true));
        WebLog.ConsoleServed(logger);
    }

    // The Development demo organisation (appsettings.Development.json), whose keys are the public RFC 8032 test keys.
    private const string DemoOrgIdHex = "11111111111111111111111111111111";

    private static string BuiltFolder(string configured, string name, IHostEnvironment environment) =>
        string.IsNullOrEmpty(configured)
            ? Path.GetFullPath(Path.Combine(environment.ContentRootPath, "..", "Web", name, "dist"))
            : Path.GetFullPath(configured, environment.ContentRootPath);

    // Only the files of a built page, listed once at start; nothing else under the folder is reachable.
    private static Dictionary<string, string> ListFiles(string root) =>
        Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories)
            .Where(f => ContentTypes.ContainsKey(Path.GetExtension(f)))
            .ToDictionary(f => Path.GetRelativePath(root, f).Replace(Path.DirectorySeparatorChar, '/'), f => f, StringComparer.Ordinal);

    private static IResult Serve(HttpContext context, Dictionary<string, string> files, string file, bool wasm = false)
    {
        Protect(context, wasm);
        return files.TryGetValue(file, out var path)
            ? Results.File(path, ContentTypes[Path.GetExtension(path)])
            : Results.NotFound();
    }

    /// <summary>Headers for every response of the page: nothing cached, no referrer, nothing but its own bundle.</summary>
    private static void Protect(HttpContext context, bool wasm = false)
    {
        var headers = context.Response.Headers;

        // 'self' covers ws: and wss: of the same host in current browsers; older ones need them spelled out.
        // The host comes from the request, so it is only echoed when it is a plain host name and port.
        var host = context.Request.Host.Value;
        var sockets = host is not null && PlainHost().IsMatch(host) ? $" ws://{host} wss://{host}" : "";
        headers.ContentSecurityPolicy =
            $"default-src 'none'; script-src 'self'{(wasm ? " 'wasm-unsafe-eval'" : "")}; style-src 'self'; img-src 'self'; font-src 'none'; " +
            $"connect-src 'self'{sockets}; manifest-src 'none'; worker-src 'none'; " +
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
        headers.CacheControl = "no-store";
        headers.Pragma = "no-cache";
        headers["Referrer-Policy"] = "no-referrer";
        headers.XContentTypeOptions = "nosniff";
        headers.XFrameOptions = "DENY";
        headers["Cross-Origin-Opener-Policy"] = "same-origin";
        headers["Cross-Origin-Resource-Policy"] = "same-origin";
        headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=(), interest-cohort=()";
    }

    [GeneratedRegex(@"^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")]
    private static partial Regex PlainHost();
}

internal static partial class WebLog
{
    [LoggerMessage(EventId = 9001, Level = LogLevel.Warning,
        Message = "The seeker page is not built, so / serves nothing: install Node.js 20 or later with npm, then build again (dotnet build Server), or run 'npm ci && npm run build' in Web/.")]
    public static partial void PageNotBuilt(ILogger logger);

    [LoggerMessage(EventId = 9002, Level = LogLevel.Information, Message = "The seeker page is served at /.")]
    public static partial void PageServed(ILogger logger);

    [LoggerMessage(EventId = 9003, Level = LogLevel.Warning,
        Message = "The counsellor console is not built, so /console/ serves nothing: install Node.js 20 or later with npm, then build again (dotnet build Server), or run 'npm ci && npm run build' in Web/.")]
    public static partial void ConsoleNotBuilt(ILogger logger);

    [LoggerMessage(EventId = 9004, Level = LogLevel.Information, Message = "The counsellor console is served at /console/.")]
    public static partial void ConsoleServed(ILogger logger);
}
