// PROTOCOL.md §8 and §9 known answers, byte for byte.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sha256 } from '@noble/hashes/sha2.js';
import {
  acceptMsg1, CONTENT_TEXT, createPseudonym, fromHex, puzzleHash, SeekerHandshake, solvePuzzle, toHex, transcriptHash, utf8,
} from '../src/index.js';
import * as v from './vectors.js';

function handshake() {
  const seeker = SeekerHandshake.startDeterministic(v.pin, v.alicePrivate, v.sessionId, v.clock);
  const accepted = acceptMsg1(seeker.msg1, v.credentials(), { ...v.clock, ephemeral: v.bobPrivate });
  assert.ok(accepted.ok);
  return { seeker, accepted };
}

test('§8 certificate signatures', () => {
  assert.equal(toHex(v.issuerCert().subarray(69)), 'e0b6672ce4e069886d0a184d933f8f5d82b730b6b701fae28337635f5a88ec119c7fefb374e1a46eb57dade4b88a8dcb9e8f4c9d83aeb2a6236b00401fbe0403');
  assert.equal(toHex(v.responderCert().subarray(69)), '75463797db2782e698c4a8f6b2ff371eb3a319803a5a6ae53f5c624f77cc6eb6ae7483f1def7d5eab51dc771b52fac87a8d98db07ea5fe98542a1420c6673c0a');
});

test('§8 msg2 signature, SHA-256(msg2) and TH', () => {
  const { seeker, accepted } = handshake();
  assert.ok(accepted.ok);
  assert.equal(toHex(accepted.msg2.subarray(300)), 'a6eb992c62885038bbbdb3987d3419aea381a24d9663145663fe495622e1c0994ae8d7029ced8659d438498511a5d9568d0c1bcbf83ec99b337195efb6e0af06');
  assert.equal(toHex(sha256(accepted.msg2)), 'a04e69aa2ce349b61656b872f4a75c3886e71f0f7388c7ea619a33077bf177f3');
  assert.equal(toHex(transcriptHash(seeker.msg1, accepted.msg2)), '72a86e3f4fcc659b5839bd3b2cdcfa2d403e399e2186cbc68ba0cc2771fdad03');
});

test('§8 chain keys, message key and the "Hoi" envelope, from the seeker and from the responder', () => {
  const { seeker, accepted } = handshake();
  assert.ok(accepted.ok);
  const completed = seeker.complete(accepted.msg2);
  assert.ok(completed.ok, JSON.stringify(completed));
  const keys = completed.channel.chainKeysForTests();
  assert.equal(toHex(keys.send), 'b8f49d339f997b73ad4c7576bb46fc136e7d8e416c79cbad972718f6db50b00e');
  assert.equal(toHex(keys.receive), '3ce769dfd3ecf8127663cc98fd06b262b8326dd75aab0b9371b6babe084a02fc');
  assert.equal(toHex(keys.messageKey), 'd6e28f5f2dcbb285071ad65048299f1a95df07ddaf433ed49e406d2bd4c9212a');
  const responderKeys = accepted.channel.chainKeysForTests();
  assert.equal(toHex(responderKeys.receive), toHex(keys.send));
  assert.equal(toHex(responderKeys.send), toHex(keys.receive));

  const envelope = completed.channel.sealRawForTests(CONTENT_TEXT, utf8('Hoi'));
  assert.equal(envelope.length, 299);
  assert.equal(toHex(sha256(envelope)), '1eaf2c843e035b7418348f2257e713251651984ba0e582c4eb4b50807e957390');
  assert.equal(toHex(envelope.subarray(283)), '5e6f2ebc9155374c55191ade16bfb635');
  assert.equal(toHex(completed.channel.chainKeysForTests().send), '704701ac8b0166e7bc3edbed7133f8831b43ca2d84d936a8018f6b47d02e3124');
});

test('§8 returning seeker: s_U_pub and tag, verified by the responder', () => {
  const { seeker, accepted } = handshake();
  assert.ok(accepted.ok);
  const completed = seeker.complete(accepted.msg2);
  assert.ok(completed.ok);
  const pseudonym = createPseudonym(v.pseudonymPrivate);
  assert.equal(toHex(pseudonym.publicKey), '1c9fd88f45606d932a80c71824ae151d15d73e77de38e8e000852e614fae7019');
  const hello = completed.channel.sealHello(pseudonym);
  const opened = accepted.channel.tryOpen(hello);
  assert.equal(opened.status, 'delivered');
  assert.ok(opened.status === 'delivered');
  const message = opened.messages[0]!;
  assert.equal(toHex(message.body.subarray(33, 65)), '5fca8071b3a42b716b30a4f2eb85e3a26ab389cae467fc0494d53bd1507504ca');
  assert.equal(message.hello?.isReturning, true);
  assert.equal(hello.length, 299);
});

const puzzle = fromHex('01' + '08' + '0000000069557f80' + '22'.repeat(16) + '33'.repeat(16));

test('§9 the smallest counter and its hash', async () => {
  const solution = await solvePuzzle(puzzle, v.sessionId, { chunk: 64 });
  assert.equal(toHex(solution), '0000000000000276');
  assert.equal(toHex(puzzleHash(puzzle, v.sessionId, 630n)), '00f92db1d3769f286ab3a8e44df1304f86273df367a13a3e94a094acff792037');
});
