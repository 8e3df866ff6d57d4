using TrustLine.Client;
using TrustLine.Protocol.Crypto;

namespace TrustLine.Server.Tests.Client;

/// <summary>The protocol package stays free of SignalR and ASP.NET: apps in other stacks take it alone.</summary>
public sealed class PackageBoundaryTests
{
    [Test]
    public void ProtocolDependsOnNSecAndMessagePackAttributesOnly()
    {
        var references = typeof(SecureChannel).Assembly.GetReferencedAssemblies().Select(a => a.Name!).ToList();

        Assert.Multiple(() =>
        {
            Assert.That(references.Where(n => !n.StartsWith("System", StringComparison.Ordinal) && n is not "netstandard"),
                Is.SubsetOf(new[] { "NSec.Cryptography", "MessagePack.Annotations" }));
            Assert.That(references, Does.Contain("NSec.Cryptography"));
        });
    }

    [Test]
    public void ClientSdkIsItsOwnAssemblyOnTopOfProtocol()
    {
        var client = typeof(SeekerClient).Assembly;

        Assert.Multiple(() =>
        {
            Assert.That(client.GetName().Name, Is.EqualTo("TrustLine.Client"));
            Assert.That(client.GetReferencedAssemblies().Select(a => a.Name), Does.Contain("TrustLine.Protocol").And.Contain("Microsoft.AspNetCore.SignalR.Client.Core"));
        });
    }
}
