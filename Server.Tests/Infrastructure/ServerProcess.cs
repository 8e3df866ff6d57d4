using System.Diagnostics;
using System.Globalization;

namespace TrustLine.Server.Tests.Infrastructure;

/// <summary>
/// The server as its own operating-system process, so a test can kill it the hard way (no graceful
/// shutdown, no OnDisconnected): what a crashed node or a lost machine looks like to the others.
/// </summary>
public sealed class ServerProcess : IAsyncDisposable
{
    private readonly Process process;
    private readonly Queue<string> recent = new();

    private ServerProcess(Process process, Uri baseAddress)
    {
        this.process = process;
        BaseAddress = baseAddress;
    }

    public Uri BaseAddress { get; }

    /// <summary>The last lines the process wrote (standard output and error), for a failing test to show.</summary>
    public string RecentOutput
    {
        get
        {
            lock (recent)
            {
                return string.Join('\n', recent);
            }
        }
    }

    /// <summary>Starts the server and waits until it answers <paramref name="waitFor"/> with success.</summary>
    public static async Task<ServerProcess> StartAsync(IReadOnlyDictionary<string, string?> settings, string waitFor = "/health/ready")
    {
        var port = FreePort.Next();
        var start = StartInfo(port, settings);
        var process = Process.Start(start) ?? throw new InvalidOperationException("The server process did not start.");
        var server = new ServerProcess(process, new Uri($"http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}"));
        process.OutputDataReceived += (_, e) => server.Keep(e.Data);
        process.ErrorDataReceived += (_, e) => server.Keep(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        await Eventually.TrueAsync(async () =>
        {
            if (process.HasExited)
            {
                Assert.Fail($"The server process exited with code {process.ExitCode} during start.");
            }

            try
            {
                using var response = await http.GetAsync(new Uri(server.BaseAddress, waitFor));
                return response.IsSuccessStatusCode;
            }
            catch (HttpRequestException)
            {
                return false;
            }
        }, TimeSpan.FromSeconds(30), $"the server process answers {waitFor}");
        return server;
    }

    /// <summary>Runs the server until it exits by itself (bounded): its exit code, standard output and standard error.</summary>
    public static async Task<(int ExitCode, string Output, string Error)> RunToExitAsync(IReadOnlyDictionary<string, string?> settings, TimeSpan limit)
    {
        using var process = Process.Start(StartInfo(FreePort.Next(), settings)) ?? throw new InvalidOperationException("The server process did not start.");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        try
        {
            await process.WaitForExitAsync().WaitAsync(limit);
        }
        catch (TimeoutException)
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"The server process was still running after {limit}.");
        }

        return (process.ExitCode, await output, await error);
    }

    private static ProcessStartInfo StartInfo(int port, IReadOnlyDictionary<string, string?> settings)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "TrustLine.Server.dll"));
        start.ArgumentList.Add("--urls");
        start.ArgumentList.Add($"http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}");
        foreach (var (key, value) in settings)
        {
            start.ArgumentList.Add($"--{key}={value}");
        }

        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        return start;
    }

    private void Keep(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (recent)
        {
            recent.Enqueue(line);
            if (recent.Count > 200)
            {
                recent.Dequeue();
            }
        }
    }

    /// <summary>SIGKILL: the process is gone at once.</summary>
    public async Task KillAsync()
    {
        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
        }
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        process.Dispose();
    }
}
