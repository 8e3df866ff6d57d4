using Microsoft.AspNetCore.SignalR;

namespace TrustLine.Client;

/// <summary>The server refused a call: <see cref="Code"/> is one of <see cref="Protocol.Contracts.ErrorCodes"/>.</summary>
public sealed class TrustLineException : Exception
{
    /// <summary>Creates an exception with a stable code and a sentence.</summary>
    public TrustLineException(string code, string message)
        : base(message) => Code = code;

    /// <summary>Creates an exception with a stable code, a sentence and its cause.</summary>
    public TrustLineException(string code, string message, Exception inner)
        : base(message, inner) => Code = code;

    /// <summary>Required by the exception conventions; prefer the constructors with a code.</summary>
    public TrustLineException()
        : this("error", "TrustLine failed.")
    {
    }

    /// <summary>Required by the exception conventions; prefer the constructors with a code.</summary>
    public TrustLineException(string message)
        : this("error", message)
    {
    }

    /// <summary>Required by the exception conventions; prefer the constructors with a code.</summary>
    public TrustLineException(string message, Exception inner)
        : this("error", message, inner)
    {
    }

    /// <summary>The stable error code.</summary>
    public string Code { get; }

    /// <summary>Reads <c>"code: sentence"</c> out of a hub error.</summary>
    internal static TrustLineException From(HubException e)
    {
        var text = e.Message;
        // The client prefixes "An unexpected error occurred invoking 'X' on the server. HubException: ".
        var marker = text.IndexOf("HubException: ", StringComparison.Ordinal);
        if (marker >= 0)
        {
            text = text[(marker + "HubException: ".Length)..];
        }

        var colon = text.IndexOf(": ", StringComparison.Ordinal);
        return colon > 0 && !text[..colon].Contains(' ', StringComparison.Ordinal)
            ? new TrustLineException(text[..colon], text[(colon + 2)..], e)
            : new TrustLineException("error", text, e);
    }
}
