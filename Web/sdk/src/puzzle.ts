// The admission puzzle of PROTOCOL.md §9 (seeker ↔ server, not end to end).
import { sha256 } from '@noble/hashes/sha2.js';
import { concat, readU64, u64 } from './bytes.js';
import { PUZZLE_LABEL, SESSION_ID_SIZE } from './wire.js';

export const PUZZLE_SIZE = 42;

export interface PuzzleInfo {
  /** Difficulty in leading zero bits, 0–32. */
  readonly difficulty: number;
  /** Unix seconds after which the server refuses a solution. */
  readonly expires: number;
}

/** Reads a puzzle's public fields; null unless 42 bytes of version 1 with `d ≤ 32`. */
export function parsePuzzle(puzzle: Uint8Array): PuzzleInfo | null {
  if (puzzle.length !== PUZZLE_SIZE || puzzle[0] !== 0x01 || puzzle[1]! > 32) return null;
  return { difficulty: puzzle[1]!, expires: Number(readU64(puzzle, 2)) };
}

/** `SHA-256("TrustLine/v1/puzzle\0" ‖ puzzle ‖ sid ‖ counter)`. */
export function puzzleHash(puzzle: Uint8Array, sessionId: Uint8Array, counter: bigint): Uint8Array {
  return sha256(concat(PUZZLE_LABEL, puzzle, sessionId, u64(counter)));
}

export function leadingZeroBits(hash: Uint8Array): number {
  let bits = 0;
  for (const b of hash) {
    if (b === 0) {
      bits += 8;
      continue;
    }
    return bits + Math.clz32(b) - 24;
  }
  return bits;
}

/** True when `solution` (8 bytes) solves the puzzle for this session. */
export function checkSolution(puzzle: Uint8Array, sessionId: Uint8Array, solution: Uint8Array): boolean {
  const info = parsePuzzle(puzzle);
  if (!info || solution.length !== 8) return false;
  return leadingZeroBits(puzzleHash(puzzle, sessionId, readU64(solution, 0))) >= info.difficulty;
}

export interface SolveOptions {
  signal?: AbortSignal;
  /** Called between chunks, and once when solved, with the number of hashes tried so far. */
  onProgress?: (tried: number, expected: number) => void;
  /** Hashes per chunk before yielding to the event loop (so a page stays responsive). */
  chunk?: number;
  /** Where to start counting (0 finds the smallest counter, as the known answer does). */
  start?: bigint;
}

/**
 * Finds the smallest counter from `start` whose hash has `d` leading zero bits. Works in chunks and yields
 * to the event loop between them, so it neither freezes a page nor ignores `signal`.
 */
export async function solvePuzzle(puzzle: Uint8Array, sessionId: Uint8Array, options: SolveOptions = {}): Promise<Uint8Array> {
  const info = parsePuzzle(puzzle);
  if (!info) throw new Error('Not a version 1 puzzle of 42 bytes.');
  if (sessionId.length !== SESSION_ID_SIZE) throw new Error('A session id is 16 bytes.');
  const chunk = options.chunk ?? 4096;
  const expected = 2 ** info.difficulty;
  // Only the counter changes: hash a prefix once per counter anyway; SHA-256 of 86 bytes is cheap.
  const prefix = concat(PUZZLE_LABEL, puzzle, sessionId);
  const input = new Uint8Array(prefix.length + 8);
  input.set(prefix, 0);
  const view = new DataView(input.buffer);
  let counter = options.start ?? 0n;
  let tried = 0;
  for (;;) {
    options.signal?.throwIfAborted();
    for (let i = 0; i < chunk; i++) {
      view.setBigUint64(prefix.length, counter, false);
      if (leadingZeroBits(sha256(input)) >= info.difficulty) {
        options.onProgress?.(tried + 1, expected); // the last report: done
        return u64(counter);
      }
      counter = (counter + 1n) & 0xffffffffffffffffn;
      tried++;
    }
    options.onProgress?.(tried, expected);
    await new Promise<void>((resolve) => setTimeout(resolve, 0));
  }
}
