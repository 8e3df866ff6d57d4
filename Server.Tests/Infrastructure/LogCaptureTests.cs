using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace TrustLine.Server.Tests.Infrastructure;

/// <summary>The log capture that the privacy tests rely on sees everything a sink could write.</summary>
public sealed class LogCaptureTests
{
    [Test]
    public void CaptureIncludesTheValuesOfEveryEnclosingScope()
    {
        var capture = new LogCapture();
        using var services = new ServiceCollection().AddLogging(l => l.AddProvider(capture)).BuildServiceProvider();
        var logger = services.GetRequiredService<ILoggerFactory>().CreateLogger("test");

        using (logger.BeginScope(new Dictionary<string, object?> { ["Outer"] = "outer-value" }))
        using (logger.BeginScope("inner {Thing}", "inner-value"))
        {
            logger.LogInformation("a line");
        }

        logger.LogInformation("after");

        Assert.Multiple(() =>
        {
            Assert.That(capture.Entries[0].Text, Does.Contain("outer-value").And.Contain("inner-value"));
            Assert.That(capture.Entries[1].Text, Does.Not.Contain("outer-value"), "a closed scope is gone");
        });
    }
}
