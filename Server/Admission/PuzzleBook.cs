using System.Buffers.Binary;
using System.Security.Cryptography;
using Microsoft.Extensions.Options;
using NSec.Cryptography;
using TrustLine.Protocol.Contracts;
using TrustLine.Protocol.Crypto;
using TrustLine.Server.Operations.Metrics;
using TrustLine.Server.Sessions;

namespace TrustLine.Server.Admission;

/// <summary>
/// Hands out and checks admission puzzles (PROTOCOL.md §9) without keeping state for puzzles never solved:
/// the puzzle carries its own expiry and a MAC under a key that lives only in this node's memory (a client
/// asks for the puzzle and opens on the same connection, so on the same node). The MAC also covers the
/// organisation the puzzle was asked for, so a puzzle of a calm organisation does not open a busy one.
/// Checks in the §9 order: version, expiry, MAC, the leading zero bits (one SHA-256), then the nonce is
/// spent (one store command, kept until the puzzle expires).
/// </summary>
public sealed class PuzzleBook : IDisposable
{
    /// <summary>How many bits easier than the difficulty now a solved puzzle may be (16 times fewer hashes).</summary>
    internal const int DifficultySlack = 4;

    private readonly Key macKey = Key.Create(MacAlgorithm.HmacSha256);
    private readonly AdmissionPolicy policy;
    private readonly ISpentTokens spent;
    private readonly IOptions<AdmissionOptions> options;
    private readonly TimeProvider time;
    private readonly TrustLineMetrics metrics;

    public PuzzleBook(AdmissionPolicy policy, ISpentTokens spent, IOptions<AdmissionOptions> options, TimeProvider time, TrustLineMetrics metrics)
    {
        this.policy = policy;
        this.spent = spent;
        this.options = options;
        this.time = time;
        this.metrics = metrics;
    }

    /// <summary>A fresh puzzle for the organisation, at its current difficulty.</summary>
    public byte[] Issue(byte[] orgId, string orgIdHex)
    {
        var puzzle = new byte[AdmissionPuzzle.Size];
        puzzle[0] = Wire.Version;
        puzzle[1] = (byte)policy.Difficulty(orgIdHex);
        BinaryPrimitives.WriteInt64BigEndian(puzzle.AsSpan(2, 8), (time.GetUtcNow() + options.Value.PuzzleLifetime).ToUnixTimeSeconds());
        RandomNumberGenerator.Fill(puzzle.AsSpan(10, 16));
        Mac(puzzle, orgId, puzzle.AsSpan(26, 16));
        metrics.PuzzleIssued();
        metrics.PuzzleDifficulty(puzzle[1]);
        return puzzle;
    }

    /// <summary>Null when the open may go ahead; otherwise the refusal (counted by code).</summary>
    public async ValueTask<Refusal?> AdmitAsync(OpenSessionRequest request, byte[] orgId, string orgIdHex, byte[] sessionId)
    {
        var refusal = await CheckAsync(request, orgId, orgIdHex, sessionId);
        if (refusal is { } refused)
        {
            metrics.PuzzleRefused(refused.Code);
        }
        else if (request.Puzzle is { Length: > 0 })
        {
            metrics.PuzzleSolved();
        }

        return refusal;
    }

    private async ValueTask<Refusal?> CheckAsync(OpenSessionRequest request, byte[] orgId, string orgIdHex, byte[] sessionId)
    {
        if (request.Puzzle is not { Length: > 0 } bytes)
        {
            return policy.TryAdmitWithoutPuzzle(orgIdHex)
                ? null
                : Refuse.With(ErrorCodes.PuzzleRequired, "The line is busy: solve an admission puzzle (GetPuzzle) and open again with it.");
        }

        var now = time.GetUtcNow().ToUnixTimeSeconds();
        Span<byte> expected = stackalloc byte[16];
        if (!AdmissionPuzzle.TryParse(bytes, out var puzzle, out _) || request.Solution is not { Length: AdmissionPuzzle.SolutionSize })
        {
            return Refuse.With(ErrorCodes.BadPuzzle, "The puzzle or its solution is malformed; ask for a new puzzle.");
        }

        if (puzzle.ExpiresUnixSeconds < now)
        {
            return Refuse.With(ErrorCodes.BadPuzzle, "The puzzle has expired; ask for a new one.");
        }

        Mac(bytes, orgId, expected);
        if (!CryptographicOperations.FixedTimeEquals(expected, bytes.AsSpan(26, 16)))
        {
            return Refuse.With(ErrorCodes.BadPuzzle, "The puzzle is not this server's or not for this organisation; ask for a new one.");
        }

        if (!puzzle.IsSolvedBy(sessionId, request.Solution))
        {
            return Refuse.With(ErrorCodes.BadPuzzle, "The solution does not solve the puzzle for this session.");
        }

        // A puzzle handed out while the line was calm (difficulty 0) or quiet must not open a session once a
        // flood is on: puzzles fetched ahead and solved later would let it in cheaply. Some slack, so that a
        // seeker whose puzzle was handed out just before the pressure rose still gets in.
        if (puzzle.Difficulty < policy.Difficulty(orgIdHex) - DifficultySlack)
        {
            return Refuse.With(ErrorCodes.PuzzleRequired, "The line got busier while you solved: solve a new puzzle (GetPuzzle) and open again with it.");
        }

        var until = DateTimeOffset.FromUnixTimeSeconds(puzzle.ExpiresUnixSeconds + 1);
        return await spent.TrySpendAsync("pz", bytes.AsMemory(10, 16), until)
            ? null
            : Refuse.With(ErrorCodes.BadPuzzle, "The puzzle was used already; ask for a new one.");
    }

    public void Dispose() => macKey.Dispose();

    private void Mac(ReadOnlySpan<byte> puzzle, byte[] orgId, Span<byte> mac16)
    {
        Span<byte> input = stackalloc byte[26 + Wire.OrgIdSize];
        puzzle[..26].CopyTo(input);
        orgId.CopyTo(input[26..]);
        Span<byte> full = stackalloc byte[32];
        MacAlgorithm.HmacSha256.Mac(macKey, input, full);
        full[..16].CopyTo(mac16);
    }
}
