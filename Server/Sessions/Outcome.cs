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
