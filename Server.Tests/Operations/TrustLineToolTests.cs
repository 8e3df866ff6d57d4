using System.Runtime.InteropServices;

namespace TrustLine.Server.Tests.Operations;

/// <summary>The two ways the README installs the trustline command for admins and counsellors, done for real.</summary>
[NonParallelizable]
public sealed class TrustLineToolTests
{
    private DirectoryInfo folder = null!;

    [SetUp]
    public void SetUp() => folder = Directory.CreateTempSubdirectory("trustline-tool-");

    [TearDown]
    public void TearDown() => folder.Delete(recursive: true);

    [Test]
    public async Task PackedToolInstallsAndRuns()
    {
        var packages = Path.Combine(folder.FullName, "packages");
        var tools = Path.Combine(folder.FullName, "tools");

        var pack = await Tool.RunAsync("dotnet", Repository.Root, TimeSpan.FromMinutes(3), new Dictionary<string, string>(),
            "pack", Path.Combine("Cli", "Cli.csproj"), "-c", "Release", "-o", packages, "-nologo");
        Assert.That(pack.ExitCode, Is.Zero, pack.Output);
        var install = await Tool.RunAsync("dotnet", folder.FullName, TimeSpan.FromMinutes(2), new Dictionary<string, string>(),
            "tool", "install", "TrustLine.Cli", "--tool-path", tools, "--add-source", packages);
        Assert.That(install.ExitCode, Is.Zero, install.Output);

        var help = await Tool.RunAsync(Path.Combine(tools, "trustline"), folder.FullName, "--help");

        Assert.Multiple(() =>
        {
            Assert.That(help.ExitCode, Is.Zero, help.Output);
            Assert.That(help.Output, Does.Contain("organisation keys, a seeker chat, a responder console"));
        });
    }

    [Test]
    public async Task SelfContainedSingleFileRunsItsCryptoAndMakesAKey()
    {
        var rid = RuntimeInformation.RuntimeIdentifier.StartsWith("linux-", StringComparison.Ordinal) ? $"linux-{RuntimeInformation.OSArchitecture.ToString().ToLowerInvariant()}" : RuntimeInformation.RuntimeIdentifier;
        var output = Path.Combine(folder.FullName, rid);

        var publish = await Tool.RunAsync("dotnet", Repository.Root, TimeSpan.FromMinutes(4), new Dictionary<string, string>(),
            "publish", Path.Combine("Cli", "Cli.csproj"), "-c", "Release", "-r", rid, "--self-contained", "-p:PublishSingleFile=true", "-o", output, "-nologo");
        Assert.That(publish.ExitCode, Is.Zero, publish.Output);

        // A key needs libsodium, which the single file carries inside: proof the native part came along.
        var keygen = await RunWithInputAsync(Path.Combine(output, "trustline"), "a passphrase of length\n", "responder", "keygen", "--out", Path.Combine(folder.FullName, "k.key"));

        Assert.Multiple(() =>
        {
            Assert.That(keygen.ExitCode, Is.Zero, keygen.Output);
            Assert.That(keygen.Output, Does.Contain("Fingerprint: "));
            Assert.That(File.Exists(Path.Combine(folder.FullName, "k.pub")), Is.True);
        });
    }

    private async Task<(int ExitCode, string Output)> RunWithInputAsync(string file, string input, params string[] arguments)
    {
        var start = new System.Diagnostics.ProcessStartInfo(file)
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = folder.FullName,
        };
        start.Environment["DOTNET_BUNDLE_EXTRACT_BASE_DIR"] = Path.Combine(folder.FullName, "extract");
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = System.Diagnostics.Process.Start(start)!;
        await process.StandardInput.WriteAsync(input);
        process.StandardInput.Close();
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        return (process.ExitCode, await output + await errors);
    }
}
