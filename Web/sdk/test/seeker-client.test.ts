// The seeker client's behaviour against a scripted hub (no network): the admission-puzzle policy, and that
// nothing a server or peer sends can throw into the app.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { HubConnection } from '@microsoft/signalr';
import {
  acceptMsg1, checkSolution, CONTENT_CLOSE, CONTENT_TEXT, fromHex, SeekerClient, utf8, type SecureChannel,
} from '../src/index.js';
import * as v from './vectors.js';

type Handler = (...args: unknown[]) => unknown;

/** A hub that answers invocations with a script and lets the test push server calls. */
class FakeHub {
  readonly calls: Array<{ method: string; args: unknown[] }> = [];
  readonly handlers = new Map<string, Handler>();
  private closed: Array<() => void> = [];
  state = 'Disconnected';

  constructor(private readonly answer: (method: string, args: unknown[], hub: FakeHub) => unknown) {}

  on(name: string, handler: Handler): void { this.handlers.set(name, handler); }
  onclose(callback: () => void): void { this.closed.push(callback); }
  async start(): Promise<void> { this.state = 'Connected'; }
  async stop(): Promise<void> { this.state = 'Disconnected'; for (const c of this.closed) c(); }
  async invoke(method: string, ...args: unknown[]): Promise<unknown> {
    this.calls.push({ method, args });
    return this.answer(method, args, this);
  }
  /** The server calls a client method. */
  push(name: string, ...args: unknown[]): unknown { return this.handlers.get(name)?.(...args); }
}

function seekerWith(answer: (method: string, args: unknown[], hub: FakeHub) => unknown) {
  let hub!: FakeHub;
  const client = new SeekerClient('http://relay.invalid', v.pin, {
    now: () => v.nowSeconds * 1000,
    reconnectDelays: [],
    buildConnection: () => { hub = new FakeHub(answer); return hub as unknown as HubConnection; },
  });
  return { client, hub: () => hub };
}

const refusal = (code: string) => new Error(`An unexpected error occurred invoking 'OpenSession' on the server. HubException: ${code}: Solve an admission puzzle first.`);
const puzzle = fromHex('01' + '08' + '0000000069557f80' + '22'.repeat(16) + '33'.repeat(16));
const opened = [new Uint8Array(32).fill(1), [3, 3]];

test('open without a puzzle first; on puzzle_required fetch one, solve it for this sid, and open again', async () => {
  let opens = 0;
  const progress: number[] = [];
  const { client, hub } = seekerWith((method) => {
    if (method === 'OpenSession') {
      opens++;
      if (opens === 1) throw refusal('puzzle_required');
      return opened;
    }
    if (method === 'GetPuzzle') return puzzle;
    return null;
  });
  client.events.on('puzzle', (tried) => progress.push(tried));
  const queue = await client.open({ language: 'nl', solve: (p, sid, o) => import('../src/index.js').then((m) => m.solvePuzzle(p, sid, { ...o, chunk: 16 })) });
  const calls = hub().calls;
  assert.deepEqual(calls.map((c) => c.method), ['OpenSession', 'GetPuzzle', 'OpenSession']);
  const first = calls[0]!.args[0] as unknown[];
  const second = calls[2]!.args[0] as unknown[];
  assert.equal((first[4] as Uint8Array).length, 0, 'no puzzle at first');
  assert.equal((first[5] as Uint8Array).length, 0, 'no solution at first');
  assert.deepEqual(calls[1]!.args[0], v.orgId);
  assert.deepEqual(second[4], puzzle);
  const sid = (second[0] as Uint8Array).subarray(19, 35);
  assert.ok(checkSolution(puzzle, sid, second[5] as Uint8Array), 'the solution holds for this session id');
  assert.deepEqual(queue, { position: 3, waiting: 3, wait: null, ticket: 0, urgentTicket: false, holdSeconds: 0 });
  assert.equal(client.state, 'waiting');
  assert.ok(progress.length > 0, 'progress was reported');
  await client.dispose();
});

test('another refusal is thrown as a TrustLineError with its code, and no puzzle is asked for', async () => {
  const { client, hub } = seekerWith((method) => { if (method === 'OpenSession') throw refusal('queue_full'); return null; });
  await assert.rejects(client.open({ language: 'nl' }), (e: Error & { code?: string }) => e.name === 'TrustLineError' && e.code === 'queue_full');
  assert.deepEqual(hub().calls.map((c) => c.method), ['OpenSession']);
  await client.dispose();
});

test('an aborted open stops solving the puzzle', async () => {
  const hard = puzzle.slice(); hard[1] = 32;
  const { client } = seekerWith((method) => { if (method === 'OpenSession') throw refusal('puzzle_required'); return hard; });
  const controller = new AbortController();
  client.events.on('puzzle', () => controller.abort());
  await assert.rejects(client.open({ language: 'nl', signal: controller.signal }), (e: Error) => e.name === 'AbortError');
  await client.dispose();
});

test('nothing the server or a peer sends throws into the app; an envelope after CLOSE is dropped', async () => {
  const { client, hub } = seekerWith((method) => (method === 'OpenSession' ? opened : method === 'Send' ? [0, false] : null));
  const texts: string[] = [];
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => unhandled.push(e);
  process.on('unhandledRejection', onUnhandled);
  client.events.on('message', (t) => texts.push(t));
  await client.open({ language: 'nl' });
  const h = hub();

  // Garbage of every shape to every client method, before the answer.
  for (const junk of [undefined, null, 42, 'text', {}, [], new Uint8Array(0), new Uint8Array(299), new Uint8Array(364)]) {
    for (const name of ['QueuePosition', 'QueueMoved', 'Answered', 'Envelope', 'Delivered', 'SessionEnded']) {
      // (Junk bytes as msg2 end the session as handshake_failed, as in the .NET SDK: tested below.)
      if (name === 'SessionEnded' || (name === 'Answered' && junk instanceof Uint8Array)) continue;
      assert.doesNotThrow(() => h.push(name, junk), `${name}(${String(junk)})`);
    }
  }
  assert.equal(client.state, 'waiting');

  // The genuine answer, then envelopes: unknown type, text, CLOSE, and one after CLOSE.
  const responder = await answer(client, h);
  h.push('Envelope', responder.sealRawForTests(0x7e, utf8('from the future')));
  h.push('Envelope', responder.seal(CONTENT_TEXT, utf8('Hoi')));
  h.push('Envelope', new Uint8Array(299).fill(0xff));
  const close = responder.sealClose();
  const afterClose = new Uint8Array(close);
  h.push('Envelope', close);
  h.push('Envelope', afterClose);
  await waitFor(() => client.state === 'ended');
  assert.deepEqual(texts, ['Hoi']);
  assert.equal(client.endReason, 'responder_closed');
  h.push('SessionEnded', 'junk');
  h.push('Envelope', afterClose);
  await new Promise((resolve) => setTimeout(resolve, 20));
  process.off('unhandledRejection', onUnhandled);
  assert.deepEqual(unhandled, []);
  await client.dispose();
});

/** A seeker connected to a responder channel through the scripted hub: the HELLO has been opened. */
async function connectedSeeker() {
  const { client, hub } = seekerWith((method) => (method === 'OpenSession' ? opened : method === 'Send' ? [0, false] : null));
  await client.open({ language: 'nl' });
  const h = hub();
  return { client, h, responder: await answer(client, h) };
}

/** The responder accepts the seeker's msg1 and answers; once connected, the seeker's HELLO opens on its channel. */
async function answer(client: SeekerClient, h: FakeHub): Promise<SecureChannel> {
  const msg1 = (h.calls[0]!.args[0] as unknown[])[0] as Uint8Array;
  const accepted = acceptMsg1(msg1, v.credentials(), { now: () => v.nowSeconds * 1000 });
  assert.ok(accepted.ok);
  await h.push('Answered', accepted.msg2);
  await waitFor(() => client.state === 'connected');
  const responder: SecureChannel = accepted.channel;
  const hello = h.calls.find((c) => c.method === 'Send')!.args[0] as Uint8Array;
  assert.equal(responder.tryOpen(hello).status, 'delivered');
  return responder;
}

test('closing a connected chat tells the counsellor end to end (CLOSE, after every text), then closes on the server', async () => {
  const { client, h, responder } = await connectedSeeker();
  const text = client.sendText('tot ziens');
  await client.close();
  await text;
  const methods = h.calls.map((c) => c.method);
  const sends = h.calls.filter((c) => c.method === 'Send').map((c) => c.args[0] as Uint8Array);
  const opened = sends.slice(1).map((e) => responder.tryOpen(e));
  assert.deepEqual(opened.map((o) => o.status), ['delivered', 'delivered']);
  assert.deepEqual(opened.flatMap((o) => (o.status === 'delivered' ? o.messages.map((m) => m.type) : [])), [CONTENT_TEXT, CONTENT_CLOSE]);
  assert.equal(responder.endReason, 'peer_closed', "the counsellor's channel ends as closed by peer");
  assert.ok(methods.lastIndexOf('Close') > methods.lastIndexOf('Send'), 'the server hears of it after the CLOSE was accepted');
  assert.equal(client.endReason, 'seeker_closed');
  await client.dispose();
});

test("a counsellor's CLOSE ends the chat as responder_closed and leaves the server's close to the counsellor", async () => {
  const { client, h, responder } = await connectedSeeker();
  h.push('Envelope', responder.sealClose());
  await waitFor(() => client.state === 'ended');
  h.push('SessionEnded', [responder.sessionId, 'responder_closed']);
  assert.equal(client.endReason, 'responder_closed');
  assert.equal(h.calls.filter((c) => c.method === 'Close').length, 0, 'the receiver of a CLOSE does not close on the server');
  await client.close();
  assert.equal(h.calls.filter((c) => c.method === 'Send').length, 1, 'nothing is sent after a CLOSE, not even our own');
  await client.dispose();
});

test('a msg2 that does not verify ends the session as handshake_failed, never trusted', async () => {
  const { client, hub } = seekerWith((method) => (method === 'OpenSession' ? opened : null));
  await client.open({ language: 'nl' });
  const h = hub();
  const msg1 = (h.calls[0]!.args[0] as unknown[])[0] as Uint8Array;
  const accepted = acceptMsg1(msg1, { ...v.credentials(), responderCertificate: v.responderCert({ seed: v.rootSeed }) });
  assert.ok(accepted.ok);
  await h.push('Answered', accepted.msg2);
  await waitFor(() => client.state === 'ended');
  assert.equal(client.endReason, 'handshake_failed:ResponderNotSignedByIssuer');
  assert.ok(h.calls.some((c) => c.method === 'Close'), 'the session is closed on the server');
  assert.equal(h.calls.filter((c) => c.method === 'Send').length, 0, 'nothing is sent to an unverified responder');
  await client.dispose();
});

async function waitFor(condition: () => boolean, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`condition not met within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

test('a queue status carries the likely wait as a range, or none when the server cannot say', async () => {
  const { readQueueStatus } = await import('../src/client/common.js');
  const none = { ticket: 0, urgentTicket: false, holdSeconds: 0 };
  assert.deepEqual(readQueueStatus([2, 5, 120, 480]), { position: 2, waiting: 5, wait: { lowSeconds: 120, highSeconds: 480 }, ...none });
  assert.deepEqual(readQueueStatus([2, 5, -1, -1]), { position: 2, waiting: 5, wait: null, ...none });
  assert.deepEqual(readQueueStatus([2, 5]), { position: 2, waiting: 5, wait: null, ...none }, 'an older server sends no range');
  assert.deepEqual(readQueueStatus([2, 5, 'x', {}]), { position: 2, waiting: 5, wait: null, ...none }, 'nonsense is no range, never a throw');
  assert.deepEqual(readQueueStatus([2, 5, -1, -1, 7, true, 600]), { position: 2, waiting: 5, wait: null, ticket: 7, urgentTicket: true, holdSeconds: 600 });
});

// The same cases as the .NET SDK's (Server.Tests/Client/QueuePlaceTests.cs): one rule on both sides.
test('a place computed from a queue notice: urgent first, then the class in ticket order; bounded by the count', async () => {
  const { placeFrom, waitRange } = await import('../src/client/common.js');
  const moved = { urgentWaiting: 2, urgentServedThrough: 3, otherWaiting: 4, otherServedThrough: 6, secondsPerTake: 60 };
  for (const [ticket, urgent, place] of [[4, true, 1], [5, true, 2], [7, false, 3], [10, false, 6]] as const) {
    const status = placeFrom(moved, ticket, urgent)!;
    assert.equal(status.position, place, `ticket ${ticket}`);
    assert.equal(status.waiting, 6);
  }
  const holed = { urgentWaiting: 0, urgentServedThrough: 0, otherWaiting: 3, otherServedThrough: 6, secondsPerTake: -1 };
  assert.equal(placeFrom(holed, 10, false)!.position, 3, 'the count bounds it: exact');
  assert.equal(placeFrom(holed, 9, false)!.position, 3, 'one too many after a leave out of turn, never too few');
  assert.equal(placeFrom(moved, 6, false), null, 'served through: no place');
  assert.equal(placeFrom(moved, 3, true), null);
  assert.deepEqual(waitRange(1, 60), { lowSeconds: 40, highSeconds: 161 });
  assert.deepEqual(waitRange(4, 60), { lowSeconds: 220, highSeconds: 418 });
  assert.equal(waitRange(3, -1), null);
  assert.deepEqual(placeFrom(moved, 7, false)!.wait, waitRange(3, 60));
});

test('a waiting seeker turns each queue notice into its place with its ticket, and keeps the hold', async () => {
  const { client, hub } = seekerWith((method) => (method === 'OpenSession' ? [new Uint8Array(32).fill(1), [5, 5, -1, -1, 3, false, 600]] : null));
  const places: Array<{ position: number; waiting: number; holdSeconds: number }> = [];
  client.events.on('queue', (q) => places.push(q));
  await client.open({ language: 'nl' });
  assert.equal(client.queueHoldSeconds, 600, 'the hold is known before it can happen');
  hub().push('QueueMoved', [1, 4, 3, 1, -1]); // urgent: 1 waits; other: tickets 2, 3, 4 wait
  hub().push('QueueMoved', [0, 5, 2, 2, -1]); // the urgent one and ticket 2 were taken
  hub().push('QueueMoved', [0, 5, 1, 3, -1]); // ticket 3 (this one) was taken: no place
  hub().push('QueueMoved', ['nonsense']);
  assert.deepEqual(places.map((p) => [p.position, p.waiting, p.holdSeconds]), [[3, 4, 600], [1, 2, 600]]);
  await client.dispose();
});
