using System.Net;
using Microsoft.Extensions.Options;
using TrustLine.Server.Tests.Infrastructure;

namespace TrustLine.Server.Tests.Operations;

public sealed class HealthTests
{
    [Test]
    public async Task EmbeddedNodeIsLiveAndReadyAndSaysItIsSingleNode()
    {
        var logs = new LogCapture();
        await using var node = await TrustLineNode.StartAsync(NodeSettings.Embedded() with { Logs = logs });

        using var live = await node.Http.GetAsync("/health/live");
        using var ready = await node.Http.GetAsync("/health/ready");

        Assert.Multiple(() =>
        {
            Assert.That(live.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            Assert.That(ready.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            Assert.That(logs.Entries.Count(e => e.Text.Contains("embedded single-node", StringComparison.Ordinal)), Is.EqualTo(1));
            Assert.That(logs.Entries.Any(e => e.Text.StartsWith("Store: Redis", StringComparison.Ordinal)), Is.False);
        });
    }

    [Test]
    public async Task RedisNodeIsReadyWhileRedisAnswers()
    {
        var logs = new LogCapture();
        await using var node = await TrustLineNode.StartAsync(NodeSettings.WithRedis() with { Logs = logs });

        using var ready = await node.Http.GetAsync("/health/ready");

        Assert.Multiple(() =>
        {
            Assert.That(ready.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            Assert.That(logs.Entries.Count(e => e.Text.StartsWith("Store: Redis", StringComparison.Ordinal)), Is.EqualTo(1));
        });
    }

    [Test]
    public async Task ReadyTurnsFalseWhenRedisStopsAndTrueWhenItReturns()
    {
        await using var redis = await RedisServer.StartAsync();
        await using var node = await TrustLineNode.StartAsync(new NodeSettings { Redis = redis.Configuration });
        await Eventually.TrueAsync(() => IsReadyAsync(node), TimeSpan.FromSeconds(10), "the node is ready");

        await redis.StopAsync();
        await Eventually.TrueAsync(async () => !await IsReadyAsync(node), TimeSpan.FromSeconds(15), "the node reports not ready");
        using (var live = await node.Http.GetAsync("/health/live"))
        {
            Assert.That(live.StatusCode, Is.EqualTo(HttpStatusCode.OK), "a Redis outage must not make the node look dead");
        }

        await redis.StartAgainAsync();
        await Eventually.TrueAsync(() => IsReadyAsync(node), TimeSpan.FromSeconds(40), "the node is ready again");
    }

    [TestCase("Redis:Configuration", "127.0.0.1:6379,connectTimeout=soon")]
    [TestCase("Redis:KeyPrefix", "has spaces!")]
    [TestCase("Redis:ProbeTimeout", "00:10:00")]
    public void BadSettingStopsBootNamingTheSetting(string setting, string value)
    {
        var settings = NodeSettings.Embedded() with { Settings = new Dictionary<string, string?> { [setting] = value } };

        var error = Assert.CatchAsync(async () => await TrustLineNode.StartAsync(settings));

        Assert.That(Flatten(error), Does.Contain(setting));
    }

    [Test]
    public async Task BadSettingsEndTheProcessWithOneSentenceEachAndExitCodeTwo()
    {
        var (exitCode, output, error) = await ServerProcess.RunToExitAsync(new Dictionary<string, string?>
        {
            ["Redis:KeyPrefix"] = "has spaces!",
            ["Sessions:Grace"] = "00:00:00",
        }, TimeSpan.FromSeconds(30));

        var lines = error.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Multiple(() =>
        {
            Assert.That(exitCode, Is.EqualTo(2), "a bad setting is not a crash (134 is an abort)");
            Assert.That(lines, Has.Length.EqualTo(2));
            Assert.That(lines, Has.Some.StartsWith("trustline-server: bad setting: Redis:KeyPrefix "));
            Assert.That(lines, Has.Some.StartsWith("trustline-server: bad setting: Sessions:Grace "));
            Assert.That(output + error, Does.Not.Contain(" at "), "no stack trace");
        });
    }

    [Test]
    public async Task NodeWhoseRedisIsDownStartsNotReadyAndBecomesReadyWhenRedisAnswers()
    {
        await using var redis = await RedisServer.StartAsync();
        await redis.StopAsync();

        await using var node = await ServerProcess.StartAsync(new Dictionary<string, string?> { ["Redis:Configuration"] = redis.Configuration }, waitFor: "/health/live");
        using var http = new HttpClient { BaseAddress = node.BaseAddress, Timeout = TimeSpan.FromSeconds(5) };
        using (var ready = await http.GetAsync("/health/ready"))
        {
            Assert.That(ready.StatusCode, Is.EqualTo(HttpStatusCode.ServiceUnavailable));
        }

        await redis.StartAgainAsync();
        await Eventually.TrueAsync(async () =>
        {
            using var ready = await http.GetAsync("/health/ready");
            return ready.StatusCode == HttpStatusCode.OK;
        }, TimeSpan.FromSeconds(40), "the node is ready once Redis answers");
    }

    private static async Task<bool> IsReadyAsync(TrustLineNode node)
    {
        using var response = await node.Http.GetAsync("/health/ready");
        return response.StatusCode == HttpStatusCode.OK;
    }

    private static string Flatten(Exception? error)
    {
        var text = "";
        for (var e = error; e is not null; e = e.InnerException)
        {
            text += e.Message + (e is OptionsValidationException v ? string.Join(" ", v.Failures) : "") + "\n";
        }

        return text;
    }
}
