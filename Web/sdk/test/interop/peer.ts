// A TypeScript peer driven line by line by the .NET interop tests (Server.Tests/Web/): commands arrive on
// stdin as JSON lines, events leave on stdout as JSON lines. Test keys only; never a real organisation's.
//   node peer.js seeker    --server URL --org HEX --root HEX [--fallback URL]
//   node peer.js responder --server URL --seed HEX --issuer BASE64 --responder BASE64
import { createInterface } from 'node:readline';
import { fromBase64, fromHex, ResponderClient, SeekerClient, type ResponderSession } from '../../src/index.js';

const [role, ...rest] = process.argv.slice(2);
const args = new Map<string, string>();
for (let i = 0; i + 1 < rest.length; i += 2) args.set(rest[i]!.replace(/^--/, ''), rest[i + 1]!);
const server = args.get('server')!;
const fast = {
  reconnectDelays: [0, 100, 250, 500, 1000, 1000, 2000],
  fallbackServers: args.has('fallback') ? [args.get('fallback')!] : [],
};

function emit(event: string, data: Record<string, unknown> = {}): void {
  process.stdout.write(JSON.stringify({ event, ...data }) + '\n');
}

type Command = { cmd: string; text?: string; language?: string; topic?: string; urgent?: boolean; server?: number };
const commands = createInterface({ input: process.stdin });

async function runSeeker(): Promise<void> {
  const client = new SeekerClient(server, { orgId: fromHex(args.get('org')!), roots: [fromHex(args.get('root')!)] }, fast);
  client.events.on('state', (state) => {
    emit('state', { state });
    if (state === 'connected' && client.fingerprint) emit('fingerprint', { value: client.fingerprint });
  });
  client.events.on('queue', (q) => emit('queue', { position: q.position, waiting: q.waiting }));
  client.events.on('message', (text) => emit('message', { text }));
  client.events.on('ended', (reason) => emit('ended', { reason }));
  for await (const line of commands) {
    const c = JSON.parse(line) as Command;
    try {
      switch (c.cmd) {
        case 'open': {
          const q = await client.open({ language: c.language ?? 'nl', topic: c.topic ?? '', urgent: c.urgent ?? false, signal: AbortSignal.timeout(15000) });
          emit('opened', { position: q.position });
          break;
        }
        case 'send':
          await client.sendText(c.text!, { signal: AbortSignal.timeout(15000) });
          emit('sent');
          break;
        case 'drop':
          await client.simulateNetworkLoss(c.server);
          emit('dropped');
          break;
        case 'close':
          await client.close({ signal: AbortSignal.timeout(15000) });
          emit('closed');
          break;
        case 'exit':
          await client.dispose();
          emit('bye');
          process.exit(0);
      }
    } catch (e) {
      emit('error', { message: e instanceof Error ? `${e.name}: ${e.message}` : String(e) });
    }
  }
}

async function runResponder(): Promise<void> {
  const client = await ResponderClient.signIn(server, {
    seed: fromHex(args.get('seed')!),
    issuerCertificate: fromBase64(args.get('issuer')!),
    responderCertificate: fromBase64(args.get('responder')!),
  }, { ...fast, signal: AbortSignal.timeout(15000) });
  emit('signed-in');
  let session: ResponderSession | null = null;
  for await (const line of commands) {
    const c = JSON.parse(line) as Command;
    try {
      switch (c.cmd) {
        case 'take': {
          session = await client.takeNext({ signal: AbortSignal.timeout(15000) });
          if (!session) {
            emit('empty');
            break;
          }
          session.events.on('message', (text) => emit('message', { text }));
          session.events.on('ended', (reason) => emit('ended', { reason }));
          emit('taken', { language: session.language, topic: session.topic, urgent: session.urgent });
          const hello = await session.whenEstablished(AbortSignal.timeout(15000));
          emit('established', { returning: hello.isReturning });
          break;
        }
        case 'send':
          await session!.sendText(c.text!, { signal: AbortSignal.timeout(15000) });
          emit('sent');
          break;
        case 'drop':
          await client.simulateNetworkLoss();
          emit('dropped');
          break;
        case 'close':
          await session!.close({ signal: AbortSignal.timeout(15000) });
          emit('closed');
          break;
        case 'exit':
          await client.dispose();
          emit('bye');
          process.exit(0);
      }
    } catch (e) {
      emit('error', { message: e instanceof Error ? `${e.name}: ${e.message}` : String(e) });
    }
  }
}

(role === 'seeker' ? runSeeker() : runResponder()).catch((e: unknown) => {
  emit('error', { message: e instanceof Error ? e.message : String(e) });
  process.exit(1);
});
