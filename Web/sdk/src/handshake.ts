// The handshake of PROTOCOL.md §2, both roles.
import { ed25519, x25519 } from '@noble/curves/ed25519.js';
import { expand, extract } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { concat, equalBytes, wipe } from './bytes.js';
import { type ChainError, type OrganisationPin, parseCertificate, verifyChain, verifyEd25519 } from './certificate.js';
import { agree, SecureChannel } from './channel.js';
import {
  C2S_LABEL, CERTIFICATE_SIZE, HS_SALT, HS_SIG_LABEL, MSG1_SIZE, MSG2_SIGNED_SIZE, MSG2_SIZE, ORG_ID_SIZE,
  S2C_LABEL, SESSION_ID_SIZE, SUITE, TYPE_CLIENT_HELLO, TYPE_SERVER_HELLO, VERSION,
} from './wire.js';

/** Why a handshake message was refused; the names match the .NET SDK's `HandshakeError`. */
export type HandshakeError = 'MalformedMsg1' | 'MalformedMsg2' | 'OtherOrganisation' | 'CertificateChain' | 'BadSignature' | 'BadEphemeral';

export type SeekerHandshakeResult =
  | { ok: true; channel: SecureChannel; responderPublicKey: Uint8Array }
  | { ok: false; error: HandshakeError; chainError?: ChainError };

export interface Clock {
  /** Milliseconds since the epoch. */
  now?: () => number;
}

/**
 * The seeker's side: `msg1` with a fresh session id and ephemeral key, then `msg2` verified against the pinned
 * roots before any key is derived. A refused `msg2` leaves the handshake usable (a relay's forgery cannot
 * stop the genuine one).
 */
export class SeekerHandshake {
  readonly msg1: Uint8Array;
  private ephemeral: Uint8Array | null;
  private readonly now: () => number;

  private constructor(private readonly pin: OrganisationPin, ephemeral: Uint8Array, sessionId: Uint8Array, now: () => number) {
    this.ephemeral = ephemeral;
    this.now = now;
    this.msg1 = concat(new Uint8Array([VERSION, TYPE_CLIENT_HELLO, SUITE]), pin.orgId, sessionId, x25519.getPublicKey(ephemeral));
  }

  static start(pin: OrganisationPin, clock: Clock = {}): SeekerHandshake {
    if (pin.orgId.length !== ORG_ID_SIZE || pin.roots.length === 0) throw new Error('A pin is a 16-byte org_id and at least one root.');
    return new SeekerHandshake(pin, x25519.utils.randomSecretKey(), randomBytes(SESSION_ID_SIZE), clock.now ?? Date.now);
  }

  /** A given ephemeral key and session id: for known-answer tests only. */
  static startDeterministic(pin: OrganisationPin, ephemeralPrivate: Uint8Array, sessionId: Uint8Array, clock: Clock = {}): SeekerHandshake {
    return new SeekerHandshake(pin, ephemeralPrivate.slice(), sessionId, clock.now ?? Date.now);
  }

  get sessionId(): Uint8Array {
    return this.msg1.subarray(19, 35);
  }

  complete(msg2: Uint8Array): SeekerHandshakeResult {
    if (!this.ephemeral) throw new Error('This handshake is finished.');
    if (msg2.length !== MSG2_SIZE || msg2[0] !== VERSION || msg2[1] !== TYPE_SERVER_HELLO) return { ok: false, error: 'MalformedMsg2' };
    const chain = verifyChain(msg2.subarray(34, 34 + CERTIFICATE_SIZE), msg2.subarray(167, 167 + CERTIFICATE_SIZE), this.pin,
      Math.floor(this.now() / 1000));
    if (chain.error !== null) return { ok: false, error: 'CertificateChain', chainError: chain.error };
    if (!verifyEd25519(msg2.subarray(MSG2_SIGNED_SIZE), signedDigest(this.msg1, msg2), chain.responderPublicKey)) {
      return { ok: false, error: 'BadSignature' };
    }
    const shared = agree(this.ephemeral, msg2.subarray(2, 34));
    if (!shared) return { ok: false, error: 'BadEphemeral' };
    const channel = derive('seeker', shared, this.msg1, msg2, null, this.now);
    this.dispose();
    return { ok: true, channel, responderPublicKey: chain.responderPublicKey };
  }

  dispose(): void {
    wipe(this.ephemeral);
    this.ephemeral = null;
  }
}

/** A responder's credentials on its own device: its Ed25519 seed (never leaves the device) and its certificates. */
export interface ResponderCredentials {
  readonly seed: Uint8Array;
  readonly issuerCertificate: Uint8Array;
  readonly responderCertificate: Uint8Array;
}

export type ResponderAcceptResult =
  | { ok: true; msg2: Uint8Array; channel: SecureChannel }
  | { ok: false; error: HandshakeError };

/** Reads `msg1`'s fixed fields; null unless 67 bytes of version 1, ClientHello, suite 1. */
export function parseMsg1(msg1: Uint8Array): { orgId: Uint8Array; sessionId: Uint8Array; ephemeral: Uint8Array } | null {
  if (msg1.length !== MSG1_SIZE || msg1[0] !== VERSION || msg1[1] !== TYPE_CLIENT_HELLO || msg1[2] !== SUITE) return null;
  return { orgId: msg1.slice(3, 19), sessionId: msg1.slice(19, 35), ephemeral: msg1.slice(35, 67) };
}

/**
 * The responder's side: checks `msg1` and that it is for its own organisation, answers `msg2`, derives the
 * channel (established only once the seeker's HELLO opens).
 */
export function acceptMsg1(msg1: Uint8Array, credentials: ResponderCredentials, clock: Clock & { ephemeral?: Uint8Array } = {}): ResponderAcceptResult {
  const parsed = parseMsg1(msg1);
  if (!parsed) return { ok: false, error: 'MalformedMsg1' };
  const responderCert = parseCertificate(credentials.responderCertificate);
  if (!responderCert || !equalBytes(responderCert.orgId, parsed.orgId)) return { ok: false, error: 'OtherOrganisation' };
  const ephemeral = clock.ephemeral ? clock.ephemeral.slice() : x25519.utils.randomSecretKey();
  const shared = agree(ephemeral, parsed.ephemeral);
  if (!shared) {
    wipe(ephemeral);
    return { ok: false, error: 'BadEphemeral' };
  }
  const msg2 = new Uint8Array(MSG2_SIZE);
  msg2[0] = VERSION;
  msg2[1] = TYPE_SERVER_HELLO;
  msg2.set(x25519.getPublicKey(ephemeral), 2);
  msg2.set(credentials.issuerCertificate, 34);
  msg2.set(credentials.responderCertificate, 167);
  msg2.set(ed25519.sign(signedDigest(msg1, msg2), credentials.seed), MSG2_SIGNED_SIZE);
  // The channel keeps e_R until the HELLO is processed: the returning proof needs it (§4).
  const channel = derive('responder', shared, msg1, msg2, ephemeral, clock.now ?? Date.now);
  return { ok: true, msg2, channel };
}

/** `TH = SHA-256(msg1 ‖ msg2)`, all 364 bytes of msg2. */
export function transcriptHash(msg1: Uint8Array, msg2: Uint8Array): Uint8Array {
  return sha256(concat(msg1, msg2));
}

/** `"TrustLine/v1/hs-sig\0" ‖ SHA-256(msg1 ‖ msg2[0..300))`. */
function signedDigest(msg1: Uint8Array, msg2: Uint8Array): Uint8Array {
  return concat(HS_SIG_LABEL, sha256(concat(msg1, msg2.subarray(0, MSG2_SIGNED_SIZE))));
}

function derive(role: 'seeker' | 'responder', shared: Uint8Array, msg1: Uint8Array, msg2: Uint8Array, ownEphemeral: Uint8Array | null, now: () => number): SecureChannel {
  const th = transcriptHash(msg1, msg2);
  const prk = extract(sha256, shared, HS_SALT);
  const c2s = expand(sha256, prk, concat(C2S_LABEL, th), 32);
  const s2c = expand(sha256, prk, concat(S2C_LABEL, th), 32);
  wipe(prk);
  wipe(shared);
  const seeker = role === 'seeker';
  const channel = new SecureChannel({
    role,
    sessionId: msg1.subarray(19, 35),
    sendChain: seeker ? c2s : s2c,
    receiveChain: seeker ? s2c : c2s,
    transcriptHash: th,
    responderEphemeralPublic: msg2.subarray(2, 34),
    ownEphemeral: ownEphemeral ?? undefined,
    now,
  });
  wipe(c2s);
  wipe(s2c);
  return channel;
}
