// A help-seeker's session (the .NET SDK's SeekerClient): open with routing choices (solving the admission
// puzzle when asked), wait in the queue, verify the counsellor against the pinned organisation keys, then
// exchange end-to-end encrypted text; reconnect and resume by itself, resending the very same bytes.
import type { HubConnection } from '@microsoft/signalr';
import { fingerprint, type OrganisationPin } from '../certificate.js';
import { equalBytes } from '../bytes.js';
import { CONTENT_ACK, CONTENT_CLOSE, CONTENT_TEXT, type Pseudonym, type SecureChannel } from '../channel.js';
import { SeekerHandshake } from '../handshake.js';
import { solvePuzzle, type SolveOptions } from '../puzzle.js';
import { AckBatcher, closeWaitMs, EndReasons, GapWatch, placeFrom, readQueueMoved, readQueueStatus, readResumeResult, readSessionEnd, readTransferProposal, Routes, type QueueStatus } from './common.js';
import { type ClientOptions, type ConnectionStatus, ReconnectingConnection } from './connection.js';
import { issueClose } from './closing.js';
import { Events, Gate, refusalOf, sendRetrying, TrustLineError, withSignal } from './errors.js';

export type SeekerState = 'new' | 'waiting' | 'connected' | 'reconnecting' | 'ended';

/** What a seeker's session tells the app. */
export interface SeekerEvents {
  state: (state: SeekerState) => void;
  queue: (status: QueueStatus) => void;
  /** A text from the counsellor, decrypted and verified. */
  message: (text: string) => void;
  /** The counsellor's side received the seeker's messages up to this sequence. */
  delivered: (sequence: number) => void;
  /** The admission puzzle's progress while solving: hashes tried and the expected number. */
  puzzle: (tried: number, expected: number) => void;
  ended: (reason: string) => void;
  /**
   * The counsellor proposes to hand the chat to a colleague or a partner the app knows (`transferTargets`);
   * ask the person, then `acceptTransfer()` or `declineTransfer()`.
   */
  transferProposed: (offer: TransferOffer) => void;
  /** A proposal was declined without asking, and why (`unknown_organisation`: no pins for the target). */
  transferDeclined: (reason: string) => void;
  /** The transfer was made: the chat is a new session waiting with `target`; `connected` follows when a counsellor there is verified. */
  transferred: (target: KnownOrganisation) => void;
}

/** An organisation the app knows by name and pins (never from the server). */
export interface KnownOrganisation {
  name: string;
  pin: OrganisationPin;
}

/** A transfer the counsellor proposed, with the target as the app's own pins name it. */
export interface TransferOffer {
  target: KnownOrganisation;
  /** True when the chat goes to a colleague of the same organisation. */
  sameOrganisation: boolean;
  /** When the proposal lapses (milliseconds, by the client's clock). */
  answerBy: number;
}

export interface OpenOptions {
  /** A language the organisation lists, e.g. `nl`. */
  language: string;
  topic?: string;
  /** "I am in danger now": answered first. */
  urgent?: boolean;
  signal?: AbortSignal;
  /** How the puzzle is solved; defaults to a chunked loop on this thread. A page may pass a worker. */
  solve?: (puzzle: Uint8Array, sessionId: Uint8Array, options: SolveOptions) => Promise<Uint8Array>;
}

export interface SeekerClientOptions extends ClientOptions {
  /** The seeker's pseudonym for this organisation, to be recognised as returning. */
  pseudonym?: Pseudonym;
  /** The name the app shows for the organisation it opens with. */
  organisationName?: string;
  /** Partner organisations a counsellor may transfer this seeker to; a proposal for any other is declined without asking. */
  transferTargets?: KnownOrganisation[];
}

export class SeekerClient {
  readonly events = new Events<SeekerEvents>();
  private readonly connection: ReconnectingConnection;
  private readonly sendGate = new Gate();
  private readonly acks: AckBatcher;
  private readonly gaps: GapWatch;
  private readonly now: () => number;
  private handshake: SeekerHandshake | null = null;
  private channel: SecureChannel | null = null;
  private resumeToken: Uint8Array = new Uint8Array(0);
  private currentState: SeekerState = 'new';
  private reason: string | null = null;
  private responderFingerprint: string | null = null;
  private pin: OrganisationPin;
  private pseudonym: Pseudonym | null;
  private offer: TransferOffer | null = null;
  private transferringFrom: Uint8Array | null = null;
  private endWhileTransferring: string | null = null;
  private place: QueueStatus | null = null; // the last place told, with the ticket and the hold
  private awaySince: number | null = null;

  /**
   * @param server the server's base address (any node), e.g. `https://help.example.org`
   * @param pin the organisation's pinned id and roots
   */
  constructor(server: string, pin: OrganisationPin, private readonly options: SeekerClientOptions = {}) {
    this.pin = pin;
    this.pseudonym = options.pseudonym ?? null;
    this.now = options.now ?? Date.now;
    this.connection = new ReconnectingConnection([server, ...(options.fallbackServers ?? [])], Routes.seekerHub, options, undefined,
      (hub) => this.register(hub), (hub) => this.resume(hub), (status) => this.onStatus(status));
    this.acks = new AckBatcher((through) => this.connection.hub.invoke('Acknowledge', through));
    this.gaps = new GapWatch(() => this.channel?.checkGap() ?? false, () => void this.messagesMissing());
  }

  get state(): SeekerState {
    return this.currentState;
  }

  /** Why the session ended: a server code, `messages_missing`, `connection_lost`, or `handshake_failed:…`. */
  get endReason(): string | null {
    return this.reason;
  }

  /** The counsellor's key fingerprint once verified (a counsellor may read theirs aloud). */
  get fingerprint(): string | null {
    return this.responderFingerprint;
  }

  /** The organisation whose counsellor the seeker talks to or waits for (changes with a transfer). */
  get organisationId(): Uint8Array {
    return this.pin.orgId;
  }

  /** The transfer proposed and not yet answered, or null. */
  get pendingTransfer(): TransferOffer | null {
    return this.offer;
  }

  /**
   * Accepts the proposed transfer: a fresh handshake (new session id, new ephemeral key) for the target's pin;
   * the old chat ends on both sides and nothing of it goes along. Resolves with the place in the target's queue.
   * A refusal (`no_transfer`: lapsed; `queue_full`, `closed`) leaves the chat as it was.
   */
  async acceptTransfer(options: { signal?: AbortSignal } = {}): Promise<QueueStatus> {
    const offer = this.offer;
    if (!offer || this.currentState === 'ended' || this.transferringFrom) throw new Error('No transfer is proposed.');
    this.offer = null;
    // From now on the end of the session being left is expected, not this chat's end.
    this.transferringFrom = this.channel?.sessionId.slice() ?? null;
    // Under the send gate: the old channel's sends finish first, and the new session's answer waits for the swap.
    return this.sendGate.run(async () => {
      let next: SeekerHandshake | null = null;
      let result: unknown;
      try {
        next = SeekerHandshake.start(offer.target.pin, { now: this.now });
        result = await this.invoke('AcceptTransfer', [next.msg1], options.signal);
      } catch (e) {
        next?.dispose();
        const ended = this.endWhileTransferring;
        this.transferringFrom = null;
        this.endWhileTransferring = null;
        if (ended) this.end(ended);
        throw e;
      }
      this.transferringFrom = null;
      this.endWhileTransferring = null;
      this.acks.dispose();
      this.gaps.dispose();
      this.channel?.dispose();
      this.channel = null;
      this.handshake = next;
      // A pseudonym belongs to one organisation (PROTOCOL.md §4): never shown to another.
      if (!offer.sameOrganisation) this.pseudonym = null;
      this.pin = offer.target.pin;
      this.responderFingerprint = null;
      const a = result as unknown[];
      this.resumeToken = a[0] instanceof Uint8Array ? a[0] : new Uint8Array(0);
      const queue = readQueueStatus(a[1]);
      this.place = queue;
      this.setState('waiting');
      this.events.emit('transferred', offer.target);
      this.events.emit('queue', queue);
      return queue;
    });
  }

  /** Declines the proposed transfer: the chat goes on with the same counsellor, who is told. */
  async declineTransfer(options: { signal?: AbortSignal } = {}): Promise<void> {
    if (!this.offer) throw new Error('No transfer is proposed.');
    this.offer = null;
    await this.invoke('DeclineTransfer', [], options.signal);
  }

  /**
   * How long the server keeps a waiting seeker's place while the connection is lost (a phone that switched
   * apps), in seconds, once open; null before or when not told. Tell the seeker before it happens.
   */
  get queueHoldSeconds(): number | null {
    return this.place && this.place.holdSeconds > 0 ? this.place.holdSeconds : null;
  }

  /** The highest seq received in order from the counsellor, −1 for none. */
  get receivedThrough(): number {
    return this.channel ? this.channel.nextReceiveSequence - 1 : -1;
  }

  /** Authenticated envelopes of an unknown content type, dropped (§3). */
  get unknownDropped(): number {
    return this.channel?.unknownDropped ?? 0;
  }

  /**
   * Opens the session and joins the queue. Opens without a puzzle first; if the server answers
   * `puzzle_required`, fetches one, solves it and opens again with the solution (PROTOCOL.md §9).
   */
  async open(options: OpenOptions): Promise<QueueStatus> {
    if (this.currentState !== 'new') throw new Error('A SeekerClient opens one session; create a new one for another.');
    const { signal } = options;
    this.handshake = SeekerHandshake.start(this.pin, { now: this.now });
    const msg1 = this.handshake.msg1;
    await this.connection.start(signal);
    const request = (puzzle: Uint8Array, solution: Uint8Array) =>
      [msg1, options.language, options.topic ?? '', options.urgent === true, puzzle, solution];
    let result: unknown;
    try {
      result = await this.invoke('OpenSession', [request(new Uint8Array(0), new Uint8Array(0))], signal);
    } catch (e) {
      if (!(e instanceof TrustLineError) || e.code !== 'puzzle_required') throw e;
      const puzzle = (await this.invoke('GetPuzzle', [this.pin.orgId], signal)) as Uint8Array;
      const solve = options.solve ?? solvePuzzle;
      const solution = await solve(puzzle, this.handshake.sessionId, {
        ...(signal ? { signal } : {}), onProgress: (tried, expected) => this.events.emit('puzzle', tried, expected),
      });
      result = await this.invoke('OpenSession', [request(puzzle, solution)], signal);
    }
    const a = result as unknown[];
    this.resumeToken = a[0] instanceof Uint8Array ? a[0] : new Uint8Array(0);
    const queue = readQueueStatus(a[1]);
    this.place = queue;
    if (this.currentState === 'new') this.setState('waiting');
    return queue;
  }

  /** Encrypts and sends a text; delivered across reconnects; refused once the session ended. */
  sendText(text: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    return withSignal(this.sendGate.run(async () => {
      if (this.currentState === 'ended' || !this.channel) throw new Error('Messages can be sent once a counsellor is connected, and not after the end.');
      const envelope = this.channel.sealText(text);
      await this.sendEnvelope(envelope);
    }), options.signal);
  }

  /**
   * Ends the session (or leaves the queue). With a counsellor connected, the counsellor's app is told first, end
   * to end (CLOSE, PROTOCOL.md §3: it ends the chat as closed by this side); then the server deletes everything
   * of the session at once.
   */
  async close(options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.currentState === 'ended') return;
    // Named now, so the counsellor's close that our CLOSE may bring back first does not rename this end.
    this.reason ??= EndReasons.seekerClosed;
    if (this.channel) {
      await issueClose(this.sendGate, () => (this.channel && this.channel.endReason === null ? this.channel.sealClose() : null),
        (envelope) => this.sendEnvelope(envelope), closeWaitMs, options.signal);
    }
    const hub = await this.connection.active(options.signal);
    try {
      await withSignal(hub.invoke('Close'), options.signal);
    } catch (e) {
      // The server's SessionEnded can arrive before the call's answer, and ending stops the connection;
      // a refusal (no_such_session) also means it is over already.
      const refused = refusalOf(e);
      if (!(refused instanceof TrustLineError) && (this.currentState as SeekerState) !== 'ended') throw refused;
    }
    this.end(EndReasons.seekerClosed);
  }

  /** Cuts the network connection as a phone losing signal would; the client comes back by itself. */
  simulateNetworkLoss(preferServer?: number): Promise<void> {
    return this.connection.drop(preferServer);
  }

  /** Stops the connection and forgets every key (chain state is never saved). */
  async dispose(): Promise<void> {
    this.acks.dispose();
    this.gaps.dispose();
    await this.connection.dispose();
    this.handshake?.dispose();
    this.channel?.dispose();
    this.handshake = null;
    this.channel = null;
    this.resumeToken.fill(0);
    this.end(EndReasons.connectionLost);
    this.events.clear();
  }

  private async invoke(method: string, args: unknown[], signal?: AbortSignal): Promise<unknown> {
    try {
      return await withSignal(this.connection.hub.invoke(method, ...args), signal);
    } catch (e) {
      throw refusalOf(e);
    }
  }

  private register(hub: HubConnection): void {
    // Every handler is guarded: nothing a peer or the server sends may throw into the app or the SDK.
    const guard = <A extends unknown[]>(f: (...a: A) => unknown) => (...a: A) => {
      try {
        const r = f(...a);
        if (r instanceof Promise) r.catch(() => undefined);
      } catch {
        // dropped
      }
    };
    hub.on('QueuePosition', guard((status: unknown) => this.events.emit('queue', readQueueStatus(status))));
    hub.on('QueueMoved', guard((moved: unknown) => this.onQueueMoved(moved)));
    hub.on('Answered', guard((msg2: unknown) => this.sendGate.run(() => this.answer(msg2))));
    hub.on('Envelope', guard((envelope: unknown) => this.onEnvelope(envelope)));
    hub.on('Delivered', guard((sequence: unknown) => {
      this.channel?.acknowledge(Number(sequence));
      this.events.emit('delivered', Number(sequence));
    }));
    hub.on('SessionEnded', guard((end: unknown) => this.onSessionEnded(end)));
    hub.on('TransferProposed', guard((proposal: unknown) => this.onTransferProposed(proposal)));
  }

  private onSessionEnded(value: unknown): void {
    const { sessionId, reason } = readSessionEnd(value);
    const current = this.handshake?.sessionId ?? this.channel?.sessionId;
    if (this.transferringFrom && (sessionId.length === 0 || equalBytes(sessionId, this.transferringFrom))) {
      // The session being left ends while the accept is on its way; any other end counts if the accept fails.
      this.endWhileTransferring ??= reason || 'ended';
      return;
    }
    // The end of a session this client left by a transfer: not this chat's.
    if (sessionId.length === 16 && current && !equalBytes(sessionId, current)) return;
    this.end(reason || 'ended');
  }

  private async onTransferProposed(value: unknown): Promise<void> {
    const proposal = readTransferProposal(value);
    const current = this.channel?.sessionId;
    // Only for this chat, while a counsellor is connected: anything else is not ours to answer.
    if (!proposal || !current || this.transferringFrom || this.currentState === 'ended' || !equalBytes(proposal.sessionId, current)) return;
    const own = equalBytes(proposal.orgId, this.pin.orgId);
    const target = own
      ? (this.options.transferTargets?.find((t) => equalBytes(t.pin.orgId, this.pin.orgId)) ?? { name: this.options.organisationName ?? '', pin: this.pin })
      : this.options.transferTargets?.find((t) => equalBytes(t.pin.orgId, proposal.orgId));
    if (!target) {
      this.offer = null;
      this.events.emit('transferDeclined', 'unknown_organisation');
      await this.invoke('DeclineTransfer', []).catch(() => undefined);
      return;
    }
    this.offer = { target, sameOrganisation: own, answerBy: this.now() + proposal.answerWithinSeconds * 1000 };
    this.events.emit('transferProposed', this.offer);
  }

  private onQueueMoved(moved: unknown): void {
    // Only while waiting with a ticket: a notice that crosses the take, or comes before the open's answer, says nothing.
    const known = this.place;
    if (this.channel || this.currentState === 'ended' || this.currentState === 'new' || !known || known.ticket <= 0) return;
    const status = placeFrom(readQueueMoved(moved), known.ticket, known.urgentTicket, known.holdSeconds);
    if (!status) return;
    this.place = status;
    this.events.emit('queue', status);
  }

  private async answer(msg2: unknown): Promise<void> {
    if (this.channel || !this.handshake || this.currentState === 'ended' || !(msg2 instanceof Uint8Array)) return;
    const result = this.handshake.complete(msg2);
    if (!result.ok) {
      // A msg2 that does not verify is never trusted; the session cannot go on safely.
      this.reason = `handshake_failed:${result.error === 'CertificateChain' ? result.chainError : result.error}`;
      await this.connection.hub.invoke('Close').catch(() => undefined);
      this.end(this.reason);
      return;
    }
    this.channel = result.channel;
    this.responderFingerprint = fingerprint(result.responderPublicKey);
    const hello = this.channel.sealHello(this.pseudonym);
    this.handshake.dispose();
    this.handshake = null;
    // HELLO goes first: only then may the app's texts follow (§2).
    await this.sendEnvelope(hello);
    this.setState('connected');
  }

  private onEnvelope(envelope: unknown): void {
    if (!this.channel || !(envelope instanceof Uint8Array)) return;
    const opened = this.channel.tryOpen(envelope);
    switch (opened.status) {
      case 'delivered':
        for (const m of opened.messages) {
          if (m.type === CONTENT_TEXT && m.text !== undefined) this.events.emit('message', m.text);
          else if (m.type === CONTENT_ACK && m.acknowledged !== undefined) this.events.emit('delivered', m.acknowledged);
        }
        this.acks.received(this.channel.nextReceiveSequence - 1);
        // The counsellor's CLOSE: over, in the counsellor's words; the server's close is the sender's (§3).
        if (opened.messages.some((m) => m.type === CONTENT_CLOSE)) this.end(EndReasons.responderClosed);
        break;
      case 'buffered':
        this.gaps.start();
        break;
      case 'messages_missing':
        void this.messagesMissing();
        break;
      default:
        break; // duplicate or rejected: no state change, nothing for the app
    }
  }

  private async messagesMissing(): Promise<void> {
    if (this.currentState === 'ended') return;
    this.reason ??= EndReasons.messagesMissing;
    try {
      await this.connection.hub.invoke('Close');
    } catch {
      // Over for this side either way; the server's timers end it too.
    }
    this.end(EndReasons.messagesMissing);
  }

  private resume(hub: HubConnection): Promise<void> {
    // Under the send gate from start to end: the app's sends wait, then go out after the resend, in order.
    return this.sendGate.run(async () => {
      const sessionId = this.handshake?.sessionId ?? this.channel?.sessionId;
      if (!sessionId) throw new TrustLineError('no_such_session', 'Nothing to resume.');
      let raw: unknown;
      try {
        raw = await hub.invoke('ResumeSession', [sessionId, this.resumeToken, this.receivedThrough]);
      } catch (e) {
        const refused = refusalOf(e);
        // Nobody was connected to hear why the place ended: away for the whole hold, this is why.
        if (refused instanceof TrustLineError && refused.code === 'resume_refused' && !this.channel && this.holdRanOut()) this.end(EndReasons.queueHoldExpired);
        throw refused;
      }
      const result = readResumeResult(raw as unknown[]);
      this.connection.activate(hub);
      this.awaySince = null;
      if (result.queued) {
        if (result.queue.ticket === 0 && this.place) result.queue.holdSeconds = this.place.holdSeconds; // an older server
        this.place = result.queue;
        this.events.emit('queue', result.queue);
      }
      if (result.msg2 && !this.channel) await this.answer(result.msg2);
      // Resend exactly the bytes not yet delivered, in order; the server drops what it already has.
      for (const { envelope } of this.channel?.unacknowledged ?? []) {
        await hub.invoke('Send', envelope);
      }
    });
  }

  private async sendEnvelope(envelope: Uint8Array): Promise<void> {
    try {
      await sendRetrying(() => this.connection.hub.invoke('Send', envelope), () => this.currentState === 'ended');
    } catch (e) {
      const refused = refusalOf(e);
      if (refused instanceof TrustLineError && this.currentState !== 'ended') throw refused;
      // Offline: the envelope stays in the channel's outbox and is resent after the resume.
    }
  }

  /** Away about as long as the hold: the server notices a lost connection up to half a minute after the client. */
  private holdRanOut(): boolean {
    const hold = this.queueHoldSeconds;
    return this.awaySince !== null && hold !== null && this.now() - this.awaySince >= (hold - 30) * 1000;
  }

  private onStatus(status: ConnectionStatus): void {
    if (status === 'reconnecting' && this.currentState !== 'ended') {
      this.awaySince ??= this.now();
      this.setState('reconnecting');
    }
    else if (status === 'connected' && this.currentState === 'reconnecting') this.setState(this.channel ? 'connected' : 'waiting');
    else if (status === 'closed' && this.currentState !== 'ended' && this.currentState !== 'new') this.end(EndReasons.connectionLost);
  }

  private end(reason: string): void {
    if (this.currentState === 'ended') return;
    this.reason ??= reason;
    this.acks.dispose();
    this.gaps.dispose();
    this.setState('ended');
    this.events.emit('ended', this.reason);
    // Nothing more comes for this session: stop the connection (it may already be gone).
    void this.connection.dispose().catch(() => undefined);
  }

  private setState(next: SeekerState): void {
    if (this.currentState === next) return;
    this.currentState = next;
    this.events.emit('state', next);
  }
}
