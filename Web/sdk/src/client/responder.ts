// A counsellor's client (the .NET SDK's ResponderClient): sign in with the device key and certificates, take
// sessions from the queue, answer each handshake, and talk; reconnect and resume every held session.
import type { HubConnection } from '@microsoft/signalr';
import { ed25519 } from '@noble/curves/ed25519.js';
import { concat, equalBytes, fromBase64, toBase64, toHex } from '../bytes.js';
import { CONTENT_CLOSE, CONTENT_HELLO, CONTENT_TEXT, type SecureChannel, type SeekerHello } from '../channel.js';
import { acceptMsg1, type ResponderCredentials } from '../handshake.js';
import { SIGN_IN_LABEL } from '../wire.js';
import {
  AckBatcher, closeWaitMs, EndReasons, GapWatch, readQueueEntry, readQueueSnapshot, readSessionEnd, Routes, type QueueEntry, type QueueSnapshot,
} from './common.js';
import { type ClientOptions, type ConnectionStatus, joinUrl, ReconnectingConnection } from './connection.js';
import { issueClose } from './closing.js';
import { Events, Gate, refusalOf, sendRetrying, TrustLineError, withSignal } from './errors.js';
import { type Offer, readOffer, readResponderStatus, type ResponderStatus } from './offers.js';

export interface ResponderEvents {
  queue: (snapshot: QueueSnapshot) => void;
  status: (status: ConnectionStatus) => void;
  /** A waiting session is offered to this counsellor alone: accept or decline it within its time. */
  offered: (offer: Offer) => void;
  /** An offer is gone: `lapsed`, `gone` (taken by a colleague or the seeker left) or `away`. */
  offerWithdrawn: (sessionId: Uint8Array, reason: string) => void;
  /** The availability changed: set by this client, or by the server (reason `lapsed`). */
  availability: (status: ResponderStatus) => void;
}

export interface ResponderSessionEvents {
  /** The seeker's HELLO opened: the session is established. */
  established: (hello: SeekerHello) => void;
  message: (text: string) => void;
  ended: (reason: string) => void;
  /** The seeker's connection dropped (false; it may come back within the grace period) or is back (true). */
  seekerConnection: (connected: boolean) => void;
  /** What became of a transfer this responder proposed: `accepted` (the session ends next, as `transferred`), `declined`, `timed_out` or `failed`. */
  transferOutcome: (outcome: string) => void;
}

/** The sign-in exchange alone (challenge, signature over `"TrustLine/v1/responder-sign-in\0" ‖ challenge`): returns the access token. */
export async function requestToken(server: string, credentials: ResponderCredentials, signal?: AbortSignal): Promise<string> {
  const challengeResponse = await fetch(joinUrl(server, Routes.challenge), { method: 'POST', ...(signal ? { signal } : {}) });
  await throwIfRefused(challengeResponse);
  const challenge = fromBase64(((await challengeResponse.json()) as { challenge: string }).challenge);
  const body = {
    issuerCertificate: toBase64(credentials.issuerCertificate),
    responderCertificate: toBase64(credentials.responderCertificate),
    challenge: toBase64(challenge),
    signature: toBase64(ed25519.sign(concat(SIGN_IN_LABEL, challenge), credentials.seed)),
  };
  const signIn = await fetch(joinUrl(server, Routes.signIn), {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), ...(signal ? { signal } : {}),
  });
  await throwIfRefused(signIn);
  return ((await signIn.json()) as { token: string }).token;
}

async function throwIfRefused(response: Response): Promise<void> {
  if (response.ok) return;
  let error: { code?: string; message?: string } = {};
  try {
    error = (await response.json()) as typeof error;
  } catch {
    // not ours (a proxy page)
  }
  throw new TrustLineError(error.code ?? `http_${response.status}`, error.message ?? `The server answered ${response.status}.`);
}

export class ResponderClient {
  readonly events = new Events<ResponderEvents>();
  private readonly connection: ReconnectingConnection;
  private readonly held = new Map<string, ResponderSession>();
  private token = '';
  private isAvailable = false;
  private offer: Offer | null = null;

  private constructor(server: string, private readonly credentials: ResponderCredentials, readonly options: ClientOptions) {
    this.connection = new ReconnectingConnection([server, ...(options.fallbackServers ?? [])], Routes.responderHub, options, () => this.token,
      (hub) => this.register(hub), (hub) => this.resume(hub), (status) => this.events.emit('status', status));
  }

  /** Signs in and connects; throws TrustLineError with the server's code when refused. */
  static async signIn(server: string, credentials: ResponderCredentials, options: ClientOptions & { signal?: AbortSignal } = {}): Promise<ResponderClient> {
    const client = new ResponderClient(server, credentials, options);
    try {
      client.token = await requestToken(server, credentials, options.signal);
      await client.connection.start(options.signal);
      return client;
    } catch (e) {
      await client.dispose();
      throw e;
    }
  }

  get sessions(): ResponderSession[] {
    return [...this.held.values()];
  }

  async getQueue(options: { signal?: AbortSignal } = {}): Promise<QueueEntry[]> {
    const raw = await this.invoke('GetQueue', [], options.signal);
    return Array.isArray(raw) ? raw.map(readQueueEntry) : [];
  }

  /** Takes the next waiting session and answers its handshake; null when the queue is empty. */
  async takeNext(options: { signal?: AbortSignal } = {}): Promise<ResponderSession | null> {
    const taken = await this.invoke('TakeNext', [], options.signal);
    return taken ? this.answer(taken as unknown[], options.signal) : null;
  }

  /** Takes a named waiting session (`not_available` if another responder was first). */
  async take(sessionId: Uint8Array, options: { signal?: AbortSignal } = {}): Promise<ResponderSession> {
    const taken = await this.invoke('Take', [sessionId], options.signal);
    if (!taken) throw new TrustLineError('not_available', 'The session is not waiting any more.');
    return this.answer(taken as unknown[], options.signal);
  }

  /** True while available for offers (as last set, or as the server said); every connection starts away. */
  get available(): boolean {
    return this.isAvailable;
  }

  /** The offer waiting for an answer, or null. */
  get pendingOffer(): Offer | null {
    return this.offer;
  }

  /** Available for offers, or away; kept across reconnects. The answer tells open chats, capacity and whether offers are on. */
  async setAvailability(available: boolean, options: { signal?: AbortSignal } = {}): Promise<ResponderStatus> {
    const status = readResponderStatus(await this.invoke('SetAvailability', [available], options.signal));
    this.isAvailable = status.available;
    if (!available) this.offer = null;
    this.events.emit('availability', status);
    return status;
  }

  /** Accepts the offered session and answers its handshake (`no_offer`, `offer_expired`, `at_capacity` when refused). */
  async acceptOffer(sessionId: Uint8Array, options: { signal?: AbortSignal } = {}): Promise<ResponderSession> {
    const taken = await this.invoke('AcceptOffer', [sessionId], options.signal);
    this.clearOffer(sessionId);
    return this.answer(taken as unknown[], options.signal);
  }

  /** Declines the offered session: it goes to the next counsellor. */
  async declineOffer(sessionId: Uint8Array, options: { signal?: AbortSignal } = {}): Promise<void> {
    await this.invoke('DeclineOffer', [sessionId], options.signal);
    this.clearOffer(sessionId);
  }

  simulateNetworkLoss(preferServer?: number): Promise<void> {
    return this.connection.drop(preferServer);
  }

  async dispose(): Promise<void> {
    await this.connection.dispose();
    for (const s of this.held.values()) s.dispose();
    this.held.clear();
    this.token = '';
    this.events.clear();
  }

  /** @internal */
  async invoke(method: string, args: unknown[], signal?: AbortSignal): Promise<unknown> {
    const hub = await this.connection.active(signal);
    try {
      return await withSignal(hub.invoke(method, ...args), signal);
    } catch (e) {
      throw refusalOf(e);
    }
  }

  /** @internal */
  get hub(): HubConnection {
    return this.connection.hub;
  }

  /** @internal */
  forget(id: string): void {
    this.held.delete(id);
  }

  private async answer(taken: unknown[], signal?: AbortSignal): Promise<ResponderSession> {
    const sessionId = taken[0] instanceof Uint8Array ? taken[0] : new Uint8Array(0);
    const msg1 = taken[1] instanceof Uint8Array ? taken[1] : new Uint8Array(0);
    const accepted = acceptMsg1(msg1, this.credentials, this.options.now ? { now: this.options.now } : {});
    if (!accepted.ok) {
      // A msg1 for another organisation or with a bad key: end it rather than hold it.
      await this.invoke('Close', [sessionId], signal).catch(() => undefined);
      throw new TrustLineError('bad_msg1', `The seeker's handshake was refused (${accepted.error}); the session was closed.`);
    }
    const entry = readQueueEntry([sessionId, taken[2], taken[3], taken[4], 0]);
    const session = new ResponderSession(this, entry, accepted.channel);
    this.held.set(session.id, session);
    await this.invoke('Answer', [sessionId, accepted.msg2], signal);
    return session;
  }

  private clearOffer(sessionId: Uint8Array): void {
    if (this.offer && equalBytes(this.offer.sessionId, sessionId)) this.offer = null;
  }

  private register(hub: HubConnection): void {
    const guard = <A extends unknown[]>(f: (...a: A) => unknown) => (...a: A) => {
      try {
        const r = f(...a);
        if (r instanceof Promise) r.catch(() => undefined);
      } catch {
        // nothing the server sends may throw into the app
      }
    };
    hub.on('QueueChanged', guard((q: unknown) => this.events.emit('queue', readQueueSnapshot(q))));
    hub.on('Offered', guard((o: unknown) => {
      const offer = readOffer(o);
      if (offer.sessionId.length !== 16) return;
      this.offer = offer;
      this.events.emit('offered', offer);
    }));
    hub.on('OfferWithdrawn', guard((id: unknown, reason: unknown) => {
      if (!(id instanceof Uint8Array) || id.length !== 16) return;
      this.clearOffer(id);
      this.events.emit('offerWithdrawn', id, String(reason ?? ''));
    }));
    hub.on('AvailabilityChanged', guard((s: unknown) => {
      const status = readResponderStatus(s);
      this.isAvailable = status.available;
      this.events.emit('availability', status);
    }));
    hub.on('Envelope', guard((envelope: unknown) => {
      if (!(envelope instanceof Uint8Array) || envelope.length < 35) return;
      this.held.get(toHex(envelope.subarray(3, 19)))?.onEnvelope(envelope);
    }));
    hub.on('Delivered', guard((id: unknown, sequence: unknown) => {
      if (id instanceof Uint8Array) this.held.get(toHex(id))?.onDelivered(Number(sequence));
    }));
    hub.on('SeekerConnection', guard((id: unknown, connected: unknown) => {
      if (id instanceof Uint8Array && typeof connected === 'boolean') this.held.get(toHex(id))?.onSeekerConnection(connected);
    }));
    hub.on('TransferOutcome', guard((result: unknown) => {
      const [id, outcome] = (Array.isArray(result) ? result : []) as unknown[];
      if (id instanceof Uint8Array && typeof outcome === 'string') this.held.get(toHex(id))?.onTransferOutcome(outcome);
    }));
    hub.on('SessionEnded', guard((end: unknown) => {
      const { sessionId, reason } = readSessionEnd(end);
      const id = toHex(sessionId);
      const session = this.held.get(id);
      this.held.delete(id);
      session?.onEnded(reason);
    }));
  }

  private async resume(hub: HubConnection): Promise<void> {
    // A new connection starts away, and an offer to the old one went with it.
    this.offer = null;
    const sessions = [...this.held.values()];
    // Hold every session's send gate: no text goes out before its session is resumed and resent.
    const releases = await Promise.all(sessions.map((s) => s.holdSends()));
    try {
      for (const session of sessions) {
        try {
          await hub.invoke('ResumeSession', [session.sessionId, new Uint8Array(0), session.receivedThrough]);
        } catch (e) {
          if (!(refusalOf(e) instanceof TrustLineError)) throw e;
          this.held.delete(session.id); // that session ended while we were away
          session.onEnded(EndReasons.resumeRefused);
        }
      }
      this.connection.activate(hub);
      for (const session of sessions) if (!session.endReason) await session.resend(hub);
    } finally {
      for (const release of releases) release();
    }
    if (this.isAvailable) {
      // After the resumes, so the server counts the chats of the new connection.
      this.events.emit('availability', readResponderStatus(await hub.invoke('SetAvailability', true)));
    }
  }
}

/** One session a responder holds. */
export class ResponderSession {
  readonly events = new Events<ResponderSessionEvents>();
  /** Hex of the 16-byte session id. */
  readonly id: string;
  readonly sessionId: Uint8Array;
  readonly language: string;
  readonly topic: string;
  readonly urgent: boolean;
  private readonly sendGate = new Gate();
  private readonly acks: AckBatcher;
  private readonly gaps: GapWatch;
  private reason: string | null = null;
  private seekerHello: SeekerHello | null = null;
  private closing = false;
  private seekerAway = false;
  private establishedWaiters: Array<(hello: SeekerHello) => void> = [];

  /** False while the seeker's connection is away. */
  get seekerConnected(): boolean {
    return !this.seekerAway;
  }

  /** @internal */
  onSeekerConnection(connected: boolean): void {
    if (this.reason !== null || this.seekerAway === !connected) return;
    this.seekerAway = !connected;
    this.events.emit('seekerConnection', connected);
  }

  /** @internal */
  constructor(private readonly client: ResponderClient, entry: QueueEntry, private readonly channel: SecureChannel) {
    this.sessionId = entry.sessionId.slice();
    this.id = toHex(this.sessionId);
    this.language = entry.language;
    this.topic = entry.topic;
    this.urgent = entry.urgent;
    this.acks = new AckBatcher((through) => this.client.hub.invoke('Acknowledge', this.sessionId, through));
    this.gaps = new GapWatch(() => this.channel.checkGap(), () => void this.messagesMissing());
  }

  get endReason(): string | null {
    return this.reason;
  }

  /** The seeker's HELLO once it opened (whether it proved a pseudonym). */
  get hello(): SeekerHello | null {
    return this.seekerHello;
  }

  get receivedThrough(): number {
    return this.channel.nextReceiveSequence - 1;
  }

  get unknownDropped(): number {
    return this.channel.unknownDropped;
  }

  /** Resolves when the seeker's HELLO has opened (it may arrive before `takeNext` returns). */
  whenEstablished(signal?: AbortSignal): Promise<SeekerHello> {
    if (this.seekerHello) return Promise.resolve(this.seekerHello);
    return withSignal(new Promise((resolve) => this.establishedWaiters.push(resolve)), signal);
  }

  sendText(text: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    return withSignal(this.sendGate.run(async () => {
      if (this.reason) throw new Error('The session has ended.');
      const envelope = this.channel.sealText(text);
      try {
        await sendRetrying(() => this.client.hub.invoke('Send', envelope), () => Boolean(this.reason));
      } catch (e) {
        const refused = refusalOf(e);
        if (refused instanceof TrustLineError) throw refused;
        // Offline: resent after the resume.
      }
    }), options.signal);
  }

  /**
   * Proposes to hand this chat to a colleague (`orgId` is the own organisation's) or to a partner organisation
   * the server lists for it; tell the seeker in the chat first. The answer comes as the `transferOutcome` event.
   * Refused with a `TrustLineError` (`not_a_partner`, `closed`, `queue_full`, `wrong_state`, …).
   */
  async transfer(orgId: Uint8Array, options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.reason) throw new Error('The session has ended.');
    await this.client.invoke('Transfer', [this.sessionId, orgId], options.signal);
  }

  /** @internal */
  onTransferOutcome(outcome: string): void {
    if (this.reason === null) this.events.emit('transferOutcome', outcome);
  }

  /**
   * Ends the session for both sides: the seeker's app is told first, end to end (CLOSE, PROTOCOL.md §3), then the
   * server deletes everything of the session.
   */
  async close(options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.reason) return;
    this.closing = true;
    await issueClose(this.sendGate, () => (!this.reason && this.seekerHello && this.channel.endReason === null ? this.channel.sealClose() : null),
      async (envelope) => {
        try {
          await sendRetrying(() => this.client.hub.invoke('Send', envelope), () => Boolean(this.reason));
        } catch {
          // Offline or refused: the server's close still ends the session for the seeker.
        }
      }, closeWaitMs, options.signal);
    await this.client.invoke('Close', [this.sessionId], options.signal);
    this.client.forget(this.id);
    this.onEnded(EndReasons.responderClosed);
  }

  /** @internal */
  holdSends(): Promise<() => void> {
    return new Promise((acquired) => {
      void this.sendGate.run(() => new Promise<void>((release) => acquired(release)));
    });
  }

  /** @internal After a reconnect, with the send gate held: resend exactly the bytes not yet delivered. */
  async resend(hub: HubConnection): Promise<void> {
    for (const { envelope } of this.channel.unacknowledged) await hub.invoke('Send', envelope);
  }

  /** @internal */
  onEnvelope(envelope: Uint8Array): void {
    const opened = this.channel.tryOpen(envelope);
    if (opened.status === 'delivered') {
      for (const m of opened.messages) {
        if (m.type === CONTENT_HELLO && m.hello) {
          this.seekerHello = m.hello;
          for (const w of this.establishedWaiters.splice(0)) w(m.hello);
          this.events.emit('established', m.hello);
        } else if (m.type === CONTENT_TEXT && m.text !== undefined) {
          this.events.emit('message', m.text);
        }
      }
      this.acks.received(this.channel.nextReceiveSequence - 1);
      // The seeker's CLOSE: over, in the seeker's words; the server's close is the sender's (§3).
      if (opened.messages.some((m) => m.type === CONTENT_CLOSE) && !this.closing) {
        this.onEnded(EndReasons.seekerClosed);
        this.client.forget(this.id);
      }
    } else if (opened.status === 'buffered') {
      this.gaps.start();
    } else if (opened.status === 'messages_missing') {
      void this.messagesMissing();
    }
  }

  /** @internal */
  onDelivered(sequence: number): void {
    this.channel.acknowledge(sequence);
  }

  /** @internal */
  onEnded(reason: string): void {
    if (this.reason) return;
    this.reason = reason;
    this.acks.dispose();
    this.gaps.dispose();
    this.events.emit('ended', reason);
  }

  /** @internal */
  dispose(): void {
    this.acks.dispose();
    this.gaps.dispose();
    this.channel.dispose();
    this.events.clear();
  }

  private messagesMissing(): Promise<void> {
    return this.closeQuietly(EndReasons.messagesMissing);
  }

  private async closeQuietly(reason: string): Promise<void> {
    if (this.reason) return;
    this.onEnded(reason);
    this.client.forget(this.id);
    try {
      await this.client.hub.invoke('Close', this.sessionId);
    } catch {
      // Over for this side either way; the server's timers end it too.
    }
  }
}

/** True when two session ids are the same. */
export function sameSession(a: Uint8Array, b: Uint8Array): boolean {
  return equalBytes(a, b);
}
