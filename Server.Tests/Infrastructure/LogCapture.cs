using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace TrustLine.Server.Tests.Infrastructure;

/// <summary>
/// Keeps every formatted log line of a node for inspection: the message, its structured values, the values
/// of every scope it was written in (what a sink with scopes on would write), and the exception.
/// </summary>
public sealed class LogCapture : ILoggerProvider, ISupportExternalScope
{
    private readonly ConcurrentQueue<CapturedLog> entries = new();
    private IExternalScopeProvider scopes = new LoggerExternalScopeProvider();

    public IReadOnlyList<CapturedLog> Entries => [.. entries];

    public ILogger CreateLogger(string categoryName) => new Logger(categoryName, this);

    public void SetScopeProvider(IExternalScopeProvider scopeProvider) => scopes = scopeProvider;

    public void Dispose()
    {
    }

    private sealed class Logger(string category, LogCapture capture) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => capture.scopes.Push(state);

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var text = formatter(state, exception);
            if (state is IEnumerable<KeyValuePair<string, object?>> pairs)
            {
                // Structured values reach log sinks even when the template does not print them.
                text += " | " + Pairs(pairs);
            }

            var scopeText = new List<string>();
            capture.scopes.ForEachScope((scope, list) =>
                list.Add(scope is IEnumerable<KeyValuePair<string, object?>> values ? Pairs(values) : scope?.ToString() ?? ""), scopeText);
            if (scopeText.Count > 0)
            {
                text += " | scope " + string.Join(" => ", scopeText);
            }

            if (exception is not null)
            {
                text += " | " + exception;
            }

            capture.entries.Enqueue(new CapturedLog(category, logLevel, eventId, text));
        }

        private static string Pairs(IEnumerable<KeyValuePair<string, object?>> pairs) => string.Join(" ", pairs.Select(p => $"{p.Key}={p.Value}"));
    }
}

public sealed record CapturedLog(string Category, LogLevel Level, EventId EventId, string Text);
