using System.ComponentModel.DataAnnotations;

namespace TrustLine.Server.Limits;

/// <summary>What one client may cost this node (section <c>Limits</c>). No limit keys on who the client is.</summary>
public sealed class LimitOptions
{
    public const string Section = "Limits";

    /// <summary>How long the server waits for a peer to answer its WebSocket close frame before cutting the connection.</summary>
    public static readonly TimeSpan CloseTimeout = TimeSpan.FromSeconds(2);

    /// <summary>Open connections this node accepts at once (HTTP and WebSocket); past it, new ones are refused.</summary>
    [Range(10, 1_000_000, ErrorMessage = "Limits:MaxConnections must be between 10 and 1000000.")]
    public int MaxConnections { get; set; } = 20_000;

    /// <summary>A hub connection that sends nothing (not even a ping) for this long is closed.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:05:00", ErrorMessage = "Limits:ClientTimeout must be between 1 second and 5 minutes.")]
    public TimeSpan ClientTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How often the server pings its clients; the clients' own ping interval must stay below <see cref="ClientTimeout"/>.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:02:00", ErrorMessage = "Limits:KeepAliveInterval must be between 1 second and 2 minutes.")]
    public TimeSpan KeepAliveInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>A WebSocket that does not complete the SignalR handshake within this is closed.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:01:00", ErrorMessage = "Limits:HandshakeTimeout must be between 1 second and 1 minute.")]
    public TimeSpan HandshakeTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Hub calls one connection may make in a burst (a resend after a reconnect is one call per envelope).</summary>
    [Range(1, 100_000, ErrorMessage = "Limits:CallBurst must be between 1 and 100000.")]
    public int CallBurst { get; set; } = 400;

    /// <summary>Hub calls per second one connection may keep up.</summary>
    [Range(0.1, 100_000, ErrorMessage = "Limits:CallsPerSecond must be between 0.1 and 100000.")]
    public double CallsPerSecond { get; set; } = 50;

    /// <summary>The largest HTTP request body (sign-in is under 1 KiB; hubs use WebSocket frames, limited apart).</summary>
    [Range(1024, 1_048_576, ErrorMessage = "Limits:MaxRequestBodyBytes must be between 1024 and 1048576.")]
    public int MaxRequestBodyBytes { get; set; } = 16 * 1024;

    /// <summary>
    /// Web origins (<c>https://help.example.org</c>) whose pages may open hub connections or sign in, besides
    /// the server's own. Requests without an <c>Origin</c> header (apps, the CLI) are always allowed.
    /// </summary>
    public List<string> AllowedOrigins { get; set; } = [];

    /// <summary>
    /// Places in the queues that connections from one network address may hold through this node at once; 0 turns
    /// the cap off. The address is held only as a keyed hash (<see cref="AddressTags"/>), in memory.
    /// </summary>
    [Range(0, 100_000, ErrorMessage = "Limits:PlacesPerAddress must be between 0 (off) and 100000.")]
    public int PlacesPerAddress { get; set; } = 16;

    /// <summary>
    /// Seeker hub connections one network address (as a keyed hash) may have open on this node at once; 0 turns
    /// the cap off. Past it a new connection is refused with 429 before its WebSocket opens.
    /// </summary>
    [Range(0, 1_000_000, ErrorMessage = "Limits:ConnectionsPerAddress must be between 0 (off) and 1000000.")]
    public int ConnectionsPerAddress { get; set; } = 64;

    /// <summary>How long the key that hashes addresses lives before a new random one replaces it.</summary>
    [Range(typeof(TimeSpan), "00:01:00", "1.00:00:00", ErrorMessage = "Limits:AddressKeyLifetime must be between 1 minute and 1 day.")]
    public TimeSpan AddressKeyLifetime { get; set; } = TimeSpan.FromHours(1);

    /// <summary>
    /// Addresses or networks (<c>172.30.0.0/24</c>) of reverse proxies (nginx) whose <c>X-Forwarded-For</c> names the client; from any other
    /// address the header is ignored. Empty: loopback only (nginx on the same host as the node).
    /// </summary>
    public List<string> TrustedProxies { get; set; } = [];
}
