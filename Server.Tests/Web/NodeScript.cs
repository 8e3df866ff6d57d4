using System.Diagnostics;
using System.Text;
using System.Text.Json;

namespace TrustLine.Server.Tests.Web;

/// <summary>
/// A node script of <c>Web/</c> as a real process, talking JSON lines: commands on its standard input,
/// events (<c>{"event": …}</c>) on its standard output. An <c>error</c> event or an early exit fails the test.
/// </summary>
internal sealed class NodeScript : IAsyncDisposable
{
    private readonly Process process;
    private readonly List<JsonElement> events = [];
    private readonly StringBuilder errors = new();
    private readonly SemaphoreSlim changed = new(0);
    private int cursor;

    private NodeScript(Process process)
    {
        this.process = process;
        process.OutputDataReceived += (_, e) => OnLine(e.Data);
        process.ErrorDataReceived += (_, e) =>
        {
            lock (errors)
            {
                errors.AppendLine(e.Data);
            }
        };
        process.Exited += (_, _) => changed.Release();
        process.EnableRaisingEvents = true;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    /// <summary>The repository's <c>Web/</c> folder, found from the test binaries upwards.</summary>
    public static string WebDirectory
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "TrustLine.sln")))
                {
                    return Path.Combine(dir.FullName, "Web");
                }
            }

            throw new InvalidOperationException("The repository root (TrustLine.sln) was not found above the test binaries.");
        }
    }

    /// <summary>Starts <c>node Web/&lt;script&gt; args…</c>; fails with a sentence when Node or the built script is missing.</summary>
    public static NodeScript Start(string script, IReadOnlyDictionary<string, string>? environment, params string[] args)
    {
        var path = Path.Combine(WebDirectory, script);
        if (!File.Exists(path))
        {
            Assert.Fail($"{script} is not built: install Node.js 20+ and build (dotnet build Server builds Web/), or run 'npm ci && npm run build' in Web/.");
        }

        var start = new ProcessStartInfo("node")
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = WebDirectory,
            StandardOutputEncoding = Encoding.UTF8,
            StandardInputEncoding = new UTF8Encoding(false),
        };
        start.ArgumentList.Add(path);
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[key] = value;
        }

        try
        {
            return new NodeScript(Process.Start(start)!);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException("node was not found on the PATH: the web tests need Node.js 20+ (./scripts/test.sh installs it).", e);
        }
    }

    public string Errors
    {
        get
        {
            lock (errors)
            {
                return errors.ToString();
            }
        }
    }

    public async Task SendAsync(object command)
    {
        await process.StandardInput.WriteLineAsync(JsonSerializer.Serialize(command));
        await process.StandardInput.FlushAsync();
    }

    /// <summary>The next event named <paramref name="name"/> after the last one waited for.</summary>
    public async Task<JsonElement> WaitForAsync(string name, double seconds = 20)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));
        while (true)
        {
            lock (events)
            {
                foreach (var e in events.Skip(cursor))
                {
                    if (Name(e) == "error")
                    {
                        Assert.Fail($"The node script reported an error: {e.GetProperty("message").GetString()}\n{Errors}");
                    }
                }

                var index = events.FindIndex(cursor, e => Name(e) == name);
                if (index >= 0)
                {
                    cursor = index + 1;
                    return events[index];
                }
            }

            if (process.HasExited)
            {
                Assert.Fail($"The node script exited ({process.ExitCode}) before '{name}'.\n{Errors}");
            }

            try
            {
                await changed.WaitAsync(deadline.Token);
            }
            catch (OperationCanceledException)
            {
                Assert.Fail($"Timed out after {seconds} s waiting for '{name}'. Events: {string.Join(" | ", Snapshot().Select(e => e.GetRawText()[..Math.Min(120, e.GetRawText().Length)]))}\n{Errors}");
            }
        }
    }

    /// <summary>All events named <paramref name="name"/> so far (whatever the cursor).</summary>
    public IReadOnlyList<JsonElement> All(string name) => [.. Snapshot().Where(e => Name(e) == name)];

    /// <summary>Waits until <paramref name="count"/> events named <paramref name="name"/> have arrived in all.</summary>
    public async Task<IReadOnlyList<JsonElement>> WaitForCountAsync(string name, int count, double seconds = 20)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));
        while (All(name).Count < count)
        {
            if (All("error") is [var error, ..])
            {
                Assert.Fail($"The node script reported an error: {error.GetProperty("message").GetString()}\n{Errors}");
            }

            if (process.HasExited)
            {
                Assert.Fail($"The node script exited ({process.ExitCode}) with {All(name).Count} of {count} '{name}'.\n{Errors}");
            }

            try
            {
                await changed.WaitAsync(deadline.Token);
            }
            catch (OperationCanceledException)
            {
                Assert.Fail($"Timed out after {seconds} s waiting for {count} '{name}'; got {All(name).Count}.\n{Errors}");
            }
        }

        return All(name);
    }

    public async Task<int> WaitForExitAsync(double seconds = 30)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));
        try
        {
            await process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"The node script did not finish within {seconds} s.\n{Errors}");
        }

        return process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }

        process.Dispose();
        changed.Dispose();
    }

    private static string? Name(JsonElement e) => e.TryGetProperty("event", out var name) ? name.GetString() : null;

    private List<JsonElement> Snapshot()
    {
        lock (events)
        {
            return [.. events];
        }
    }

    private void OnLine(string? line)
    {
        if (string.IsNullOrWhiteSpace(line))
        {
            return;
        }

        try
        {
            using var document = JsonDocument.Parse(line);
            lock (events)
            {
                events.Add(document.RootElement.Clone());
            }
        }
        catch (JsonException)
        {
            lock (errors)
            {
                errors.AppendLine(line); // not an event: keep it for the failure message
            }
        }

        changed.Release();
    }
}
