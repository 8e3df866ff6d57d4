// Certificates and the chain rule of PROTOCOL.md §1.
import { ed25519 } from '@noble/curves/ed25519.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { concat, equalBytes, readU64, toHex, writeU64 } from './bytes.js';
import {
  CERT_MAGIC, CERT_SIG_LABEL, CERTIFICATE_SIZE, CERTIFICATE_TBS_SIZE, ORG_ID_SIZE, PUBLIC_KEY_SIZE,
} from './wire.js';

export const ROLE_ISSUER = 0x01;
export const ROLE_RESPONDER = 0x02;
/** Allowed clock skew for `not_before`, seconds. */
export const CLOCK_SKEW_SECONDS = 300;
export const MAX_ISSUER_LIFETIME_SECONDS = 90 * 86400;
export const MAX_RESPONDER_LIFETIME_SECONDS = 14 * 86400;
const TIME_LIMIT = 2n ** 40n;

/** What an app pins for one organisation: its 16-byte id and one or two Ed25519 root public keys. */
export interface OrganisationPin {
  readonly orgId: Uint8Array;
  readonly roots: readonly Uint8Array[];
}

/** A parsed 133-byte certificate (no signature checked yet). */
export interface Certificate {
  readonly encoded: Uint8Array;
  readonly role: number;
  readonly orgId: Uint8Array;
  readonly subjectPublicKey: Uint8Array;
  /** Unix seconds. */
  readonly notBefore: number;
  readonly notAfter: number;
}

/** Why a chain was refused; the names match the .NET SDK's `ChainError`. */
export type ChainError =
  | 'Malformed'
  | 'WrongRole'
  | 'OtherOrganisation'
  | 'IssuerNotSignedByPinnedRoot'
  | 'ResponderNotSignedByIssuer'
  | 'NotYetValid'
  | 'Expired'
  | 'ResponderOutlivesIssuer'
  | 'LifetimeTooLong';

/**
 * Reads a certificate: 133 bytes, `"TLC1"`, and times with `0 ≤ not_before ≤ not_after < 2^40` (so no time
 * arithmetic can overflow). Returns null otherwise. Checks no signature.
 */
export function parseCertificate(bytes: Uint8Array): Certificate | null {
  if (bytes.length !== CERTIFICATE_SIZE || !equalBytes(bytes.subarray(0, 4), CERT_MAGIC)) return null;
  const notBefore = readU64(bytes, 53);
  const notAfter = readU64(bytes, 61);
  if (notBefore > notAfter || notAfter >= TIME_LIMIT) return null;
  const encoded = bytes.slice();
  return {
    encoded,
    role: encoded[4]!,
    orgId: encoded.subarray(5, 5 + ORG_ID_SIZE),
    subjectPublicKey: encoded.subarray(21, 21 + PUBLIC_KEY_SIZE),
    notBefore: Number(notBefore),
    notAfter: Number(notAfter),
  };
}

/** Signs a new certificate with the parent's Ed25519 seed (admin tools and tests). */
export function issueCertificate(
  parentSeed: Uint8Array, role: number, orgId: Uint8Array, subjectPublicKey: Uint8Array, notBefore: number, notAfter: number,
): Uint8Array {
  if (orgId.length !== ORG_ID_SIZE || subjectPublicKey.length !== PUBLIC_KEY_SIZE) throw new Error('Wrong key or id size.');
  const tbs = new Uint8Array(CERTIFICATE_TBS_SIZE);
  tbs.set(CERT_MAGIC, 0);
  tbs[4] = role;
  tbs.set(orgId, 5);
  tbs.set(subjectPublicKey, 21);
  writeU64(tbs, 53, BigInt(notBefore));
  writeU64(tbs, 61, BigInt(notAfter));
  const sig = ed25519.sign(concat(CERT_SIG_LABEL, tbs), parentSeed);
  return concat(tbs, sig);
}

/** Ed25519 verification as RFC 8032 states it (no ZIP-215 leniency), never throwing on bad input. */
export function verifyEd25519(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  try {
    return ed25519.verify(signature, message, publicKey, { zip215: false });
  } catch {
    return false;
  }
}

export function isSignedBy(certificate: Certificate, parentPublicKey: Uint8Array): boolean {
  const tbs = certificate.encoded.subarray(0, CERTIFICATE_TBS_SIZE);
  const sig = certificate.encoded.subarray(CERTIFICATE_TBS_SIZE);
  return verifyEd25519(sig, concat(CERT_SIG_LABEL, tbs), parentPublicKey);
}

/**
 * Applies every rule of PROTOCOL.md §1 at Unix time `now`; on success returns the certified responder key.
 */
export function verifyChain(
  issuerBytes: Uint8Array, responderBytes: Uint8Array, pin: OrganisationPin, now: number,
): { error: ChainError } | { error: null; responderPublicKey: Uint8Array } {
  const issuer = parseCertificate(issuerBytes);
  const responder = parseCertificate(responderBytes);
  if (!issuer || !responder) return { error: 'Malformed' };
  if (issuer.role !== ROLE_ISSUER || responder.role !== ROLE_RESPONDER) return { error: 'WrongRole' };
  if (!equalBytes(issuer.orgId, pin.orgId) || !equalBytes(responder.orgId, pin.orgId)) return { error: 'OtherOrganisation' };
  if (!pin.roots.some((root) => isSignedBy(issuer, root))) return { error: 'IssuerNotSignedByPinnedRoot' };
  if (!isSignedBy(responder, issuer.subjectPublicKey)) return { error: 'ResponderNotSignedByIssuer' };
  for (const c of [issuer, responder]) {
    if (c.notBefore > now + CLOCK_SKEW_SECONDS) return { error: 'NotYetValid' };
    if (now > c.notAfter) return { error: 'Expired' };
  }
  if (responder.notAfter > issuer.notAfter) return { error: 'ResponderOutlivesIssuer' };
  if (issuer.notAfter - issuer.notBefore > MAX_ISSUER_LIFETIME_SECONDS
    || responder.notAfter - responder.notBefore > MAX_RESPONDER_LIFETIME_SECONDS) {
    return { error: 'LifetimeTooLong' };
  }
  return { error: null, responderPublicKey: responder.subjectPublicKey.slice() };
}

/** First 8 bytes of SHA-256 of a public key, hex in groups of four: `1a2b 3c4d 5e6f 7a8b`. */
export function fingerprint(publicKey: Uint8Array): string {
  const hex = toHex(sha256(publicKey).subarray(0, 8));
  return hex.match(/.{4}/g)!.join(' ');
}
