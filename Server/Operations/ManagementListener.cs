namespace TrustLine.Server.Operations;

/// <summary>
/// The management listener: extra Kestrel addresses, on their own ports, that answer <c>/metrics</c> and the
/// health endpoints and nothing else. The public port never answers <c>/metrics</c>. Requests are told apart
/// by the local port they arrived on, which a client cannot forge (a Host header it can).
/// </summary>
public sealed class ManagementListener
{
    private ManagementListener(IReadOnlySet<int> ports, string? problem)
    {
        Ports = ports;
        Problem = problem;
    }

    /// <summary>The management ports; empty when metrics are off or the settings are wrong.</summary>
    public IReadOnlySet<int> Ports { get; }

    /// <summary>Why the listener cannot start, as a sentence naming the setting; null when it can.</summary>
    public string? Problem { get; }

    public bool IsManagement(HttpContext context) => Ports.Contains(context.Connection.LocalPort);

    /// <summary>
    /// Adds the management URLs to the addresses Kestrel binds (the <c>urls</c> setting), keeping the public
    /// ones as configured (or Kestrel's own default when none is). Nothing is added when metrics are off.
    /// </summary>
    internal static ManagementListener Configure(IHostApplicationBuilder builder, OperationsOptions options)
    {
        if (!options.Metrics)
        {
            return new ManagementListener(new HashSet<int>(), null);
        }

        if (OperationsOptions.ParseManagementUrls(options.ManagementUrls, out var ports) is { } problem)
        {
            return new ManagementListener(new HashSet<int>(), problem);
        }

        var publicUrls = PublicUrls(builder.Configuration);
        foreach (var url in publicUrls)
        {
            if (OperationsOptions.ParseManagementUrls(url, out var publicPorts) is null && publicPorts.Overlaps(ports))
            {
                return new ManagementListener(new HashSet<int>(), $"Operations:ManagementUrls shares a port with the public address {url} (Urls); metrics must never be served on the public port.");
            }
        }

        builder.Configuration[WebHostDefaults.ServerUrlsKey] = string.Join(';', publicUrls.Concat(options.ManagementUrls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)));
        return new ManagementListener(ports, null);
    }

    /// <summary>The public addresses as Kestrel would choose them: <c>urls</c>, else <c>http_ports</c>, else its default.</summary>
    private static List<string> PublicUrls(IConfiguration configuration)
    {
        var urls = configuration[WebHostDefaults.ServerUrlsKey];
        if (!string.IsNullOrWhiteSpace(urls))
        {
            return [.. urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)];
        }

        var httpPorts = configuration[WebHostDefaults.HttpPortsKey];
        if (!string.IsNullOrWhiteSpace(httpPorts))
        {
            return [.. httpPorts.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(p => $"http://*:{p}")];
        }

        return ["http://localhost:5000"];
    }
}
