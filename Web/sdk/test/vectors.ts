// The inputs of PROTOCOL.md §8 (public test keys from RFC 8032 §7.1 and RFC 7748 §6.1).
import { ed25519 } from '@noble/curves/ed25519.js';
import { fromHex, issueCertificate, ROLE_ISSUER, ROLE_RESPONDER, type OrganisationPin } from '../src/index.js';

export const rootSeed = fromHex('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60'); // TEST 1
export const issuerSeed = fromHex('4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb'); // TEST 2
export const responderSeed = fromHex('c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7'); // TEST 3
export const alicePrivate = fromHex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
export const bobPrivate = fromHex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
export const orgId = new Uint8Array(16).fill(0x11);
export const sessionId = Uint8Array.from({ length: 16 }, (_, i) => i);
export const issuerValid = [1767225600, 1775001600] as const;
export const responderValid = [1767225600, 1768435200] as const;
export const nowSeconds = 1767229200;
export const pseudonymPrivate = fromHex('a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4');

export const rootPublic = ed25519.getPublicKey(rootSeed);
export const issuerPublic = ed25519.getPublicKey(issuerSeed);
export const responderPublic = ed25519.getPublicKey(responderSeed);
export const pin: OrganisationPin = { orgId, roots: [rootPublic] };
export const clock = { now: () => nowSeconds * 1000 };

export function issuerCert(overrides: Partial<{ seed: Uint8Array; role: number; org: Uint8Array; subject: Uint8Array; from: number; to: number }> = {}): Uint8Array {
  return issueCertificate(overrides.seed ?? rootSeed, overrides.role ?? ROLE_ISSUER, overrides.org ?? orgId, overrides.subject ?? issuerPublic,
    overrides.from ?? issuerValid[0], overrides.to ?? issuerValid[1]);
}

export function responderCert(overrides: Partial<{ seed: Uint8Array; role: number; org: Uint8Array; subject: Uint8Array; from: number; to: number }> = {}): Uint8Array {
  return issueCertificate(overrides.seed ?? issuerSeed, overrides.role ?? ROLE_RESPONDER, overrides.org ?? orgId, overrides.subject ?? responderPublic,
    overrides.from ?? responderValid[0], overrides.to ?? responderValid[1]);
}

export const credentials = () => ({ seed: responderSeed, issuerCertificate: issuerCert(), responderCertificate: responderCert() });
