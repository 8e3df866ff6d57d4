// The Development demo organisation (INSECURE): its root, issuer and responder keys are the public secret keys
// of RFC 8032 §7.1 TEST 1, 2 and 3 (PROTOCOL.md §8), so anyone can answer for it. The page makes the demo
// certificates itself, for one hour, only when the server says it serves that demo organisation.
import { fromHex, issueCertificate, ROLE_ISSUER, ROLE_RESPONDER, wipe } from '@trustline/client';
import { ed25519 } from '@noble/curves/ed25519.js';

export const DEMO_ORG_ID = '11111111111111111111111111111111';
/** Documented in docs/web.md; the demo key file protects nothing. */
export const DEMO_PASSPHRASE = 'insecure demo passphrase';
const ROOT_SEED = '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60'; // RFC 8032 TEST 1
const ISSUER_SEED = '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb'; // RFC 8032 TEST 2

/** The demo's two certificates for the demo responder key (RFC 8032 TEST 3), valid from a minute ago for an hour. */
export function demoCertificates(responderPublicKey: Uint8Array, now: number): { issuer: Uint8Array; responder: Uint8Array } {
  const orgId = fromHex(DEMO_ORG_ID);
  const root = fromHex(ROOT_SEED);
  const issuerSeed = fromHex(ISSUER_SEED);
  const issuer = issueCertificate(root, ROLE_ISSUER, orgId, ed25519.getPublicKey(issuerSeed), now - 60, now + 86400);
  const responder = issueCertificate(issuerSeed, ROLE_RESPONDER, orgId, responderPublicKey, now - 60, now + 3600);
  wipe(root);
  wipe(issuerSeed);
  return { issuer, responder };
}
