namespace TrustLine.Protocol.Crypto;

/// <summary>Why a responder's certificate chain was refused (PROTOCOL.md §1).</summary>
public enum ChainError
{
    /// <summary>The chain is valid.</summary>
    None = 0,

    /// <summary>A certificate is not 133 bytes, lacks the <c>"TLC1"</c> magic, or breaks <c>0 ≤ not_before ≤ not_after &lt; 2^40</c>.</summary>
    Malformed,

    /// <summary>The roles are not exactly issuer (0x01) then responder (0x02).</summary>
    WrongRole,

    /// <summary>The certificates' org_id differs from each other or from the chosen organisation.</summary>
    OtherOrganisation,

    /// <summary>The issuer certificate does not verify under any pinned root.</summary>
    IssuerNotSignedByPinnedRoot,

    /// <summary>The responder certificate does not verify under the issuer's key.</summary>
    ResponderNotSignedByIssuer,

    /// <summary>A certificate's <c>not_before</c> is more than 300 s in the future.</summary>
    NotYetValid,

    /// <summary>A certificate's <c>not_after</c> has passed.</summary>
    Expired,

    /// <summary>The responder certificate ends after the issuer certificate.</summary>
    ResponderOutlivesIssuer,

    /// <summary>A certificate lasts longer than its role allows (90 days issuer, 14 days responder).</summary>
    LifetimeTooLong,
}

/// <summary>Verifies an issuer + responder certificate chain against an organisation's pinned roots.</summary>
public static class CertificateChain
{
    /// <summary>Allowed clock skew for <c>not_before</c>, seconds.</summary>
    public const long ClockSkewSeconds = 300;

    /// <summary>
    /// Applies every rule of PROTOCOL.md §1 at Unix time <paramref name="now"/>. On success
    /// <paramref name="responderPublicKey"/> is the certified responder key.
    /// </summary>
    public static ChainError Verify(
        ReadOnlySpan<byte> issuerCertificate,
        ReadOnlySpan<byte> responderCertificate,
        OrganisationPin pin,
        long now,
        out byte[]? responderPublicKey)
    {
        ArgumentNullException.ThrowIfNull(pin);
        responderPublicKey = null;
        if (!Certificate.TryParse(issuerCertificate, out var issuer) || !Certificate.TryParse(responderCertificate, out var responder))
        {
            return ChainError.Malformed;
        }

        var error = Verify(issuer!, responder!, pin, now);
        if (error == ChainError.None)
        {
            responderPublicKey = responder!.SubjectPublicKey.ToArray();
        }

        return error;
    }

    /// <summary>Applies every rule of PROTOCOL.md §1 to parsed certificates at Unix time <paramref name="now"/>.</summary>
    public static ChainError Verify(Certificate issuer, Certificate responder, OrganisationPin pin, long now)
    {
        ArgumentNullException.ThrowIfNull(issuer);
        ArgumentNullException.ThrowIfNull(responder);
        ArgumentNullException.ThrowIfNull(pin);

        if (issuer.RoleByte != (byte)CertificateRole.Issuer || responder.RoleByte != (byte)CertificateRole.Responder)
        {
            return ChainError.WrongRole;
        }

        if (!issuer.OrgId.SequenceEqual(pin.OrgId) || !responder.OrgId.SequenceEqual(pin.OrgId))
        {
            return ChainError.OtherOrganisation;
        }

        var byRoot = false;
        foreach (var root in pin.Roots)
        {
            byRoot |= issuer.IsSignedBy(root);
        }

        if (!byRoot)
        {
            return ChainError.IssuerNotSignedByPinnedRoot;
        }

        if (!responder.IsSignedBy(issuer.SubjectPublicKey))
        {
            return ChainError.ResponderNotSignedByIssuer;
        }

        foreach (var certificate in (ReadOnlySpan<Certificate>)[issuer, responder])
        {
            if (certificate.NotBefore > now + ClockSkewSeconds)
            {
                return ChainError.NotYetValid;
            }

            if (now > certificate.NotAfter)
            {
                return ChainError.Expired;
            }
        }

        if (responder.NotAfter > issuer.NotAfter)
        {
            return ChainError.ResponderOutlivesIssuer;
        }

        if (Lifetime(issuer) > (long)Certificate.MaxIssuerLifetime.TotalSeconds
            || Lifetime(responder) > (long)Certificate.MaxResponderLifetime.TotalSeconds)
        {
            return ChainError.LifetimeTooLong;
        }

        return ChainError.None;
    }

    // Exact: a parsed certificate has 0 ≤ not_before ≤ not_after < 2^40.
    private static long Lifetime(Certificate certificate) => certificate.NotAfter - certificate.NotBefore;
}
