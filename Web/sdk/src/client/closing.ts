// Closing a chat end to end (PROTOCOL.md §3), shared by both roles. Internal: not exported from the package.
import type { Gate } from './errors.js';

/** Waits for `promise` to settle, at most `ms` or until `signal` aborts; never rejects, and leaves no timer behind. */
export function settleWithin(promise: Promise<unknown>, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => { clearTimeout(timer); signal?.removeEventListener('abort', done); resolve(); };
    const timer = setTimeout(done, ms);
    if (signal?.aborted) return done();
    signal?.addEventListener('abort', done, { once: true });
    promise.then(done, done);
  });
}

/**
 * Sends CLOSE (PROTOCOL.md §3) under `gate`, so after every text already waiting, and resolves once the envelope's
 * Send has gone out (not when it is answered), at most `closeWaitMs` or until `signal` aborts. The server's close
 * may then follow at once: a node handles one call of a connection at a time, in order, so the CLOSE is relayed
 * before the session ends, without waiting a round trip on a phone that is about to leave.
 */
export async function issueClose(gate: Gate, seal: () => Uint8Array | null, send: (envelope: Uint8Array) => Promise<void>, waitMs: number, signal?: AbortSignal): Promise<void> {
  let issued!: () => void;
  const out = new Promise<void>((resolve) => { issued = resolve; });
  const sent = gate.run(async () => {
    try {
      const envelope = seal();
      if (!envelope) return;
      const sending = send(envelope);
      issued();
      await sending;
    } finally {
      issued();
    }
  });
  sent.catch(() => undefined);
  await settleWithin(out, waitMs, signal);
}
