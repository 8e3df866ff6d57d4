using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace TrustLine.Server.Tests.Infrastructure;

/// <summary>Keeps every formatted log line of a node (message, exception and scope values) for inspection.</summary>
public sealed class LogCapture : ILoggerProvider
{
    private readonly ConcurrentQueue<CapturedLog> entries = new();

    public IReadOnlyList<CapturedLog> Entries => [.. entries];

    public ILogger CreateLogger(string categoryName) => new Logger(categoryName, entries);

    public void Dispose()
    {
    }

    private sealed class Logger(string category, ConcurrentQueue<CapturedLog> entries) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var text = formatter(state, exception);
            if (state is IEnumerable<KeyValuePair<string, object?>> pairs)
            {
                // Structured values reach log sinks even when the template does not print them.
                text += " | " + string.Join(" ", pairs.Select(p => $"{p.Key}={p.Value}"));
            }

            if (exception is not null)
            {
                text += " | " + exception;
            }

            entries.Enqueue(new CapturedLog(category, logLevel, eventId, text));
        }
    }
}

public sealed record CapturedLog(string Category, LogLevel Level, EventId EventId, string Text);
