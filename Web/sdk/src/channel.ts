// The end-to-end channel of PROTOCOL.md §3 (and the HELLO proof of §4).
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { x25519 } from '@noble/curves/ed25519.js';
import { expand, hkdf } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { concat, constantTimeEqual, decodeUtf8, equalBytes, readU64, utf8, wipe, writeU64 } from './bytes.js';
import {
  bucketFor, CK_LABEL, DIR_C2S, DIR_S2C, HEADER_SIZE, isEnvelopeSize, MAX_BODY_SIZE, MK_LABEL, RET_LABEL,
  SEQUENCE_CAP, SESSION_ID_SIZE, TAG_SIZE, TYPE_DATA, VERSION,
} from './wire.js';

export const CONTENT_TEXT = 0x01;
export const CONTENT_HELLO = 0x02;
export const CONTENT_ACK = 0x03;
export const CONTENT_CLOSE = 0x04;

/** How many out-of-order ciphertexts are held across a gap. */
export const MAX_HELD = 64;
/** How long a held ciphertext may wait for its gap to fill, milliseconds. */
export const MAX_HOLD_MS = 30_000;

export type Role = 'seeker' | 'responder';

/** Why an envelope was refused; the names match the .NET SDK's `RejectReason`. */
export type RejectReason =
  | 'BadSize' | 'BadVersion' | 'BadType' | 'WrongDirection' | 'OtherSession' | 'SequenceOutOfRange'
  | 'AuthenticationFailed' | 'LengthPastBucket' | 'NonZeroPadding' | 'MalformedBody'
  | 'ExpectedHello' | 'UnexpectedHello' | 'ChannelEnded';

export type ChannelEndReason = 'closed' | 'peer_closed' | 'messages_missing';

/** The seeker's HELLO as the responder saw it. */
export interface SeekerHello {
  /** True only when the returning proof verified for this handshake. */
  readonly isReturning: boolean;
  /** The verified `s_U_pub`, or null for a new seeker. */
  readonly pseudonymPublicKey: Uint8Array | null;
}

/** One decrypted message. `type` is a content type byte; unknown types never reach here. */
export interface ReceivedMessage {
  readonly sequence: number;
  readonly type: number;
  readonly body: Uint8Array;
  /** For TEXT. */
  readonly text?: string;
  /** For ACK: the highest sequence the peer received in order. */
  readonly acknowledged?: number;
  /** For HELLO on the responder's side. */
  readonly hello?: SeekerHello;
}

export type OpenResult =
  | { status: 'delivered'; messages: ReceivedMessage[] }
  | { status: 'buffered' }
  | { status: 'duplicate' }
  | { status: 'rejected'; reason: RejectReason }
  | { status: 'messages_missing' };

/** A seeker's pseudonym for one organisation (§4): an X25519 key pair kept by the app, never by the SDK. */
export interface Pseudonym {
  readonly privateKey: Uint8Array;
  readonly publicKey: Uint8Array;
}

export function createPseudonym(privateKey?: Uint8Array): Pseudonym {
  const secret = privateKey ? privateKey.slice() : x25519.utils.randomSecretKey();
  return { privateKey: secret, publicKey: x25519.getPublicKey(secret) };
}

/**
 * X25519 with the peer's wire bytes (§2): null for a wrong size, a top bit set, a low-order point or an
 * all-zero result. Never throws.
 */
export function agree(ownPrivate: Uint8Array, peerPublic: Uint8Array): Uint8Array | null {
  if (peerPublic.length !== 32 || (peerPublic[31]! & 0x80) !== 0) return null;
  let shared: Uint8Array;
  try {
    shared = x25519.getSharedSecret(ownPrivate, peerPublic);
  } catch {
    return null;
  }
  if (shared.every((b) => b === 0)) return null;
  return shared;
}

/** `tag = HMAC-SHA-256(k_ret, TH)` with `k_ret = HKDF(X25519(s_U, e_R_pub), "TrustLine/v1/ret", "TrustLine/v1/ret" ‖ TH)`. */
export function returningTag(secret: Uint8Array | null, transcriptHash: Uint8Array): Uint8Array | null {
  if (!secret) return null;
  const kRet = hkdf(sha256, secret, RET_LABEL, concat(RET_LABEL, transcriptHash), 32);
  const tag = hmac(sha256, kRet, transcriptHash);
  wipe(kRet);
  wipe(secret);
  return tag;
}

class ChainKey {
  next = 0;
  constructor(private key: Uint8Array) {}
  messageKey(): Uint8Array {
    return expand(sha256, this.key, MK_LABEL, 32);
  }
  advance(): void {
    const next = expand(sha256, this.key, CK_LABEL, 32);
    wipe(this.key);
    this.key = next;
    this.next++;
  }
  copyForTests(): Uint8Array {
    return this.key.slice();
  }
  dispose(): void {
    wipe(this.key);
  }
}

interface Held {
  readonly sequence: number;
  readonly envelope: Uint8Array;
  readonly arrivedAt: number;
}

export interface ChannelInit {
  role: Role;
  sessionId: Uint8Array;
  sendChain: Uint8Array;
  receiveChain: Uint8Array;
  transcriptHash: Uint8Array;
  /** The seeker keeps `e_R_pub` for the returning proof. */
  responderEphemeralPublic?: Uint8Array;
  /** The responder keeps `e_R` until the HELLO is processed (§4). */
  ownEphemeral?: Uint8Array;
  /** Milliseconds since the epoch; the hold timer's clock. */
  now?: () => number;
}

/**
 * An established channel: seals and opens envelopes with a per-direction ratchet, padding to buckets, a
 * receive window for gaps, and an outbox of sealed envelopes kept until acknowledged, so a resend is
 * always the same bytes. Chain state lives only here, in memory; never save it.
 */
export class SecureChannel {
  readonly role: Role;
  readonly sessionId: Uint8Array;
  readonly transcriptHash: Uint8Array;
  private readonly send: ChainKey;
  private readonly receive: ChainKey;
  private readonly responderEphemeralPublic: Uint8Array | null;
  private ownEphemeral: Uint8Array | null;
  private readonly now: () => number;
  private readonly outbox = new Map<number, Uint8Array>();
  private held: Held[] = [];
  private established = false;
  private ended: ChannelEndReason | null = null;
  /** Authenticated envelopes of a content type this version does not know: dropped and counted (§3). */
  unknownDropped = 0;

  constructor(init: ChannelInit) {
    this.role = init.role;
    this.sessionId = init.sessionId.slice();
    this.transcriptHash = init.transcriptHash.slice();
    this.send = new ChainKey(init.sendChain.slice());
    this.receive = new ChainKey(init.receiveChain.slice());
    this.responderEphemeralPublic = init.role === 'seeker' && init.responderEphemeralPublic ? init.responderEphemeralPublic.slice() : null;
    this.ownEphemeral = init.ownEphemeral ?? null;
    this.now = init.now ?? Date.now;
  }

  /** Seeker: HELLO sealed. Responder: the seeker's HELLO decrypted (only then is the session established, §2). */
  get isEstablished(): boolean {
    return this.established;
  }

  get endReason(): ChannelEndReason | null {
    return this.ended;
  }

  get nextSendSequence(): number {
    return this.send.next;
  }

  get nextReceiveSequence(): number {
    return this.receive.next;
  }

  get heldCount(): number {
    return this.held.length;
  }

  /** Sealed envelopes not yet acknowledged, in order: after a reconnect, resend exactly these bytes. */
  get unacknowledged(): Array<{ sequence: number; envelope: Uint8Array }> {
    return [...this.outbox.entries()].sort((a, b) => a[0] - b[0]).map(([sequence, envelope]) => ({ sequence, envelope }));
  }

  private get sendDirection(): number {
    return this.role === 'seeker' ? DIR_C2S : DIR_S2C;
  }

  private get receiveDirection(): number {
    return this.role === 'seeker' ? DIR_S2C : DIR_C2S;
  }

  /** Seals the seeker's HELLO, its first envelope; with a pseudonym it carries the returning proof (§4). */
  sealHello(pseudonym?: Pseudonym | null): Uint8Array {
    if (this.role !== 'seeker' || this.established) throw new Error('Only the seeker sends HELLO, once, as its first envelope.');
    let body: Uint8Array;
    if (!pseudonym) {
      body = new Uint8Array([0x00]);
    } else {
      const tag = returningTag(agree(pseudonym.privateKey, this.responderEphemeralPublic!), this.transcriptHash);
      if (!tag) throw new Error('The pseudonym proof could not be made.');
      body = concat(new Uint8Array([0x01]), pseudonym.publicKey, tag);
    }
    const envelope = this.sealCore(CONTENT_HELLO, body);
    this.established = true;
    return envelope;
  }

  sealText(text: string): Uint8Array {
    return this.seal(CONTENT_TEXT, utf8(text));
  }

  /** Seals an end-to-end ACK of everything received in order so far. */
  sealAck(): Uint8Array {
    if (this.receive.next === 0) throw new Error('Nothing has been received yet.');
    const body = new Uint8Array(8);
    writeU64(body, 0, BigInt(this.receive.next - 1));
    return this.seal(CONTENT_ACK, body);
  }

  /** Seals CLOSE; the channel then ends and seals nothing more. */
  sealClose(): Uint8Array {
    const envelope = this.seal(CONTENT_CLOSE, new Uint8Array(0));
    this.end('closed');
    return envelope;
  }

  /** Seals TEXT, ACK or CLOSE content; refuses a body over 16381 bytes without using a sequence number. */
  seal(type: number, body: Uint8Array): Uint8Array {
    if (type === CONTENT_HELLO) throw new Error('Use sealHello for HELLO.');
    if (this.role === 'seeker' && !this.established) throw new Error("The seeker's first envelope must be HELLO.");
    return this.sealCore(type, body);
  }

  /** Forgets sealed envelopes up to and including `sequence`: they were delivered. */
  acknowledge(sequence: number): void {
    for (const seq of [...this.outbox.keys()]) if (seq <= sequence) this.outbox.delete(seq);
  }

  /**
   * Opens an envelope from the peer (§3). Never throws for bad input: a rejected envelope changes nothing,
   * an early one is held (never decrypted early), a late one is dropped.
   */
  tryOpen(envelope: Uint8Array): OpenResult {
    if (this.ended) return { status: 'rejected', reason: 'ChannelEnded' };
    if (this.holdExpired()) return { status: 'messages_missing' };
    const header = this.checkHeader(envelope);
    if (typeof header === 'string') return { status: 'rejected', reason: header };
    const sequence = header;
    if (sequence < this.receive.next || this.held.some((h) => h.sequence === sequence && equalBytes(h.envelope, envelope))) {
      return { status: 'duplicate' };
    }
    if (sequence > this.receive.next) {
      if (this.held.length >= MAX_HELD) {
        this.end('messages_missing');
        return { status: 'messages_missing' };
      }
      this.held.push({ sequence, envelope: envelope.slice(), arrivedAt: this.now() });
      return { status: 'buffered' };
    }
    const first = this.openNext(envelope);
    if (typeof first === 'string') return { status: 'rejected', reason: first };
    const messages: ReceivedMessage[] = [];
    if (first) messages.push(first);
    this.drainHeld(messages);
    return { status: 'delivered', messages };
  }

  /** Ends the channel as "messages missing" if a held ciphertext waited over 30 s; call it from a timer. */
  checkGap(): boolean {
    return this.holdExpired();
  }

  /** Zeroes the chain keys and forgets everything. */
  dispose(): void {
    this.send.dispose();
    this.receive.dispose();
    wipe(this.ownEphemeral);
    this.ownEphemeral = null;
    this.held = [];
    this.outbox.clear();
  }

  /** The current chain keys, for the known-answer tests only. */
  chainKeysForTests(): { send: Uint8Array; receive: Uint8Array; messageKey: Uint8Array } {
    return { send: this.send.copyForTests(), receive: this.receive.copyForTests(), messageKey: this.send.messageKey() };
  }

  /** Encrypts an arbitrary padded plaintext as the next envelope: for negative tests only. */
  sealPaddedForTests(padded: Uint8Array): Uint8Array {
    return this.encrypt(padded);
  }

  /** Seals any content type, HELLO rules aside: for known-answer and negative tests only. */
  sealRawForTests(type: number, body: Uint8Array): Uint8Array {
    return this.sealCore(type, body);
  }

  private sealCore(type: number, body: Uint8Array): Uint8Array {
    if (this.ended) throw new Error('The channel has ended; start a new session.');
    if (body.length > MAX_BODY_SIZE) throw new RangeError(`A body is at most ${MAX_BODY_SIZE} bytes; this one is ${body.length}.`);
    const padded = new Uint8Array(bucketFor(3 + body.length));
    padded[0] = type;
    padded[1] = body.length >> 8;
    padded[2] = body.length & 0xff;
    padded.set(body, 3);
    try {
      return this.encrypt(padded);
    } finally {
      wipe(padded);
    }
  }

  private encrypt(padded: Uint8Array): Uint8Array {
    if (BigInt(this.send.next) >= SEQUENCE_CAP) throw new Error('This direction has used all 2^32 sequence numbers.');
    const sequence = this.send.next;
    const header = new Uint8Array(HEADER_SIZE);
    header[0] = VERSION;
    header[1] = TYPE_DATA;
    header[2] = this.sendDirection;
    header.set(this.sessionId, 3);
    writeU64(header, 19, BigInt(sequence));
    const mk = this.send.messageKey();
    let sealed: Uint8Array;
    try {
      sealed = chacha20poly1305(mk, nonceFor(sequence), header).encrypt(padded);
    } finally {
      wipe(mk);
    }
    this.send.advance();
    const envelope = concat(header, sealed);
    this.outbox.set(sequence, envelope);
    return envelope;
  }

  private checkHeader(envelope: Uint8Array): number | RejectReason {
    if (!isEnvelopeSize(envelope.length)) return 'BadSize';
    if (envelope[0] !== VERSION) return 'BadVersion';
    if (envelope[1] !== TYPE_DATA) return 'BadType';
    if (envelope[2] !== this.receiveDirection) return 'WrongDirection';
    if (!equalBytes(envelope.subarray(3, 3 + SESSION_ID_SIZE), this.sessionId)) return 'OtherSession';
    const sequence = readU64(envelope, 19);
    return sequence >= SEQUENCE_CAP ? 'SequenceOutOfRange' : Number(sequence);
  }

  /**
   * Decrypts the envelope whose seq is the next expected; the ratchet moves only after every check passed,
   * so a forgery cannot desynchronise it. Returns null for a dropped unknown content type.
   */
  private openNext(envelope: Uint8Array): ReceivedMessage | null | RejectReason {
    const sequence = this.receive.next;
    const header = envelope.subarray(0, HEADER_SIZE);
    const mk = this.receive.messageKey();
    let plain: Uint8Array;
    try {
      plain = chacha20poly1305(mk, nonceFor(sequence), header).decrypt(envelope.subarray(HEADER_SIZE));
    } catch {
      return 'AuthenticationFailed';
    } finally {
      wipe(mk);
    }
    try {
      const type = plain[0]!;
      const length = (plain[1]! << 8) | plain[2]!;
      if (3 + length > plain.length) return 'LengthPastBucket';
      for (let i = 3 + length; i < plain.length; i++) if (plain[i] !== 0) return 'NonZeroPadding';
      const body = plain.slice(3, 3 + length);
      const checked = this.checkContent(type, body, sequence);
      if (typeof checked === 'string') return checked;
      this.receive.advance();
      if (type === CONTENT_HELLO) {
        this.established = true;
        wipe(this.ownEphemeral);
        this.ownEphemeral = null;
      } else if (type === CONTENT_CLOSE) {
        this.end('peer_closed');
      }
      if (checked === null) this.unknownDropped++;
      return checked;
    } finally {
      wipe(plain);
    }
  }

  private checkContent(type: number, body: Uint8Array, sequence: number): ReceivedMessage | null | RejectReason {
    const expectingHello = this.role === 'responder' && !this.established;
    if (type === CONTENT_HELLO) {
      if (!expectingHello) return 'UnexpectedHello';
      const returning = body.length === 65 && (body[0]! & 1) === 1;
      if (!returning && !(body.length === 1 && (body[0]! & 1) === 0)) return 'MalformedBody';
      let verified = false;
      if (returning && this.ownEphemeral) {
        const expected = returningTag(agree(this.ownEphemeral, body.subarray(1, 33)), this.transcriptHash);
        verified = expected !== null && constantTimeEqual(expected, body.subarray(33, 65));
      }
      return {
        sequence, type, body,
        hello: { isReturning: verified, pseudonymPublicKey: verified ? body.slice(1, 33) : null },
      };
    }
    if (expectingHello) return 'ExpectedHello';
    switch (type) {
      case CONTENT_TEXT: {
        const text = decodeUtf8(body);
        return text === null ? 'MalformedBody' : { sequence, type, body, text };
      }
      case CONTENT_ACK: {
        if (body.length !== 8) return 'MalformedBody';
        const through = readU64(body, 0);
        // An ACK for a seq not yet sent is refused with no state change (§3).
        return through < BigInt(this.send.next) ? { sequence, type, body, acknowledged: Number(through) } : 'MalformedBody';
      }
      case CONTENT_CLOSE:
        return body.length === 0 ? { sequence, type, body } : 'MalformedBody';
      default:
        return null; // authenticated but unknown: dropped and counted, never thrown to the app (§3)
    }
  }

  private drainHeld(messages: ReceivedMessage[]): void {
    while (!this.ended) {
      const candidates = this.held.filter((h) => h.sequence === this.receive.next);
      if (candidates.length === 0) return;
      this.held = this.held.filter((h) => h.sequence !== this.receive.next);
      // Several copies of one seq can be held if a relay forged one; the genuine one still opens.
      for (const candidate of candidates) {
        const opened = this.openNext(candidate.envelope);
        if (typeof opened !== 'string') {
          if (opened) messages.push(opened);
          break;
        }
      }
    }
  }

  private holdExpired(): boolean {
    if (this.ended === 'messages_missing') return true;
    if (this.held.length === 0) return false;
    const oldest = Math.min(...this.held.map((h) => h.arrivedAt));
    if (this.now() - oldest <= MAX_HOLD_MS) return false;
    this.end('messages_missing');
    return true;
  }

  private end(reason: ChannelEndReason): void {
    this.ended ??= reason;
    this.held = [];
  }
}

/** `nonce = 0x00000000 ‖ seq(8)`. */
function nonceFor(sequence: number): Uint8Array {
  const nonce = new Uint8Array(12);
  writeU64(nonce, 4, BigInt(sequence));
  return nonce;
}
