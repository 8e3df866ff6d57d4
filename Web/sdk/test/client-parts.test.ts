// The session clients' small parts: refusal parsing (both server forms), events and the ack batcher.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Events, parseRefusal, refusalOf, TrustLineError } from '../src/index.js';
import { AckBatcher } from '../src/client/common.js';
import { sendRetrying } from '../src/client/errors.js';

test('a refusal is read in today\'s prefixed form and in the plain "code: sentence" form', () => {
  const prefixed = "An unexpected error occurred invoking 'OpenSession' on the server. HubException: puzzle_required: Solve an admission puzzle first.";
  assert.deepEqual(parseRefusal(prefixed), { code: 'puzzle_required', sentence: 'Solve an admission puzzle first.' });
  assert.deepEqual(parseRefusal('queue_full: The queue is full.'), { code: 'queue_full', sentence: 'The queue is full.' });
  assert.deepEqual(parseRefusal('Something broke: badly'), { code: 'error', sentence: 'Something broke: badly' });
  const refused = refusalOf(new Error(prefixed));
  assert.ok(refused instanceof TrustLineError);
  assert.equal(refused.code, 'puzzle_required');
});

test('a lost connection is not mistaken for a refusal', () => {
  const lost = new Error('Invocation canceled due to the underlying connection being closed.');
  assert.equal(refusalOf(lost), lost);
  const notConnected = new Error("Cannot send data if the connection is not in the 'Connected' State.");
  assert.equal(refusalOf(notConnected), notConnected);
});

test('a send refused unavailable is tried again until it goes through; any other refusal is thrown at once', async () => {
  let calls = 0;
  await sendRetrying(async () => {
    calls++;
    if (calls < 3) throw new Error('unavailable: The service cannot reach its store just now; try again shortly.');
  }, () => false);
  assert.equal(calls, 3);

  calls = 0;
  await assert.rejects(sendRetrying(async () => {
    calls++;
    throw new Error('no_such_session: The session has ended.');
  }, () => false), /no_such_session/);
  assert.equal(calls, 1);

  await assert.rejects(sendRetrying(async () => {
    throw new Error('unavailable: The service cannot reach its store just now; try again shortly.');
  }, () => true), /unavailable/, 'not after the session ended');
});

test('a throwing listener does not stop the others', () => {
  const events = new Events<{ message: (text: string) => void }>();
  const seen: string[] = [];
  events.on('message', () => { throw new Error('app bug'); });
  const off = events.on('message', (t) => seen.push(t));
  events.emit('message', 'one');
  off();
  events.emit('message', 'two');
  assert.deepEqual(seen, ['one']);
});

test('acks are batched: one call after a quiet moment carries the highest seq', async () => {
  const sent: number[] = [];
  let done!: () => void;
  const called = new Promise<void>((resolve) => { done = resolve; });
  const acks = new AckBatcher(async (through) => { sent.push(through); done(); });
  for (let i = 0; i < 5; i++) acks.received(i);
  await Promise.race([called, new Promise((_, reject) => setTimeout(() => reject(new Error('no ack within 2 s')), 2000))]);
  assert.deepEqual(sent, [4]);
  acks.dispose();
});
