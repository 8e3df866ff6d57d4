// Transfer at the seeker SDK against a scripted hub (no network): the proposal is shown with the name from the
// app's own pins, hostile proposals are ignored or declined, an accept runs a fresh handshake under the target's
// pins and nothing of the old session goes along.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { HubConnection } from '@microsoft/signalr';
import { ed25519 } from '@noble/curves/ed25519.js';
import { acceptMsg1, CONTENT_TEXT, SeekerClient, utf8, type OrganisationPin, type SecureChannel, type TransferOffer } from '../src/index.js';
import * as v from './vectors.js';

type Handler = (...args: unknown[]) => unknown;

class FakeHub {
  readonly calls: Array<{ method: string; args: unknown[] }> = [];
  readonly handlers = new Map<string, Handler>();
  state = 'Disconnected';

  constructor(private readonly answer: (method: string, args: unknown[]) => unknown) {}

  on(name: string, handler: Handler): void { this.handlers.set(name, handler); }
  onclose(): void {}
  async start(): Promise<void> { this.state = 'Connected'; }
  async stop(): Promise<void> { this.state = 'Disconnected'; }
  async invoke(method: string, ...args: unknown[]): Promise<unknown> {
    this.calls.push({ method, args });
    return this.answer(method, args);
  }
  push(name: string, ...args: unknown[]): unknown { return this.handlers.get(name)?.(...args); }
  methods(): string[] { return this.calls.map((c) => c.method); }
}

const partnerOrg = new Uint8Array(16).fill(0x22);
const partnerPin: OrganisationPin = { orgId: partnerOrg, roots: [v.rootPublic] };
const partnerCredentials = () => ({ seed: v.responderSeed, issuerCertificate: v.issuerCert({ org: partnerOrg }), responderCertificate: v.responderCert({ org: partnerOrg }) });
const opened = [new Uint8Array(32).fill(1), [1, 1]];
const moved = [new Uint8Array(32).fill(2), [2, 3]];

/** A seeker in an established chat with the organisation of the §8 vectors. */
async function connectedSeeker(partners: Array<{ name: string; pin: OrganisationPin }>, answer: (method: string, args: unknown[]) => unknown = () => null) {
  let hub!: FakeHub;
  const client = new SeekerClient('http://relay.invalid', v.pin, {
    now: () => v.nowSeconds * 1000,
    reconnectDelays: [],
    organisationName: 'Home line',
    transferTargets: partners,
    buildConnection: () => {
      hub = new FakeHub((method, args) => method === 'OpenSession' ? opened : method === 'Send' ? [0, false] : answer(method, args));
      return hub as unknown as HubConnection;
    },
  });
  await client.open({ language: 'nl' });
  const msg1 = (hub.calls[0]!.args[0] as unknown[])[0] as Uint8Array;
  const accepted = acceptMsg1(msg1, v.credentials(), v.clock);
  assert.ok(accepted.ok);
  await hub.push('Answered', accepted.msg2);
  await waitFor(() => client.state === 'connected');
  return { client, hub, sessionId: msg1.slice(19, 35), msg1, channel: accepted.channel as SecureChannel };
}

test('a proposal for a partner the app knows is shown with the app\'s name for it; accepting runs a fresh handshake under the partner\'s pins', async () => {
  const { client, hub, sessionId, msg1 } = await connectedSeeker([{ name: 'Partner line', pin: partnerPin }], (method) => method === 'AcceptTransfer' ? moved : null);
  const offers: TransferOffer[] = [];
  const states: string[] = [];
  client.events.on('transferProposed', (o) => offers.push(o));
  client.events.on('state', (s) => states.push(s));
  hub.push('TransferProposed', [sessionId, partnerOrg, 120]);
  assert.equal(offers.length, 1);
  assert.equal(offers[0]!.target.name, 'Partner line');
  assert.equal(offers[0]!.sameOrganisation, false);
  assert.equal(offers[0]!.answerBy, v.nowSeconds * 1000 + 120_000);

  const accepting = client.acceptTransfer();
  // The old session's end can arrive before the accept's answer: it is not this chat's end.
  hub.push('SessionEnded', [sessionId, 'transferred']);
  const queue = await accepting;
  const fresh = hub.calls.find((c) => c.method === 'AcceptTransfer')!.args[0] as Uint8Array;
  assert.deepEqual(fresh.subarray(3, 19), partnerOrg, 'msg1 for the partner');
  assert.notDeepEqual(fresh.subarray(19, 35), sessionId, 'a new session id');
  assert.notDeepEqual(fresh.subarray(35), msg1.subarray(35), 'a new ephemeral key');
  assert.deepEqual(queue, { position: 2, waiting: 3, wait: null, ticket: 0, urgentTicket: false, holdSeconds: 0 });
  assert.equal(client.state, 'waiting');
  assert.deepEqual(client.organisationId, partnerOrg);
  assert.deepEqual(states, ['waiting']);

  // The partner's counsellor answers: verified under the partner's pins, HELLO goes out on the new session.
  const sendsBefore = hub.calls.filter((c) => c.method === 'Send').length;
  const accepted = acceptMsg1(fresh, partnerCredentials(), v.clock);
  assert.ok(accepted.ok);
  await hub.push('Answered', accepted.msg2);
  await waitFor(() => client.state === 'connected');
  const sends = hub.calls.filter((c) => c.method === 'Send');
  assert.equal(sends.length, sendsBefore + 1);
  const hello = sends.at(-1)!.args[0] as Uint8Array;
  assert.deepEqual(hello.subarray(3, 19), fresh.subarray(19, 35), 'the HELLO is of the new session');
  const texts: string[] = [];
  client.events.on('message', (t) => texts.push(t));
  assert.equal(accepted.channel.tryOpen(hello).status, 'delivered');
  hub.push('Envelope', accepted.channel.seal(CONTENT_TEXT, utf8('welcome')));
  assert.deepEqual(texts, ['welcome']);
  await client.dispose();
});

test('after an accept, a msg2 from a key that does not chain to the target\'s pinned roots ends the new session', async () => {
  const impostorPin: OrganisationPin = { orgId: partnerOrg, roots: [ed25519.getPublicKey(new Uint8Array(32).fill(9))] };
  const { client, hub, sessionId } = await connectedSeeker([{ name: 'Partner line', pin: impostorPin }], (method) => method === 'AcceptTransfer' ? moved : null);
  hub.push('TransferProposed', [sessionId, partnerOrg, 60]);
  await client.acceptTransfer();
  const fresh = hub.calls.find((c) => c.method === 'AcceptTransfer')!.args[0] as Uint8Array;
  const sendsBefore = hub.calls.filter((c) => c.method === 'Send').length;
  const accepted = acceptMsg1(fresh, partnerCredentials(), v.clock);
  assert.ok(accepted.ok);
  await hub.push('Answered', accepted.msg2);
  await waitFor(() => client.state === 'ended');
  assert.match(client.endReason ?? '', /^handshake_failed:/);
  assert.equal(hub.calls.filter((c) => c.method === 'Send').length, sendsBefore, 'nothing is sent to an unverified counsellor');
  await client.dispose();
});

test('a proposal for an organisation the app has no pins for is declined without asking', async () => {
  const { client, hub, sessionId } = await connectedSeeker([]);
  const offers: TransferOffer[] = [];
  const declined: string[] = [];
  client.events.on('transferProposed', (o) => offers.push(o));
  client.events.on('transferDeclined', (r) => declined.push(r));
  hub.push('TransferProposed', [sessionId, partnerOrg, 60]);
  await waitFor(() => hub.methods().includes('DeclineTransfer'));
  assert.deepEqual(offers, []);
  assert.deepEqual(declined, ['unknown_organisation']);
  assert.equal(client.pendingTransfer, null);
  await assert.rejects(client.acceptTransfer(), /No transfer is proposed/);
  assert.equal(client.state, 'connected');
  await client.dispose();
});

test('hostile proposals (another session, malformed, repeated, after the end) never throw and are never answered wrongly', async () => {
  const { client, hub, sessionId } = await connectedSeeker([{ name: 'Partner line', pin: partnerPin }]);
  const offers: TransferOffer[] = [];
  client.events.on('transferProposed', (o) => offers.push(o));
  for (const junk of [undefined, null, 7, 'x', {}, [], [sessionId], [sessionId, new Uint8Array(3), 60], [new Uint8Array(16), partnerOrg, 60]]) {
    assert.doesNotThrow(() => hub.push('TransferProposed', junk));
  }
  assert.deepEqual(offers, [], 'nothing for this chat');

  // Repeated: the latest stands (with its own time), one offer at a time.
  hub.push('TransferProposed', [sessionId, partnerOrg, 60]);
  hub.push('TransferProposed', [sessionId, v.orgId, 1e12]);
  assert.equal(offers.length, 2);
  assert.equal(client.pendingTransfer!.sameOrganisation, true);
  assert.equal(client.pendingTransfer!.target.name, 'Home line');
  assert.equal(client.pendingTransfer!.answerBy, v.nowSeconds * 1000 + 3_600_000, 'an absurd time is capped');

  // Declining once clears it; the server is told.
  await client.declineTransfer();
  assert.equal(client.pendingTransfer, null);
  assert.ok(hub.methods().includes('DeclineTransfer'));

  // After the end: ignored, and nothing is called.
  hub.push('SessionEnded', [sessionId, 'responder_closed']);
  await waitFor(() => client.state === 'ended');
  const callsAtEnd = hub.calls.length;
  hub.push('TransferProposed', [sessionId, partnerOrg, 60]);
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(offers.length, 2);
  assert.equal(hub.calls.length, callsAtEnd);
  await client.dispose();
});

test('a refused accept leaves the chat as it was and the old channel goes on', async () => {
  const refuse = (code: string) => { throw new Error(`An unexpected error occurred invoking 'AcceptTransfer' on the server. HubException: ${code}: No transfer is proposed for this chat, or the proposal has lapsed.`); };
  const { client, hub, sessionId, channel } = await connectedSeeker([{ name: 'Partner line', pin: partnerPin }], (method) => method === 'AcceptTransfer' ? refuse('no_transfer') : null);
  hub.push('TransferProposed', [sessionId, partnerOrg, 60]);
  await assert.rejects(client.acceptTransfer(), (e: Error & { code?: string }) => e.code === 'no_transfer');
  assert.equal(client.state, 'connected');
  const texts: string[] = [];
  client.events.on('message', (t) => texts.push(t));
  const hello = hub.calls.filter((c) => c.method === 'Send')[0]!.args[0] as Uint8Array;
  assert.equal(channel.tryOpen(hello).status, 'delivered');
  hub.push('Envelope', channel.seal(CONTENT_TEXT, utf8('still here')));
  assert.deepEqual(texts, ['still here'], 'the old channel goes on');
  await client.dispose();
});

async function waitFor(condition: () => boolean, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`condition not met within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
