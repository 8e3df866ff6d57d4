using System.Diagnostics;

namespace TrustLine.Server.Tests.Operations;

/// <summary>The files in deploy/ as the tools that read them see them.</summary>
public sealed class DeployFilesTests
{
    [Test]
    public async Task PromtoolAcceptsTheConfigAndTheRulesAndTheAlertsFireAsTheirTestsSay()
    {
        var promtool = Tool.Find("promtool") ?? Tool.Missing("promtool (Debian package prometheus; scripts/test.sh installs it)");
        var folder = Path.Combine(Repository.Root, "deploy", "prometheus");

        var rules = await Tool.RunAsync(promtool, folder, "check", "rules", "alerts.yml", "opening-hours.yml");
        var config = await Tool.RunAsync(promtool, folder, "check", "config", "prometheus.yml");
        var tests = await Tool.RunAsync(promtool, folder, "test", "rules", "alerts.test.yml");

        Assert.Multiple(() =>
        {
            Assert.That(rules.ExitCode, Is.Zero, rules.Output);
            Assert.That(rules.Output, Does.Contain("SUCCESS: 10 rules found"));
            Assert.That(config.ExitCode, Is.Zero, config.Output);
            Assert.That(tests.ExitCode, Is.Zero, tests.Output);
            Assert.That(tests.Output, Does.Contain("SUCCESS"));
        });
    }

    [Test]
    public void KubernetesRedisConfigurationIsTheSameAsTheOneTheSmokeTestRuns()
    {
        var original = File.ReadAllLines(Path.Combine(Repository.Root, "deploy", "redis", "redis.conf"));
        var copy = File.ReadAllLines(Path.Combine(Repository.Root, "deploy", "kubernetes", "base", "redis.conf"));

        // The copy starts with one line saying it is a copy; kustomize reads only files inside its folder.
        Assert.That(copy.Skip(1), Is.EqualTo(original));
    }

    [Test]
    public async Task KustomizeBuildsTheBaseAndTheIngressExample()
    {
        var kubectl = Tool.Find("kubectl") ?? Tool.Missing("kubectl (for 'kubectl kustomize'; not a Debian package)");

        var built = await Tool.RunAsync(kubectl, Repository.Root, "kustomize", Path.Combine("deploy", "kubernetes", "ingress-example"));

        Assert.Multiple(() =>
        {
            Assert.That(built.ExitCode, Is.Zero, built.Output);
            foreach (var kind in new[] { "Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy", "Ingress", "ConfigMap" })
            {
                Assert.That(built.Output, Does.Contain($"kind: {kind}\n"), kind);
            }

            Assert.That(built.Output, Does.Contain("readOnlyRootFilesystem: true"));
            Assert.That(built.Output, Does.Contain("maxmemory-policy noeviction"));
        });
    }

    [Test]
    public async Task SystemdUnitIsHardened()
    {
        var analyze = Tool.Find("systemd-analyze") ?? Tool.Missing("systemd-analyze (Debian package systemd)");
        var folder = Directory.CreateTempSubdirectory("trustline-unit-");
        try
        {
            File.Copy(Path.Combine(Repository.Root, "deploy", "systemd", "trustline.service"), Path.Combine(folder.FullName, "trustline.service"));

            var security = await Tool.RunAsync(analyze, folder.FullName, "security", "--offline=true", "--no-pager", "trustline.service");

            var exposure = System.Text.RegularExpressions.Regex.Match(security.Output, @"Overall exposure level for trustline\.service: (\d+\.\d)");
            Assert.That(exposure.Success, Is.True, security.Output);
            Assert.That(double.Parse(exposure.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), Is.LessThanOrEqualTo(2.0),
                "systemd rates the unit's exposure (0 is best, 10 worst)");
        }
        finally
        {
            folder.Delete(recursive: true);
        }
    }
}

/// <summary>The repository the tests were built from (the folder with TrustLine.sln).</summary>
internal static class Repository
{
    public static string Root { get; } = Find();

    private static string Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "TrustLine.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("The tests do not run from inside the repository.");
    }
}

/// <summary>Runs a command-line tool with a deadline and collects what it printed.</summary>
internal static class Tool
{
    public static string? Find(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, name)).FirstOrDefault(File.Exists);

    public static string Missing(string what)
    {
        Assert.Ignore($"Skipped: {what} is not installed.");
        return "";
    }

    public static async Task<(int ExitCode, string Output)> RunAsync(string file, string workingDirectory, params string[] arguments) =>
        await RunAsync(file, workingDirectory, TimeSpan.FromSeconds(60), new Dictionary<string, string>(), arguments);

    public static async Task<(int ExitCode, string Output)> RunAsync(string file, string workingDirectory, TimeSpan timeout, IReadOnlyDictionary<string, string> environment, params string[] arguments)
    {
        var start = new ProcessStartInfo(file)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = workingDirectory,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        foreach (var (key, value) in environment)
        {
            start.Environment[key] = value;
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"{file} did not start.");
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        try
        {
            await process.WaitForExitAsync().WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"{Path.GetFileName(file)} did not finish within {timeout.TotalSeconds:0} s.\n{await output}\n{await errors}");
        }

        return (process.ExitCode, await output + await errors);
    }
}
