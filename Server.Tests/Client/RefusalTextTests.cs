using Microsoft.AspNetCore.SignalR;
using TrustLine.Client;
using TrustLine.Protocol.Contracts;

namespace TrustLine.Server.Tests.Client;

/// <summary>A refusal reaches the app as its stable code and sentence, whichever form the hub error takes.</summary>
public sealed class RefusalTextTests
{
    [TestCase("buffer_full: Too many envelopes wait unacknowledged.", TestName = "RefusalSentAsCodeAndSentenceIsRead")]
    [TestCase("An unexpected error occurred invoking 'Send' on the server. HubException: buffer_full: Too many envelopes wait unacknowledged.",
        TestName = "RefusalWrappedBySignalRIsRead")]
    public void RefusalIsReadAsCodeAndSentence(string text)
    {
        var refusal = TrustLineException.From(new HubException(text));

        Assert.Multiple(() =>
        {
            Assert.That(refusal.Code, Is.EqualTo(ErrorCodes.BufferFull));
            Assert.That(refusal.Message, Is.EqualTo("Too many envelopes wait unacknowledged."));
        });
    }

    [Test]
    public void ErrorWithoutACodeKeepsItsText()
    {
        var refusal = TrustLineException.From(new HubException("Something broke: badly."));

        Assert.Multiple(() =>
        {
            Assert.That(refusal.Code, Is.EqualTo("error"));
            Assert.That(refusal.Message, Is.EqualTo("Something broke: badly."));
        });
    }
}
