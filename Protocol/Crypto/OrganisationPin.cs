namespace TrustLine.Protocol.Crypto;

/// <summary>
/// What an app pins for one organisation: its 16-byte id and its two root public keys (active and backup).
/// A responder's certificate chain is accepted only under these roots (PROTOCOL.md §1).
/// </summary>
public sealed class OrganisationPin
{
    /// <summary>Creates a pin; each root is a 32-byte Ed25519 public key.</summary>
    public OrganisationPin(ReadOnlySpan<byte> orgId, IEnumerable<byte[]> roots)
    {
        ArgumentNullException.ThrowIfNull(roots);
        if (orgId.Length != Wire.OrgIdSize)
        {
            throw new ArgumentException($"An organisation id is {Wire.OrgIdSize} bytes.", nameof(orgId));
        }

        OrgId = orgId.ToArray();
        Roots = roots.Select(r => r.Length == Wire.PublicKeySize
            ? (byte[])r.Clone()
            : throw new ArgumentException($"A root public key is {Wire.PublicKeySize} bytes.", nameof(roots))).ToArray();
        if (Roots.Count == 0)
        {
            throw new ArgumentException("Pin at least one root.", nameof(roots));
        }
    }

    /// <summary>The organisation id.</summary>
    public byte[] OrgId { get; }

    /// <summary>The pinned root public keys.</summary>
    public IReadOnlyList<byte[]> Roots { get; }
}
