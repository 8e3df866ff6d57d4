namespace TrustLine.Server.Sessions;

/// <summary>A handler's answer: a value, or a refusal with a stable code and a sentence.</summary>
public interface IOutcome
{
    bool Succeeded { get; }
    string? Code { get; }
    string? Message { get; }
    object? BoxedValue { get; }
}

public readonly record struct Outcome<T>(T? Value, string? Code, string? Message) : IOutcome
{
    public bool Succeeded => Code is null;

    public object? BoxedValue => Value;

    public static implicit operator Outcome<T>(T value) => new(value, null, null);

    public static implicit operator Outcome<T>(Refusal refusal) => new(default, refusal.Code, refusal.Message);
}

/// <summary>A refusal, convertible to any <see cref="Outcome{T}"/>.</summary>
public readonly record struct Refusal(string Code, string Message);

public static class Refuse
{
    public static Refusal With(string code, string message) => new(code, message);
}

/// <summary>Nothing to return.</summary>
public readonly record struct Done;

/// <summary>
/// A hub method's refusal on its way to the <see cref="Relay.RefusalFilter"/>, which turns it into the call's
/// error text <c>"code: sentence"</c>. Hub methods implement the shared hub interfaces (plain return types), so
/// a refusal leaves them as this exception; it never escapes the filter.
/// </summary>
public sealed class RefusedException : Exception
{
    public RefusedException(string code, string message)
        : base(message) => Code = code;

    public RefusedException()
        : this("refused", "The call was refused.")
    {
    }

    public RefusedException(string message)
        : this("refused", message)
    {
    }

    public RefusedException(string message, Exception inner)
        : base(message, inner) => Code = "refused";

    public string Code { get; }
}

public static class OutcomeExtensions
{
    /// <summary>The value, or a <see cref="RefusedException"/> carrying the refusal.</summary>
    public static T ValueOrRefuse<T>(this Outcome<T> outcome) =>
        outcome.Succeeded ? outcome.Value! : throw new RefusedException(outcome.Code!, outcome.Message!);
}
