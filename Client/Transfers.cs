using TrustLine.Protocol.Crypto;

namespace TrustLine.Client;

/// <summary>An organisation the app knows by name and pins: one a counsellor may transfer the seeker to.</summary>
public sealed class KnownOrganisation
{
    /// <summary>Creates an entry; the name is what the app shows, the pin what the new counsellor is verified against.</summary>
    public KnownOrganisation(string name, OrganisationPin pin)
    {
        Name = name ?? throw new ArgumentNullException(nameof(name));
        Pin = pin ?? throw new ArgumentNullException(nameof(pin));
    }

    /// <summary>The organisation's name as the app was given it (never from the server).</summary>
    public string Name { get; }

    /// <summary>The organisation's pinned id and roots.</summary>
    public OrganisationPin Pin { get; }
}

/// <summary>A transfer the counsellor proposed: the target as the app's own pins name it.</summary>
public sealed class TransferOffer
{
    internal TransferOffer(KnownOrganisation target, bool sameOrganisation, DateTimeOffset answerBy)
    {
        Target = target;
        SameOrganisation = sameOrganisation;
        AnswerBy = answerBy;
    }

    /// <summary>The target organisation: its verified name and the pins the next counsellor must chain to.</summary>
    public KnownOrganisation Target { get; }

    /// <summary>True when the chat goes to a colleague of the same organisation.</summary>
    public bool SameOrganisation { get; }

    /// <summary>When the proposal lapses (by the client's clock); the chat then goes on as it is.</summary>
    public DateTimeOffset AnswerBy { get; }
}
