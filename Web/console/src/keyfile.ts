// Opens a TrustLine key file (Protocol/Crypto/KeyFile.cs, format version 1) in the page: Argon2id with the
// file's own cost through hash-wasm (WebAssembly), then XChaCha20-Poly1305 with the clear fields as associated
// data. The checksum over the whole file tells a damaged file from a wrong passphrase, as the .NET reader does.
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { constantTimeEqual, concat, equalBytes, fromBase64, fromHex, toBase64, toHex, utf8, wipe } from '@trustline/client';
import { argon2id } from 'hash-wasm';

const FORMAT = 'trustline-private-key';
const VERSION = 1;
const SALT_SIZE = 16;
const NONCE_SIZE = 24;
// The same bounds as the .NET reader: a file cannot make the page allocate more than 1 GiB or loop for long.
const MAX_MEMORY_KIB = 1024 * 1024;
const MAX_PASSES = 16;

export type KeyFileError = 'wrong_passphrase' | 'damaged' | 'unsupported_version' | 'not_responder';

/** A key file read without its passphrase: only public fields and the encrypted seed. */
export interface SealedKey {
  readonly kind: string;
  readonly publicKey: Uint8Array;
  readonly memoryKiB: number;
  readonly passes: number;
  readonly salt: Uint8Array;
  readonly nonce: Uint8Array;
  readonly ciphertext: Uint8Array;
  readonly associatedData: Uint8Array;
}

/** Reads and checks a key file's text; an error for anything that is not an intact version-1 responder key file. */
export function readKeyFile(text: string): SealedKey | { error: KeyFileError } {
  let json: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return { error: 'damaged' };
    json = parsed as Record<string, unknown>;
  } catch {
    return { error: 'damaged' };
  }
  if (json.format !== FORMAT) return { error: 'damaged' };
  if (json.version !== VERSION) return { error: json.version === undefined ? 'damaged' : 'unsupported_version' };
  const kdf = (typeof json.kdf === 'object' && json.kdf !== null ? json.kdf : {}) as Record<string, unknown>;
  const kind = typeof json.kind === 'string' ? json.kind.toLowerCase() : '';
  const memoryKiB = kdf.memoryKiB;
  const passes = kdf.passes;
  if (!['root', 'issuer', 'responder'].includes(kind) || kdf.name !== 'argon2id' || json.cipher !== 'xchacha20-poly1305'
    || !Number.isInteger(memoryKiB) || (memoryKiB as number) < 8 || (memoryKiB as number) > MAX_MEMORY_KIB
    || !Number.isInteger(passes) || (passes as number) < 1 || (passes as number) > MAX_PASSES) {
    return { error: 'damaged' };
  }
  let publicKey: Uint8Array, salt: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, check: Uint8Array;
  try {
    publicKey = fromHex(String(json.publicKey ?? ''));
    salt = fromBase64(String(kdf.salt ?? ''));
    nonce = fromBase64(String(json.nonce ?? ''));
    ciphertext = fromBase64(String(json.ciphertext ?? ''));
    check = fromHex(String(json.check ?? ''));
  } catch {
    return { error: 'damaged' };
  }
  if (publicKey.length !== 32 || salt.length !== SALT_SIZE || nonce.length !== NONCE_SIZE || check.length !== 16) return { error: 'damaged' };
  const associatedData = utf8(`${FORMAT}/v${VERSION}|${kind}|${toHex(publicKey)}|argon2id|${memoryKiB as number}|${passes as number}|${toBase64(salt)}|xchacha20-poly1305`);
  if (!constantTimeEqual(sha256(concat(associatedData, nonce, ciphertext)).subarray(0, 16), check)) return { error: 'damaged' };
  if (kind !== 'responder') return { error: 'not_responder' };
  return { kind, publicKey, memoryKiB: memoryKiB as number, passes: passes as number, salt, nonce, ciphertext, associatedData };
}

/** Decrypts the 32-byte Ed25519 seed; the caller owns it and wipes it. */
export async function openKey(sealed: SealedKey, passphrase: string): Promise<Uint8Array | { error: KeyFileError }> {
  // libsodium's crypto_pwhash (what NSec calls): Argon2id v1.3, one lane. The .NET writer hands NSec the
  // passphrase as a string, which it hashes as UTF-16LE code units, not UTF-8: the page does the same.
  const password = utf16le(passphrase);
  const wrapping = await argon2id({
    password, salt: sealed.salt, parallelism: 1, iterations: sealed.passes, memorySize: sealed.memoryKiB,
    hashLength: 32, outputType: 'binary',
  });
  let seed: Uint8Array;
  try {
    if (sealed.ciphertext.length !== 32 + 16) return { error: 'wrong_passphrase' };
    seed = xchacha20poly1305(wrapping, sealed.nonce, sealed.associatedData).decrypt(sealed.ciphertext);
  } catch {
    return { error: 'wrong_passphrase' };
  } finally {
    wipe(wrapping);
    wipe(password);
  }
  if (!equalBytes(ed25519.getPublicKey(seed), sealed.publicKey)) {
    wipe(seed);
    return { error: 'damaged' };
  }
  return seed;
}

/** The UTF-16 code units of a string, little-endian (what .NET's string is in memory). */
export function utf16le(text: string): Uint8Array {
  const bytes = new Uint8Array(text.length * 2);
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    bytes[2 * i] = unit & 0xff;
    bytes[2 * i + 1] = unit >> 8;
  }
  return bytes;
}
