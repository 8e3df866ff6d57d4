// Refusals: a refused hub call's error text is "code: sentence"; today's SignalR server prefixes it with
// "An unexpected error occurred invoking 'X' on the server. HubException: ". Both forms are read.

/** The server refused a call; `code` is one of the stable error codes of `Protocol/Contracts/Errors.cs`. */
export class TrustLineError extends Error {
  constructor(readonly code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TrustLineError';
  }
}

const MARKER = 'HubException: ';

/** Reads `code: sentence` out of a hub error's text; the code is `error` when there is none. */
export function parseRefusal(text: string): { code: string; sentence: string } {
  const marker = text.indexOf(MARKER);
  const rest = marker >= 0 ? text.slice(marker + MARKER.length) : text;
  const colon = rest.indexOf(': ');
  if (colon > 0 && !rest.slice(0, colon).includes(' ')) return { code: rest.slice(0, colon), sentence: rest.slice(colon + 2) };
  return { code: 'error', sentence: rest };
}

/** Turns a failed hub invocation into a TrustLineError when the server refused it; anything else is returned as is. */
export function refusalOf(e: unknown): unknown {
  if (e instanceof TrustLineError || !(e instanceof Error) || e.name === 'AbortError') return e;
  // The SignalR client rejects with a plain Error holding the server's text; connection problems have
  // their own texts ("Invocation canceled due to the underlying connection being closed.", …).
  if (e.message.startsWith('An unexpected error occurred invoking') || /^[a-z][a-z0-9_]*: /.test(e.message)) {
    const { code, sentence } = parseRefusal(e.message);
    return new TrustLineError(code, sentence, { cause: e });
  }
  return e;
}

const RETRY_MS = [250, 500, 1000]; // a store failing over answers again within seconds

/**
 * Sends one envelope, again and again while the server answers `unavailable` (its store is failing over or
 * restarting), with back-off; anything else is thrown as it came. Call it under the send gate, so order holds.
 */
export async function sendRetrying(send: () => Promise<unknown>, ended: () => boolean): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await send();
      return;
    } catch (e) {
      const refused = refusalOf(e);
      if (!(refused instanceof TrustLineError) || refused.code !== 'unavailable' || ended()) throw e;
      await new Promise<void>((resolve) => setTimeout(() => resolve(), RETRY_MS[Math.min(attempt, RETRY_MS.length - 1)]));
    }
  }
}

/** A typed event source: `on` returns a function that removes the listener. Listener errors never reach the SDK. */
export class Events<M extends { [K in keyof M]: (...args: never[]) => void }> {
  private readonly listeners = new Map<keyof M, Set<M[keyof M]>>();

  on<K extends keyof M>(event: K, listener: M[K]): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(listener);
    return () => set!.delete(listener);
  }

  emit<K extends keyof M>(event: K, ...args: Parameters<M[K]>): void {
    for (const listener of this.listeners.get(event) ?? []) {
      try {
        (listener as (...a: Parameters<M[K]>) => void)(...args);
      } catch {
        // An app's listener must not break the session.
      }
    }
  }

  clear(): void {
    this.listeners.clear();
  }
}

/** Runs async sections one at a time, in call order. */
export class Gate {
  private tail: Promise<void> = Promise.resolve();

  run<T>(section: () => Promise<T>): Promise<T> {
    const result = this.tail.then(section);
    this.tail = result.then(() => undefined, () => undefined);
    return result;
  }
}

/** Rejects when the signal aborts; otherwise settles like `promise`. */
export function withSignal<T>(promise: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return promise;
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => { signal.removeEventListener('abort', onAbort); resolve(v); },
      (e) => { signal.removeEventListener('abort', onAbort); reject(e); },
    );
  });
}

export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    signal?.throwIfAborted();
    const timer = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve(); }, ms);
    const onAbort = () => { clearTimeout(timer); reject(signal!.reason); };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
