using TrustLine.Protocol.Crypto;

namespace TrustLine.Server.Tests.Crypto;

/// <summary>The admission puzzle of PROTOCOL.md §9: its known answer, and each malformed puzzle refused.</summary>
public sealed class AdmissionPuzzleTests
{
    // §9 known answer: 01 ‖ 08 ‖ 0000000069557f80 ‖ 16 × 0x22 ‖ 16 × 0x33, sid = 00 01 … 0f.
    private static readonly byte[] KnownPuzzle = Convert.FromHexString("0108" + "0000000069557f80" + new string('2', 32) + new string('3', 32));

    [Test]
    public void SolverFindsTheKnownAnswerCounter()
    {
        Assert.That(AdmissionPuzzle.TryParse(KnownPuzzle, out var puzzle, out var error), Is.True, error.ToString());

        var solution = puzzle!.Solve(Vectors.SessionId);

        Assert.Multiple(() =>
        {
            Assert.That(Convert.ToHexStringLower(solution), Is.EqualTo("0000000000000276"));
            Assert.That(puzzle.Difficulty, Is.EqualTo(8));
            Assert.That(puzzle.ExpiresUnixSeconds, Is.EqualTo(0x69557f80));
            Assert.That(puzzle.IsSolvedBy(Vectors.SessionId, solution), Is.True);
        });
    }

    [Test]
    public void KnownAnswerHashStartsWithEightZeroBits()
    {
        var input = "TrustLine/v1/puzzle\0"u8.ToArray().Concat(KnownPuzzle).Concat(Vectors.SessionId).Concat(Convert.FromHexString("0000000000000276")).ToArray();
        var hash = NSec.Cryptography.HashAlgorithm.Sha256.Hash(input);

        Assert.That(Convert.ToHexStringLower(hash), Is.EqualTo("00f92db1d3769f286ab3a8e44df1304f86273df367a13a3e94a094acff792037"));
    }

    [Test]
    public void SolutionIsBoundToTheSession()
    {
        Assert.That(AdmissionPuzzle.TryParse(KnownPuzzle, out var puzzle, out _), Is.True);
        var otherSession = Enumerable.Repeat((byte)0xee, 16).ToArray();

        Assert.That(puzzle!.IsSolvedBy(otherSession, Convert.FromHexString("0000000000000276")), Is.False);
    }

    [Test]
    public void DifficultyZeroAcceptsAnyCounter()
    {
        var easy = (byte[])KnownPuzzle.Clone();
        easy[1] = 0;
        Assert.That(AdmissionPuzzle.TryParse(easy, out var puzzle, out _), Is.True);

        Assert.That(puzzle!.IsSolvedBy(Vectors.SessionId, Convert.FromHexString("ffffffffffffffff")), Is.True);
    }

    [Test]
    public void PuzzleOfAnotherVersionIsRefused() => AssertRefused(With(0, 0x02), PuzzleError.BadVersion);

    [Test]
    public void PuzzleHarderThan32BitsIsRefused() => AssertRefused(With(1, 33), PuzzleError.TooHard);

    [TestCase(0)]
    [TestCase(41)]
    [TestCase(43)]
    public void PuzzleOfAnotherLengthIsRefused(int length) => AssertRefused(new byte[length], PuzzleError.BadLength);

    [Test]
    public void SolvingStopsWhenCancelled()
    {
        var hard = With(1, 32);
        Assert.That(AdmissionPuzzle.TryParse(hard, out var puzzle, out _), Is.True);
        using var cancel = new CancellationTokenSource();
        var reports = 0;

        Assert.Throws<OperationCanceledException>(() => puzzle!.Solve(Vectors.SessionId, new SyncProgress(_ =>
        {
            reports++;
            cancel.Cancel();
        }), cancel.Token));
        Assert.That(reports, Is.EqualTo(1));
    }

    private static byte[] With(int index, byte value)
    {
        var puzzle = (byte[])KnownPuzzle.Clone();
        puzzle[index] = value;
        return puzzle;
    }

    private static void AssertRefused(byte[] bytes, PuzzleError expected)
    {
        Assert.Multiple(() =>
        {
            Assert.That(AdmissionPuzzle.TryParse(bytes, out var puzzle, out var error), Is.False);
            Assert.That(error, Is.EqualTo(expected));
            Assert.That(puzzle, Is.Null);
        });
    }

    /// <summary>Reports on the solving thread (Progress&lt;T&gt; would post to the pool).</summary>
    private sealed class SyncProgress(Action<long> report) : IProgress<long>
    {
        public void Report(long value) => report(value);
    }
}
