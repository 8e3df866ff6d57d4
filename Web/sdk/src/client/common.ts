// Pieces both session clients share: the DTOs as MessagePack arrays, the ack batcher and the gap watch.
import { MAX_HOLD_MS } from '../channel.js';

export const Routes = {
  seekerHub: '/hubs/seeker',
  responderHub: '/hubs/responder',
  challenge: '/v1/responders/challenge',
  signIn: '/v1/responders/sign-in',
  directory: '/v1/directory',
} as const;

/** Why a session ended. The server's codes, plus the client's own: `messages_missing`, `handshake_failed:…`, `connection_lost`, `resume_refused`. */
/** How long closing waits for the CLOSE envelope to be accepted before it closes on the server anyway (as the .NET SDK). */
export const closeWaitMs = 10_000;

export const EndReasons = {
  seekerClosed: 'seeker_closed',
  seekerLeftQueue: 'seeker_left_queue',
  responderClosed: 'responder_closed',
  seekerAbandoned: 'seeker_abandoned',
  responderAbandoned: 'responder_abandoned',
  idle: 'idle_timeout',
  maxLifetime: 'max_lifetime',
  queueTimeout: 'queue_timeout',
  /** The server's store lost the session (a restart without persistence): start a new one. */
  storeLost: 'store_lost',
  /** The seeker accepted a transfer: the chat goes on as a new session with a fresh handshake. */
  transferred: 'transferred',
  /** A waiting seeker was away longer than the queue keeps a place (`QueueStatus.holdSeconds`); told on coming back. */
  queueHoldExpired: 'queue_hold_expired',
  messagesMissing: 'messages_missing',
  connectionLost: 'connection_lost',
  resumeRefused: 'resume_refused',
} as const;

/** A seeker's place in the queue: 1 is next; 0 when no longer queued. */
export interface QueueStatus {
  position: number;
  waiting: number;
  /** The likely wait as a range in seconds (its median to 90th percentile), or null when the server cannot estimate it. */
  wait: { lowSeconds: number; highSeconds: number } | null;
  /** The session's ticket in its class (urgent or not), 0 when the server gave none. */
  ticket: number;
  /** Whether the ticket is of the urgent class. */
  urgentTicket: boolean;
  /** How long the place is kept while the connection is lost (a phone that switched apps), in seconds; 0 when not told. */
  holdSeconds: number;
}

/** The organisation's queue after a change, per class: how many wait and the ticket served through. */
export interface QueueMoved {
  urgentWaiting: number;
  urgentServedThrough: number;
  otherWaiting: number;
  otherServedThrough: number;
  /** The mean time between takes, for the wait range; −1 when unknown. */
  secondsPerTake: number;
}

export function readQueueMoved(value: unknown): QueueMoved {
  const a = (Array.isArray(value) ? value : []) as unknown[];
  const n = (v: unknown, fallback: number) => (Number.isFinite(Number(v)) ? Number(v) : fallback);
  return {
    urgentWaiting: n(a[0], 0), urgentServedThrough: n(a[1], 0), otherWaiting: n(a[2], 0), otherServedThrough: n(a[3], 0), secondsPerTake: n(a[4], -1),
  };
}

/** The p50–p90 wait range for a place, as the server computes it (`QueueStatus.WaitRange` in the .NET contracts). */
export function waitRange(place: number, secondsPerTake: number): { lowSeconds: number; highSeconds: number } | null {
  if (place < 1 || !(secondsPerTake > 0)) return null;
  const low = Math.trunc(Math.max(0, (place - 1 / 3) * secondsPerTake));
  const high = Math.ceil((place + 1.28 * Math.sqrt(place) + 0.4) * secondsPerTake);
  return { lowSeconds: low, highSeconds: high };
}

/**
 * A place computed from a queue notice and the session's ticket (`QueueMoved.StatusFor` in the .NET SDK): the
 * urgent sessions waiting (unless the ticket is urgent), plus those of its class ahead of it taken as
 * `min(ticket − served − 1, waiting − 1)`, plus one. Exact unless a session between the served ticket and this
 * one left out of turn; then too many, never too few. Null when the ticket is no longer waiting.
 */
export function placeFrom(moved: QueueMoved, ticket: number, urgent: boolean, holdSeconds = 0): QueueStatus | null {
  const served = urgent ? moved.urgentServedThrough : moved.otherServedThrough;
  const waiting = urgent ? moved.urgentWaiting : moved.otherWaiting;
  if (ticket <= served || waiting < 1) return null;
  const ahead = Math.min(ticket - served - 1, waiting - 1);
  const position = (urgent ? 0 : moved.urgentWaiting) + ahead + 1;
  return {
    position, waiting: moved.urgentWaiting + moved.otherWaiting, wait: waitRange(position, moved.secondsPerTake), ticket, urgentTicket: urgent, holdSeconds,
  };
}

export interface QueueEntry {
  sessionId: Uint8Array;
  language: string;
  topic: string;
  urgent: boolean;
  waitingSeconds: number;
}

export interface QueueSnapshot {
  waiting: number;
  head: QueueEntry[];
}

// MessagePack [Key(n)] objects travel as arrays in key order (Protocol/Contracts/Hubs.cs).
type Wire = unknown[] | null | undefined;

export function bytesOf(value: unknown): Uint8Array {
  return value instanceof Uint8Array ? value : new Uint8Array(0);
}

export function readQueueStatus(value: unknown): QueueStatus {
  const a = (Array.isArray(value) ? value : []) as unknown[];
  const low = Number(a[2] ?? -1);
  const high = Number(a[3] ?? -1);
  const wait = Number.isFinite(low) && Number.isFinite(high) && low >= 0 && high >= low ? { lowSeconds: low, highSeconds: high } : null;
  return {
    position: Number(a[0] ?? 0), waiting: Number(a[1] ?? 0), wait,
    ticket: Number(a[4] ?? 0) || 0, urgentTicket: a[5] === true, holdSeconds: Number(a[6] ?? 0) || 0,
  };
}

export function readQueueEntry(value: unknown): QueueEntry {
  const a = (Array.isArray(value) ? value : []) as unknown[];
  return { sessionId: bytesOf(a[0]), language: String(a[1] ?? ''), topic: String(a[2] ?? ''), urgent: a[3] === true, waitingSeconds: Number(a[4] ?? 0) };
}

export function readQueueSnapshot(value: unknown): QueueSnapshot {
  const a = (Array.isArray(value) ? value : []) as unknown[];
  return { waiting: Number(a[0] ?? 0), head: Array.isArray(a[1]) ? a[1].map(readQueueEntry) : [] };
}

export interface ResumeResult {
  queued: boolean;
  msg2: Uint8Array | null;
  nextSequence: number;
  queue: QueueStatus;
  msg1: Uint8Array | null;
}

export function readResumeResult(value: Wire): ResumeResult {
  const a = (value ?? []) as unknown[];
  return {
    queued: a[0] === true,
    msg2: a[1] instanceof Uint8Array ? a[1] : null,
    nextSequence: Number(a[2] ?? 0),
    queue: readQueueStatus(a[3]),
    msg1: a[4] instanceof Uint8Array ? a[4] : null,
  };
}

/** What became of a proposed transfer (the server's `TransferOutcomes`). */
export const TransferOutcomes = {
  accepted: 'accepted',
  declined: 'declined',
  timedOut: 'timed_out',
  failed: 'failed',
} as const;

/** A transfer proposal as the server sends it: never trusted for the target's name or keys. */
export function readTransferProposal(value: unknown): { sessionId: Uint8Array; orgId: Uint8Array; answerWithinSeconds: number } | null {
  if (!Array.isArray(value)) return null;
  const [sessionId, orgId, seconds] = value as unknown[];
  if (!(sessionId instanceof Uint8Array) || sessionId.length !== 16 || !(orgId instanceof Uint8Array) || orgId.length !== 16) return null;
  const answerWithinSeconds = typeof seconds === 'number' && Number.isFinite(seconds) ? Math.min(Math.max(seconds, 0), 3600) : 0;
  return { sessionId, orgId, answerWithinSeconds };
}

export function readSessionEnd(value: unknown): { sessionId: Uint8Array; reason: string } {
  const a = (Array.isArray(value) ? value : []) as unknown[];
  return { sessionId: bytesOf(a[0]), reason: String(a[1] ?? '') };
}

/**
 * Acknowledges received envelopes cumulatively, in batches: at once after 64, otherwise after a short quiet
 * delay. A reconnect carries the true position anyway, so a late or lost ack loses nothing.
 */
export class AckBatcher {
  static readonly every = 64;
  private pending: number | null = null;
  private count = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(private readonly send: (through: number) => Promise<unknown>) {}

  received(through: number): void {
    this.pending = through;
    if (++this.count >= AckBatcher.every) {
      void this.flush();
    } else if (!this.timer) {
      this.timer = setTimeout(() => void this.flush(), 200);
    }
  }

  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.pending === null) return;
    const through = this.pending;
    this.pending = null;
    this.count = 0;
    try {
      await this.send(through);
    } catch {
      // Offline or ended: the resume reports the position instead.
    }
  }

  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}

/** Ends a session whose receive gap outlives the hold time even when nothing else arrives (§3). */
export class GapWatch {
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(private readonly check: () => boolean, private readonly onExpired: () => void) {}

  start(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.check()) this.onExpired();
    }, MAX_HOLD_MS + 1000);
  }

  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
