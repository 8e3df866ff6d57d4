using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Text;
using Sha = NSec.Cryptography.HashAlgorithm;

namespace TrustLine.Protocol.Crypto;

/// <summary>Why <see cref="AdmissionPuzzle.TryParse"/> refused a puzzle.</summary>
public enum PuzzleError
{
    /// <summary>Not refused.</summary>
    None = 0,

    /// <summary>The puzzle is not 42 bytes.</summary>
    BadLength,

    /// <summary>The version byte is not 0x01.</summary>
    BadVersion,

    /// <summary>The difficulty is more than 32 bits.</summary>
    TooHard,
}

/// <summary>
/// The admission puzzle a server under pressure asks for before it opens a session (PROTOCOL.md §9): find an
/// 8-byte counter such that <c>SHA-256("TrustLine/v1/puzzle\0" ‖ puzzle ‖ sid ‖ counter)</c> starts with
/// <see cref="Difficulty"/> zero bits. The solution is bound to the puzzle and the session id, so it opens
/// one session. The nonce and mac are the server's; a client only reads the difficulty and expiry.
/// </summary>
public sealed class AdmissionPuzzle
{
    /// <summary>Size of a puzzle: version(1) ‖ d(1) ‖ expires(8) ‖ nonce(16) ‖ mac(16).</summary>
    public const int Size = 42;

    /// <summary>Size of a solution (the big-endian counter).</summary>
    public const int SolutionSize = 8;

    /// <summary>The highest difficulty a v1 puzzle may ask for.</summary>
    public const int MaxDifficulty = 32;

    /// <summary>How many hashes pass between two progress reports of <see cref="Solve"/>.</summary>
    public const int ProgressEvery = 1 << 16;

    private static readonly byte[] Label = Encoding.ASCII.GetBytes("TrustLine/v1/puzzle\0");
    private readonly byte[] puzzle;

    private AdmissionPuzzle(byte[] puzzle)
    {
        this.puzzle = puzzle;
        Difficulty = puzzle[1];
        ExpiresUnixSeconds = BinaryPrimitives.ReadInt64BigEndian(puzzle.AsSpan(2, 8));
    }

    /// <summary>The number of leading zero bits the hash must have (0–32); the expected work is 2^d hashes.</summary>
    public int Difficulty { get; }

    /// <summary>When the server stops accepting the puzzle, in Unix seconds.</summary>
    public long ExpiresUnixSeconds { get; }

    /// <summary>The puzzle's 42 bytes, to send back with the solution.</summary>
    public ReadOnlySpan<byte> Bytes => puzzle;

    /// <summary>Reads a puzzle from the server; false (with the reason) if it is malformed.</summary>
    public static bool TryParse(ReadOnlySpan<byte> puzzle, [NotNullWhen(true)] out AdmissionPuzzle? parsed, out PuzzleError error)
    {
        parsed = null;
        error = puzzle.Length != Size ? PuzzleError.BadLength
            : puzzle[0] != Wire.Version ? PuzzleError.BadVersion
            : puzzle[1] > MaxDifficulty ? PuzzleError.TooHard
            : PuzzleError.None;
        if (error != PuzzleError.None)
        {
            return false;
        }

        parsed = new AdmissionPuzzle(puzzle.ToArray());
        return true;
    }

    /// <summary>
    /// Finds the smallest counter (from 0) that solves the puzzle for the session <paramref name="sessionId"/>.
    /// CPU-bound: run it off the UI thread. <paramref name="progress"/> hears the number of hashes tried every
    /// <see cref="ProgressEvery"/> hashes.
    /// </summary>
    public byte[] Solve(ReadOnlySpan<byte> sessionId, IProgress<long>? progress = null, CancellationToken cancellationToken = default)
    {
        var input = Input(sessionId);
        var counter = input.AsSpan(input.Length - SolutionSize);
        Span<byte> hash = stackalloc byte[32];
        for (ulong attempt = 0; ; attempt++)
        {
            BinaryPrimitives.WriteUInt64BigEndian(counter, attempt);
            Sha.Sha256.Hash(input, hash);
            if (HasLeadingZeroBits(hash, Difficulty))
            {
                return counter.ToArray();
            }

            if ((attempt + 1) % ProgressEvery == 0)
            {
                cancellationToken.ThrowIfCancellationRequested();
                progress?.Report((long)(attempt + 1));
            }
        }
    }

    /// <summary>True if <paramref name="solution"/> solves the puzzle for the session <paramref name="sessionId"/>.</summary>
    public bool IsSolvedBy(ReadOnlySpan<byte> sessionId, ReadOnlySpan<byte> solution)
    {
        if (solution.Length != SolutionSize)
        {
            return false;
        }

        var input = Input(sessionId);
        solution.CopyTo(input.AsSpan(input.Length - SolutionSize));
        Span<byte> hash = stackalloc byte[32];
        Sha.Sha256.Hash(input, hash);
        return HasLeadingZeroBits(hash, Difficulty);
    }

    /// <summary>True if <paramref name="hash"/> starts with <paramref name="bits"/> zero bits.</summary>
    public static bool HasLeadingZeroBits(ReadOnlySpan<byte> hash, int bits)
    {
        var whole = bits / 8;
        if (hash[..whole].ContainsAnyExcept((byte)0))
        {
            return false;
        }

        var rest = bits % 8;
        return rest == 0 || (hash[whole] >> (8 - rest)) == 0;
    }

    private byte[] Input(ReadOnlySpan<byte> sessionId)
    {
        if (sessionId.Length != Wire.SessionIdSize)
        {
            throw new ArgumentException($"A session id is {Wire.SessionIdSize} bytes.", nameof(sessionId));
        }

        var input = new byte[Label.Length + Size + Wire.SessionIdSize + SolutionSize];
        Label.CopyTo(input, 0);
        puzzle.CopyTo(input, Label.Length);
        sessionId.CopyTo(input.AsSpan(Label.Length + Size));
        return input;
    }
}
