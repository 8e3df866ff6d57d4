using System.Globalization;
using System.Net;
using System.Net.Sockets;
using TrustLine.Server.Tests.Infrastructure;

namespace TrustLine.Server.Tests.Operations;

/// <summary>The management listener: <c>/metrics</c> there and only there, off unless switched on.</summary>
public sealed class MetricsTests
{
    [Test]
    public async Task MetricsAreServedOnTheManagementPortAndNeverOnThePublicPort()
    {
        // A real process: the management listener is an address added to the node's own Urls, as in production.
        var management = FreePort.Next();
        await using var node = await ServerProcess.StartAsync(MetricsOn(management));
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        using var publicHttp = new HttpClient { BaseAddress = node.BaseAddress, Timeout = TimeSpan.FromSeconds(10) };
        var managementBase = new Uri($"http://127.0.0.1:{management.ToString(CultureInfo.InvariantCulture)}");

        using var scrape = await http.GetAsync(new Uri(managementBase, "/metrics"));
        var text = await scrape.Content.ReadAsStringAsync();
        using var publicMetrics = await publicHttp.GetAsync("/metrics");
        using var spoofed = new HttpRequestMessage(HttpMethod.Get, "/metrics");
        spoofed.Headers.Host = $"127.0.0.1:{management.ToString(CultureInfo.InvariantCulture)}";
        using var publicSpoofed = await publicHttp.SendAsync(spoofed);
        using var managementDirectory = await http.GetAsync(new Uri(managementBase, "/v1/directory"));
        using var managementReady = await http.GetAsync(new Uri(managementBase, "/health/ready"));
        using var publicDirectory = await publicHttp.GetAsync("/v1/directory");

        Assert.Multiple(() =>
        {
            Assert.That(scrape.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            Assert.That(text, Does.Contain("trustline_store_up"));
            Assert.That(publicMetrics.StatusCode, Is.EqualTo(HttpStatusCode.NotFound), "the public port must not answer /metrics");
            Assert.That(publicSpoofed.StatusCode, Is.EqualTo(HttpStatusCode.NotFound), "a forged Host header must not reach /metrics");
            Assert.That(managementDirectory.StatusCode, Is.EqualTo(HttpStatusCode.NotFound), "the management port serves metrics and health only");
            Assert.That(managementReady.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            Assert.That(publicDirectory.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        });
    }

    [Test]
    public async Task MetricsAreOffUnlessConfigured()
    {
        var management = FreePort.Next();
        var settings = new Dictionary<string, string?> { ["Operations:ManagementUrls"] = $"http://127.0.0.1:{management.ToString(CultureInfo.InvariantCulture)}" };
        await using var node = await TrustLineNode.StartAsync(NodeSettings.Embedded() with { Settings = settings });

        using var publicMetrics = await node.Http.GetAsync("/metrics");
        using var client = new TcpClient();
        var refused = Assert.CatchAsync<SocketException>(async () => await client.ConnectAsync(IPAddress.Loopback, management).WaitAsync(TimeSpan.FromSeconds(5)));

        Assert.Multiple(() =>
        {
            Assert.That(publicMetrics.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
            Assert.That(refused!.SocketErrorCode, Is.EqualTo(SocketError.ConnectionRefused), "nothing listens on the management port");
        });
    }

    [TestCase("Operations:ManagementUrls", "https://127.0.0.1:9464")]
    [TestCase("Operations:ManagementUrls", "http://127.0.0.1")]
    [TestCase("Operations:ManagementUrls", "")]
    [TestCase("Operations:SampleInterval", "00:10:00")]
    public void BadMetricsSettingStopsBootNamingTheSetting(string setting, string value)
    {
        var settings = MetricsOn(FreePort.Next());
        settings[setting] = value;

        var error = Assert.CatchAsync(async () => await TrustLineNode.StartAsync(NodeSettings.Embedded() with { Settings = settings }));

        Assert.That(Flatten(error), Does.Contain(setting));
    }

    [Test]
    public async Task ManagementUrlOnThePublicPortStopsBootNamingTheSetting()
    {
        var url = $"http://127.0.0.1:{FreePort.Next().ToString(CultureInfo.InvariantCulture)}";
        var environment = new Dictionary<string, string> { ["ASPNETCORE_ENVIRONMENT"] = "Production" };

        var (exitCode, output) = await Tool.RunAsync("dotnet", AppContext.BaseDirectory, TimeSpan.FromSeconds(60), environment,
            Path.Combine(AppContext.BaseDirectory, "TrustLine.Server.dll"), "--urls", url, "--Operations:Metrics=true", $"--Operations:ManagementUrls={url}");

        Assert.Multiple(() =>
        {
            Assert.That(exitCode, Is.Not.Zero, "the node must not start");
            Assert.That(output, Does.Contain("Operations:ManagementUrls shares a port with the public address"));
        });
    }

    internal static Dictionary<string, string?> MetricsOn(int managementPort) => new()
    {
        ["Operations:Metrics"] = "true",
        ["Operations:ManagementUrls"] = $"http://127.0.0.1:{managementPort.ToString(CultureInfo.InvariantCulture)}",
        ["Operations:SampleInterval"] = "00:00:00.200",
    };

    private static string Flatten(Exception? error)
    {
        var text = "";
        for (var e = error; e is not null; e = e.InnerException)
        {
            text += e.Message + (e is Microsoft.Extensions.Options.OptionsValidationException v ? string.Join(" ", v.Failures) : "") + "\n";
        }

        return text;
    }
}
