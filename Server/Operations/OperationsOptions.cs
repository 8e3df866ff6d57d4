using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace TrustLine.Server.Operations;

/// <summary>What an operator can switch on (section <c>Operations</c>); everything here is off by default.</summary>
public sealed class OperationsOptions
{
    public const string Section = "Operations";

    /// <summary>Serves <c>/metrics</c> (Prometheus text format) on <see cref="ManagementUrls"/>, never on the public port.</summary>
    public bool Metrics { get; set; }

    /// <summary>Where the management listener binds, separated by <c>;</c>: plain http, its own port(s).</summary>
    public string ManagementUrls { get; set; } = "http://127.0.0.1:9464";

    /// <summary>How often each node reads the store for the queue and reaper gauges.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:05:00", ErrorMessage = "Operations:SampleInterval must be between 100 ms and 5 minutes.")]
    public TimeSpan SampleInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Serves <c>/debug/runtime</c> on the public port: process figures for the load harness only.</summary>
    public bool RuntimeDiagnostics { get; set; }

    /// <summary>Null when every URL is plain http with an explicit port; otherwise the sentence to stop boot with.</summary>
    internal static string? ParseManagementUrls(string? urls, out HashSet<int> ports)
    {
        ports = [];
        var parts = (urls ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (parts.Length == 0)
        {
            return "Operations:ManagementUrls must name at least one URL, e.g. http://127.0.0.1:9464, when Operations:Metrics is on.";
        }

        foreach (var part in parts)
        {
            // "http://+:9464" and "http://*:9464" are Kestrel's forms for every interface.
            var parsable = part.Replace("://+:", "://any:", StringComparison.Ordinal).Replace("://*:", "://any:", StringComparison.Ordinal);
            if (!Uri.TryCreate(parsable, UriKind.Absolute, out var uri) || uri.Scheme != Uri.UriSchemeHttp
                || uri.IsDefaultPort || uri.AbsolutePath != "/" || uri.Port == 0)
            {
                return $"Operations:ManagementUrls: '{part}' is not an http URL with an explicit, non-zero port (e.g. http://127.0.0.1:9464).";
            }

            ports.Add(uri.Port);
        }

        return null;
    }
}

/// <summary>Stops boot when metrics are on and the management listener is unusable or shares a public port.</summary>
internal sealed class OperationsOptionsValidator(ManagementListener listener) : IValidateOptions<OperationsOptions>
{
    public ValidateOptionsResult Validate(string? name, OperationsOptions options) =>
        options.Metrics && listener.Problem is { } problem ? ValidateOptionsResult.Fail(problem) : ValidateOptionsResult.Success;
}
