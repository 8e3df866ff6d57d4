using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace TrustLine.Server.Storage;

/// <summary>Where session state lives. Empty <see cref="Configuration"/> means the embedded single-node store.</summary>
public sealed class RedisOptions
{
    public const string Section = "Redis";

    /// <summary>A StackExchange.Redis configuration string, e.g. <c>127.0.0.1:6379</c>; empty for the embedded store.</summary>
    public string? Configuration { get; set; }

    /// <summary>Prefix of every key this deployment writes, so several deployments (or tests) can share one Redis.</summary>
    [Required(AllowEmptyStrings = false)]
    [RegularExpression("^[A-Za-z0-9_.-]{1,32}$", ErrorMessage = "Redis:KeyPrefix must be 1 to 32 letters, digits, '.', '_' or '-'.")]
    public string KeyPrefix { get; set; } = "tl";

    /// <summary>How long a health probe waits for Redis to answer a PING.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:01:00", ErrorMessage = "Redis:ProbeTimeout must be between 100 ms and 1 minute.")]
    public TimeSpan ProbeTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Reads Redis replies on StackExchange.Redis's own socket threads (its default) instead of the .NET thread pool.
    /// Off: the pool costs several times less CPU per command; on only if something blocks the pool.
    /// </summary>
    public bool DedicatedSocketThreads { get; set; }

    public bool IsConfigured => !string.IsNullOrWhiteSpace(Configuration);
}

/// <summary>Refuses a Redis configuration string that StackExchange.Redis cannot parse, naming the setting.</summary>
internal sealed class RedisOptionsValidator : IValidateOptions<RedisOptions>
{
    public ValidateOptionsResult Validate(string? name, RedisOptions options)
    {
        if (!options.IsConfigured)
        {
            return ValidateOptionsResult.Success;
        }

        try
        {
            var parsed = ConfigurationOptions.Parse(options.Configuration!);
            if (parsed.EndPoints.Count == 0)
            {
                return ValidateOptionsResult.Fail("Redis:Configuration names no endpoint; give host:port, e.g. 127.0.0.1:6379, or leave it empty for the embedded store.");
            }
        }
        catch (ArgumentException ex)
        {
            return ValidateOptionsResult.Fail($"Redis:Configuration cannot be parsed: {ex.Message}");
        }

        return ValidateOptionsResult.Success;
    }
}
