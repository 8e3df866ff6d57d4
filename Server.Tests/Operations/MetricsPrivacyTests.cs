using System.Globalization;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;
using TrustLine.Client;
using TrustLine.Protocol.Contracts;
using TrustLine.Protocol.Crypto;
using TrustLine.Server.Operations.Metrics;
using TrustLine.Server.Tests.Crypto;
using TrustLine.Server.Tests.Infrastructure;

namespace TrustLine.Server.Tests.Operations;

/// <summary>
/// Metrics as a privacy property: after whole conversations, resumes and refusals on two real nodes, every
/// label of every series on <c>/metrics</c> is from a closed set, and nothing that names a session, a
/// connection, an address or a counsellor appears anywhere in the scrape.
/// </summary>
public sealed partial class MetricsPrivacyTests
{
    // Every command and query the server's mediator handles: the closed set of command labels.
    private static readonly string[] Commands = [.. typeof(TrustLineMetrics).Assembly.GetTypes()
        .Where(t => typeof(Mediator.IMessage).IsAssignableFrom(t) && t is { IsInterface: false, IsAbstract: false })
        .Select(MetricsBehaviour.CommandName).Concat(MetricsBehaviour.Direct)];

    // Label keys that come with the exporter itself: the meter's name, histogram bounds, and the resource.
    private static readonly string[] ExporterKeys =
        ["otel_scope_name", "otel_scope_version", "le", "service_name", "telemetry_sdk_name", "telemetry_sdk_language", "telemetry_sdk_version"];

    [Test]
    public async Task AfterConversationsResumesAndRefusalsEveryLabelIsFromAClosedSet()
    {
        using var org = new TestOrganisation(orgId: RandomNumberGenerator.GetBytes(16), issuerNotBefore: World.Now - 3600, issuerNotAfter: World.Now + (80 * 86400),
            responderNotBefore: World.Now - 3600, responderNotAfter: World.Now + (10 * 86400), fresh: true);
        var orgHex = Convert.ToHexStringLower(org.OrgId);
        var settings = World.OrganisationSettings(org);
        settings["Redis:Configuration"] = TestRedis.Server.Configuration;
        settings["Redis:KeyPrefix"] = TestRedis.NewPrefix();
        var managementPorts = new[] { FreePort.Next(), FreePort.Next() };
        await using var first = await ServerProcess.StartAsync(With(settings, MetricsTests.MetricsOn(managementPorts[0])));
        await using var second = await ServerProcess.StartAsync(With(settings, MetricsTests.MetricsOn(managementPorts[1])));
        var options = new ClientOptions
        {
            FallbackServers = [second.BaseAddress],
            ReconnectDelays = [TimeSpan.Zero, TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(250), TimeSpan.FromMilliseconds(500), TimeSpan.FromSeconds(1)],
        };
        var secrets = new List<string>();

        // A whole conversation across both nodes, with a seeker resume on the other node; the seeker ends it.
        using var credentials = org.Credentials();
        await using var responder = await ResponderClient.SignInAsync(second.BaseAddress, credentials, options).WaitAsync(TimeSpan.FromSeconds(15));
        await using (var seeker = new SeekerClient(first.BaseAddress, org.Pin, options: options))
        {
            var seekerInbox = new Inbox<string>();
            seeker.MessageReceived += seekerInbox.Add;
            await seeker.OpenAsync("nl").WaitAsync(TimeSpan.FromSeconds(15));
            secrets.Add(seeker.SessionId.ToString("N"));
            var session = (await responder.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(15)))!;
            var responderInbox = new Inbox<string>();
            session.MessageReceived += responderInbox.Add;
            await session.WhenEstablished.WaitAsync(TimeSpan.FromSeconds(15));
            await seeker.SendTextAsync("hallo");
            await session.SendTextAsync("hoi");
            await responderInbox.WaitForAsync(1, "text at the responder");
            await seekerInbox.WaitForAsync(1, "text at the seeker");
            await seeker.SimulateNetworkLossAsync(preferServer: 1);
            await session.SendTextAsync("na het herstel");
            await seekerInbox.WaitForAsync(2, "text after the resume");
            secrets.Add(seeker.ResponderFingerprint ?? Certificate.Fingerprint(org.ResponderPublic));
            await seeker.CloseAsync().WaitAsync(TimeSpan.FromSeconds(10));
        }

        // A second one, which the counsellor ends.
        await using (var seeker = new SeekerClient(first.BaseAddress, org.Pin, options: options))
        {
            await seeker.OpenAsync("en").WaitAsync(TimeSpan.FromSeconds(15));
            secrets.Add(seeker.SessionId.ToString("N"));
            var session = (await responder.TakeNextAsync().WaitAsync(TimeSpan.FromSeconds(15)))!;
            await session.WhenEstablished.WaitAsync(TimeSpan.FromSeconds(15));
            await session.CloseAsync().WaitAsync(TimeSpan.FromSeconds(10));
        }

        // Refusals: a language the organisation does not list, an organisation this server does not serve,
        // a malformed envelope, and a resume of a session that never was.
        await using (var seeker = new SeekerClient(first.BaseAddress, org.Pin, options: options))
        {
            Assert.That(await CodeOfAsync(seeker.OpenAsync("xx")), Is.EqualTo(ErrorCodes.UnknownRouting));
        }

        await using (var seeker = new SeekerClient(first.BaseAddress, new OrganisationPin(RandomNumberGenerator.GetBytes(16), [org.RootPublic]), options: options))
        {
            Assert.That(await CodeOfAsync(seeker.OpenAsync("nl")), Is.EqualTo(ErrorCodes.UnknownOrganisation));
        }

        await using var raw = new HubConnectionBuilder()
            .WithUrl(new Uri(first.BaseAddress, Routes.SeekerHub), HttpTransportType.WebSockets, o => o.SkipNegotiation = true)
            .AddMessagePackProtocol()
            .Build();
        await raw.StartAsync().WaitAsync(TimeSpan.FromSeconds(10));
        // (Without negotiation the client never learns its connection id; the identifier check below covers it.)
        Assert.That(await CodeOfAsync(raw.InvokeAsync<SendResult>(SeekerHubMethods.Send, new byte[299])), Is.EqualTo(ErrorCodes.BadEnvelope));
        var strayId = RandomNumberGenerator.GetBytes(16);
        secrets.Add(Convert.ToHexStringLower(strayId));
        Assert.That(await CodeOfAsync(raw.InvokeAsync<ResumeSessionResult>(SeekerHubMethods.ResumeSession,
            new ResumeSessionRequest { SessionId = strayId, ResumeToken = RandomNumberGenerator.GetBytes(32) })), Is.EqualTo(ErrorCodes.ResumeRefused));

        // Both nodes, once the samplers have read the store after all of that.
        var scrapes = new string[2];
        var series = new List<Series>();
        await Eventually.TrueAsync(async () =>
        {
            for (var i = 0; i < 2; i++)
            {
                scrapes[i] = await ScrapeAsync(managementPorts[i]);
            }

            series = [.. scrapes.SelectMany(Parse)];
            return Has(series, "trustline_sessions_ended_total", "reason", EndReasons.ResponderClosed)
                && Has(series, "trustline_responders_signed_in", "organisation", orgHex, value => value >= 1);
        }, TimeSpan.FromSeconds(20), "both nodes show the ended sessions and the signed-in counsellor");

        var closed = new Dictionary<string, HashSet<string>>
        {
            ["organisation"] = [orgHex, TrustLineMetrics.Other],
            ["reason"] = [EndReasons.SeekerClosed, EndReasons.SeekerLeftQueue, EndReasons.ResponderClosed, EndReasons.SeekerAbandoned,
                EndReasons.ResponderAbandoned, EndReasons.Idle, EndReasons.MaxLifetime, EndReasons.QueueHoldExpired, TrustLineMetrics.Other],
            ["code"] = [.. typeof(ErrorCodes).GetFields().Select(f => (string)f.GetRawConstantValue()!), TrustLineMetrics.Other],
            ["size"] = ["256", "1k", "4k", "16k", TrustLineMetrics.Other],
            ["outcome"] = ["ok", "refused", "error", "resumed", .. typeof(SessionOutcomes).GetFields().Where(f => f.IsLiteral).Select(f => (string)f.GetRawConstantValue()!), TrustLineMetrics.Other],
            ["command"] = [.. Commands],
            ["party"] = ["seeker", "responder"],
            ["operation"] = ["queue_length", "live_sessions"],
            ["source"] = [.. Commands, "sampler"],
        };
        var allowedKeys = TrustLineMetrics.LabelKeys.Concat(MetricsSetup.FrameworkLabelKeys).Select(k => k.Replace('.', '_')).Concat(ExporterKeys).ToHashSet();
        var labels = series.SelectMany(s => s.Labels.Select(l => (s.Name, l.Key, l.Value))).ToList();

        Assert.Multiple(() =>
        {
            // The scrape shows what an operator needs after a conversation.
            Assert.That(Has(series, "trustline_sessions_opened_total", "organisation", orgHex, v => v >= 2), Is.True, "sessions opened");
            Assert.That(Has(series, "trustline_sessions_ended_total", "reason", EndReasons.SeekerClosed), Is.True, "ended by the seeker");
            Assert.That(Has(series, "trustline_resumes_total", "outcome", "resumed"), Is.True, "a resume");
            Assert.That(Has(series, "trustline_resumes_total", "outcome", "refused"), Is.True, "a refused resume");
            foreach (var code in new[] { ErrorCodes.UnknownRouting, ErrorCodes.UnknownOrganisation, ErrorCodes.BadEnvelope, ErrorCodes.ResumeRefused })
            {
                Assert.That(Has(series, "trustline_refusals_total", "code", code), Is.True, $"refusal {code}");
            }

            Assert.That(Has(series, "trustline_envelopes_relayed_total", "size", "256", v => v >= 3), Is.True, "envelopes relayed");
            Assert.That(Has(series, "trustline_queue_wait_seconds_bucket", "le", "3600"), Is.True, "queue wait buckets up to an hour");
            Assert.That(Has(series, "trustline_queue_wait_seconds_bucket", "le", "1"), Is.True, "queue wait buckets from a second");
            Assert.That(Has(series, "trustline_sessions_first_answer_seconds_count", "organisation", orgHex), Is.True, "time to first answer");
            Assert.That(Has(series, "trustline_sessions_waiting", "organisation", orgHex), Is.True, "waiting per organisation");
            Assert.That(Has(series, "trustline_responders_available", "organisation", orgHex), Is.True, "available counsellors");
            Assert.That(Has(series, "trustline_certificates_issuer_expiry_seconds", "organisation", orgHex, v => v == org.IssuerCertificate.NotAfter), Is.True, "issuer expiry");
            Assert.That(Commands, Does.Contain("SendEnvelope").And.Contain("OpenSession"), "the command labels come from the mediator's messages and the direct send path");
            Assert.That(Has(series, "trustline_commands_duration_seconds_count", "command", "SendEnvelope"), Is.True, "command durations");
            foreach (var name in new[] { "trustline_sessions_active", "trustline_store_up", "trustline_reaper_lag_seconds", "trustline_store_duration_seconds_count",
                "kestrel_active_connections", "http_server_request_duration_seconds_count", "signalr_server_active_connections", "dotnet_process_cpu_time_seconds_total" })
            {
                Assert.That(series.Any(s => s.Name == name), Is.True, $"series {name}");
            }

            // Every series the alert rules and the dashboard use is on the scrape, under that name.
            var scraped = series.Select(s => s.Name).ToHashSet();
            Assert.That(SeriesUsedByDeployFiles().Where(name => !scraped.Contains(name) && !EventOnly.Any(name.StartsWith)), Is.Empty,
                "series in deploy/prometheus/alerts.yml or deploy/grafana/trustline.json that the nodes do not export");

            // Labels only from closed sets.
            Assert.That(labels.Where(l => !allowedKeys.Contains(l.Key)).Select(l => $"{l.Name}: {l.Key}").Distinct(), Is.Empty, "label keys outside the allowed set");
            Assert.That(labels.Where(l => closed.TryGetValue(l.Key, out var set) && !set.Contains(l.Value)).Select(l => $"{l.Name}: {l.Key}={l.Value}").Distinct(), Is.Empty,
                "label values outside their closed set");
            Assert.That(labels.Where(l => !closed.ContainsKey(l.Key) && LooksLikeAnIdentifier(l.Value)).Select(l => $"{l.Name}: {l.Key}={l.Value}").Distinct(), Is.Empty,
                "label values that look like an address, an id or a token");

            // Nothing that names a session, a connection, an address or the counsellor, anywhere in the text.
            foreach (var scrape in scrapes)
            {
                Assert.That(IpAddress().IsMatch(scrape), Is.False, "an IP address in the scrape");
                Assert.That(secrets.Where(s => scrape.Contains(s, StringComparison.OrdinalIgnoreCase)
                    || scrape.Contains(Bare(s), StringComparison.OrdinalIgnoreCase)), Is.Empty, "a session id, connection id or fingerprint in the scrape");
            }
        });
    }

    // Series that appear only once their event has happened: no admission puzzle yet, no store failure,
    // no envelope for an absent recipient in this scenario.
    private static readonly string[] EventOnly = ["trustline_puzzles_", "trustline_store_errors_", "trustline_envelopes_buffered_"];

    private static IEnumerable<string> SeriesUsedByDeployFiles()
    {
        var text = File.ReadAllText(Path.Combine(Repository.Root, "deploy", "prometheus", "alerts.yml"))
            + File.ReadAllText(Path.Combine(Repository.Root, "deploy", "grafana", "trustline.json"));
        return MetricName().Matches(text).Select(m => m.Value).Distinct();
    }

    internal static Dictionary<string, string?> With(Dictionary<string, string?> a, Dictionary<string, string?> b)
    {
        var all = new Dictionary<string, string?>(a);
        foreach (var (key, value) in b)
        {
            all[key] = value;
        }

        return all;
    }

    internal static async Task<string> ScrapeAsync(int port)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        return await http.GetStringAsync(new Uri($"http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}/metrics"));
    }

    /// <summary>The Prometheus text format, one sample a line: <c>name{key="value",…} number</c>.</summary>
    internal static IEnumerable<Series> Parse(string text)
    {
        foreach (var line in text.Split('\n'))
        {
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }

            var match = SampleLine().Match(line);
            Assert.That(match.Success, Is.True, $"a sample line the test cannot read: {line}");
            var labels = LabelPair().Matches(match.Groups["labels"].Value).ToDictionary(m => m.Groups["key"].Value, m => m.Groups["value"].Value);
            var number = match.Groups["value"].Value switch
            {
                "+Inf" => double.PositiveInfinity,
                "-Inf" => double.NegativeInfinity,
                var v => double.Parse(v, CultureInfo.InvariantCulture),
            };
            yield return new Series(match.Groups["name"].Value, labels, number);
        }
    }

    private static bool Has(List<Series> series, string name, string key, string value, Func<double, bool>? holds = null) =>
        series.Any(s => s.Name == name && s.Labels.GetValueOrDefault(key) == value && (holds?.Invoke(s.Value) ?? true));

    private static async Task<string> CodeOfAsync(Task call)
    {
        try
        {
            await call.WaitAsync(TimeSpan.FromSeconds(15));
            return "accepted";
        }
        catch (TrustLineException e)
        {
            return e.Code;
        }
        catch (HubException e)
        {
            var text = e.Message[(e.Message.IndexOf("HubException: ", StringComparison.Ordinal) is var i and >= 0 ? i + 14 : 0)..];
            return text[..text.IndexOf(':', StringComparison.Ordinal)];
        }
    }

    // A fingerprint is written "1a2b 3c4d …"; in the scrape it would be bare hex.
    private static string Bare(string secret) => secret.Replace(" ", "", StringComparison.Ordinal);

    private static bool LooksLikeAnIdentifier(string value) =>
        IpAddress().IsMatch(value) || LongHexOrBase64().IsMatch(value) || Guid.TryParse(value, out _);

    [GeneratedRegex(@"\b(trustline|kestrel|signalr|dotnet|http_server)_[a-z_]+\b")]
    private static partial Regex MetricName();

    [GeneratedRegex(@"\b(\d{1,3}\.){3}\d{1,3}\b|\[?[0-9a-fA-F]{0,4}(:[0-9a-fA-F]{0,4}){2,7}\]?:\d+|::1")]
    private static partial Regex IpAddress();

    // Long hex, or a long base64 run with both digits and letters (a type name such as OperationCanceledException has no digit).
    [GeneratedRegex(@"[0-9a-fA-F]{16,}|(?=[A-Za-z0-9+_-]*[0-9])(?=[A-Za-z0-9+_-]*[A-Za-z])[A-Za-z0-9+_-]{20,}")]
    private static partial Regex LongHexOrBase64();

    [GeneratedRegex(@"^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>.*)\})? (?<value>[^ ]+)( \d+)?$")]
    private static partial Regex SampleLine();

    [GeneratedRegex(@"(?<key>[a-zA-Z_][a-zA-Z0-9_]*)=""(?<value>(?:[^""\\]|\\.)*)""")]
    private static partial Regex LabelPair();

    internal sealed record Series(string Name, IReadOnlyDictionary<string, string> Labels, double Value);
}
