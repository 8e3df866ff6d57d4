// Sizes, labels and type bytes of PROTOCOL.md §1–§3 and §9.
import { utf8 } from './bytes.js';

export const VERSION = 0x01;
export const SUITE = 0x01;
export const TYPE_CLIENT_HELLO = 0x01;
export const TYPE_SERVER_HELLO = 0x02;
export const TYPE_DATA = 0x10;

export const ORG_ID_SIZE = 16;
export const SESSION_ID_SIZE = 16;
export const PUBLIC_KEY_SIZE = 32;
export const SIGNATURE_SIZE = 64;
export const CERTIFICATE_SIZE = 133;
export const CERTIFICATE_TBS_SIZE = 69;
export const MSG1_SIZE = 67;
export const MSG2_SIZE = 364;
export const MSG2_SIGNED_SIZE = 300;
export const HEADER_SIZE = 27;
export const TAG_SIZE = 16;
/** The largest body a sender may seal (16384 − 3). */
export const MAX_BODY_SIZE = 16381;
/** Sequence numbers stay below 2^32 in each direction. */
export const SEQUENCE_CAP = 1n << 32n;
export const BUCKETS = [256, 1024, 4096, 16384] as const;
export const ENVELOPE_SIZES = BUCKETS.map((b) => HEADER_SIZE + b + TAG_SIZE);

export const DIR_C2S = 0x01;
export const DIR_S2C = 0x02;

export const CERT_MAGIC = utf8('TLC1');
export const CERT_SIG_LABEL = utf8('TrustLine/v1/cert\0');
export const HS_SIG_LABEL = utf8('TrustLine/v1/hs-sig\0');
export const HS_SALT = utf8('TrustLine/v1/hs');
export const C2S_LABEL = utf8('TrustLine/v1/c2s');
export const S2C_LABEL = utf8('TrustLine/v1/s2c');
export const MK_LABEL = utf8('TrustLine/v1/mk');
export const CK_LABEL = utf8('TrustLine/v1/ck');
export const RET_LABEL = utf8('TrustLine/v1/ret');
export const PUZZLE_LABEL = utf8('TrustLine/v1/puzzle\0');
export const SIGN_IN_LABEL = utf8('TrustLine/v1/responder-sign-in\0');

/** The smallest bucket that holds `paddedLength` bytes, or -1 when none does. */
export function bucketFor(paddedLength: number): number {
  for (const b of BUCKETS) if (paddedLength <= b) return b;
  return -1;
}

export function isEnvelopeSize(size: number): boolean {
  return ENVELOPE_SIZES.includes(size);
}
