// Builds the counsellor console into dist/: one bundle, its stylesheet and icon, index.html with subresource
// integrity for both, and the INSECURE demo key file (the public RFC 8032 TEST 3 key, under a published
// passphrase), which the server offers only with the Development demo organisation. Nothing here is committed.
import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { argon2id } from 'hash-wasm';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import { sha256 } from '@noble/hashes/sha2.js';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, 'dist');
rmSync(dist, { recursive: true, force: true });
mkdirSync(join(dist, 'demo'), { recursive: true });

await build({
  entryPoints: [join(here, 'src', 'main.ts')],
  outfile: join(dist, 'app.js'),
  bundle: true,
  minify: true,
  format: 'iife',
  platform: 'browser',
  target: ['es2022'],
  legalComments: 'none',
  logLevel: 'warning',
});
copyFileSync(join(here, 'static', 'app.css'), join(dist, 'app.css'));
copyFileSync(join(here, 'static', 'icon.svg'), join(dist, 'icon.svg'));

const sri = (file) => 'sha384-' + createHash('sha384').update(readFileSync(join(dist, file))).digest('base64');
const html = readFileSync(join(here, 'static', 'index.html'), 'utf8')
  .replace('{{APP_JS_SRI}}', sri('app.js'))
  .replace('{{APP_CSS_SRI}}', sri('app.css'));
writeFileSync(join(dist, 'index.html'), html);

// The demo key file, in the format of Protocol/Crypto/KeyFile.cs. The seed is RFC 8032 §7.1 TEST 3's public
// secret key (PROTOCOL.md §8) and the passphrase is published in docs/web.md: it protects nothing.
const seed = Buffer.from('c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7', 'hex');
const passphrase = 'insecure demo passphrase';
const memoryKiB = 64 * 1024;
const passes = 3;
const salt = randomBytes(16);
const nonce = randomBytes(24);
const publicKey = Buffer.from(ed25519.getPublicKey(seed)).toString('hex');
const ad = Buffer.from(`trustline-private-key/v1|responder|${publicKey}|argon2id|${memoryKiB}|${passes}|${salt.toString('base64')}|xchacha20-poly1305`);
// As Protocol/Crypto/KeyFile.cs does through NSec: the passphrase's UTF-16LE code units.
const wrapping = await argon2id({ password: Buffer.from(passphrase, 'utf16le'), salt, parallelism: 1, iterations: passes, memorySize: memoryKiB, hashLength: 32, outputType: 'binary' });
const ciphertext = Buffer.from(xchacha20poly1305(wrapping, nonce, ad).encrypt(seed));
const check = Buffer.from(sha256(Buffer.concat([ad, nonce, ciphertext]))).subarray(0, 16).toString('hex');
writeFileSync(join(dist, 'demo', 'responder.key'), JSON.stringify({
  format: 'trustline-private-key', version: 1, kind: 'responder', publicKey,
  kdf: { name: 'argon2id', memoryKiB, passes, salt: salt.toString('base64') },
  cipher: 'xchacha20-poly1305', nonce: nonce.toString('base64'), ciphertext: ciphertext.toString('base64'), check,
  comment: 'INSECURE demo key: RFC 8032 TEST 3, passphrase "insecure demo passphrase". For trying TrustLine only.',
}, null, 2) + '\n');
