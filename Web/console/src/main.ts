// The counsellor's console: sign in with the key file and certificate, watch the queue, hold several chats in
// tabs, lock when idle, and leave nothing behind on a shared computer. The key lives only in this page's memory
// (one 32-byte array, zeroed on lock and sign-out); nothing is written to any browser storage.
import {
  fingerprint, fromHex, MAX_BODY_SIZE, parseCertificate, ResponderClient, toHex, TrustLineError, utf8, verifyChain,
  type Offer, type QueueEntry, type QueueSnapshot, type ResponderSession, type ResponderStatus,
} from '@trustline/client';
import { DEMO_ORG_ID, DEMO_PASSPHRASE, demoCertificates } from './demo.js';
import { openKey, readKeyFile, type KeyFileError, type SealedKey } from './keyfile.js';

interface ConsoleConfig {
  organisations: Array<{ id: string; name: string; insecure?: boolean; roots: string[] }>;
  /** Lock after this many seconds without a key press, click or touch. */
  idleLockSeconds: number;
  /** The server offers the demo organisation's key file (Development only). */
  demo: boolean;
}

interface Line {
  who: 'me' | 'them' | 'note';
  text: string;
}

interface Chat {
  number: number;
  session: ResponderSession;
  lines: Line[];
  unread: number;
  ended: string | null;
  returning: boolean;
  established: boolean;
  draft: string;
}

const TITLE = 'TrustLine console';
const WARN_BEFORE_EXPIRY_SECONDS = 2 * 86400;
const noStore: RequestInit = { credentials: 'omit', cache: 'no-store', referrerPolicy: 'no-referrer' };

/** Sentences a counsellor may send as the last message when ending a chat. */
const END_MESSAGES = [
  { label: 'End without a message', text: '' },
  { label: 'Finished: thank the person', text: 'Thank you for talking with us. You are welcome to come back any time.' },
  { label: 'Referred to another service', text: 'We have talked about where to go next. You are welcome to come back any time.' },
  { label: 'Abusive messages', text: 'This chat is being ended because of abusive messages.' },
  { label: 'Counsellor must stop', text: 'I have to end this chat now. Please start a new chat if you need us; a colleague will answer.' },
];

let config: ConsoleConfig = { organisations: [], idleLockSeconds: 300, demo: false };
let client: ResponderClient | null = null;
/** The live key: the one array the SDK signs with. Zeroed on lock and sign-out, refilled on unlock. */
let seed: Uint8Array | null = null;
let sealed: SealedKey | null = null;
let identity: { org: string; orgId: string; insecure: boolean; fingerprint: string; notAfter: number } | null = null;
let available = true;
/** The server's view of this connection: capacity (0: no limit) and whether the organisation makes offers. */
let capacity = 0;
let offersOn = false;
let locked = false;
let connection: 'connected' | 'reconnecting' | 'closed' = 'connected';
let queue: { waiting: number; entries: QueueEntry[]; at: number } = { waiting: 0, entries: [], at: Date.now() };
let chats: Chat[] = [];
let active = -1;
let chatCount = 0;
let ending = false;
let notice = '';
let lastActivity = Date.now();
let audio: AudioContext | null = null;
let chimes = 0;
let timers: number[] = [];

/** Builds an element; text is always set as text, never parsed as HTML. */
function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string | boolean> = {}, ...children: Array<Node | string | null>): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false) continue;
    if (k === 'text') el.textContent = String(v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c !== null) el.append(c);
  return el;
}

function on<K extends keyof HTMLElementEventMap>(el: HTMLElement, type: K, f: (e: HTMLElementEventMap[K]) => unknown): void {
  el.addEventListener(type, (e) => {
    try {
      const r = f(e);
      if (r instanceof Promise) r.catch(() => undefined);
    } catch {
      // a broken handler must not break the console
    }
  });
}

/** Words for an ending reason, never the code. */
function endedText(reason: string): string {
  switch (reason) {
    case 'seeker_closed': return 'The person ended the chat.';
    case 'seeker_left_queue': return 'The person left the queue before the chat began.';
    case 'responder_closed': return 'You ended the chat.';
    case 'seeker_abandoned': return 'The person\'s connection was gone too long, so the chat ended.';
    case 'responder_abandoned': return 'Your connection was gone too long, so the chat ended.';
    case 'idle_timeout': return 'Nothing was written for too long, so the chat ended.';
    case 'max_lifetime': return 'The chat reached its longest allowed time and ended.';
    case 'messages_missing': return 'Messages went missing on the way, so the chat was ended to be safe.';
    case 'connection_lost': return 'The connection to the server was lost, so the chat ended.';
    case 'resume_refused': return 'The chat could not go on after the connection came back; it has ended.';
    case 'transferred': return 'The person accepted the transfer; the chat goes on with the other counsellor, and nothing of it stays here.';
    default:
      return reason.startsWith('handshake_failed') ? 'A secure connection with the person could not be set up, so the chat ended.' : 'The chat ended.';
  }
}

function keyFileSentence(error: KeyFileError): string {
  switch (error) {
    case 'wrong_passphrase': return 'The passphrase is wrong for this key file.';
    case 'unsupported_version': return 'The key file was written by a newer TrustLine; this console reads version 1.';
    case 'not_responder': return 'This key file holds an organisation key, not a counsellor\'s key.';
    default: return 'The key file is damaged or is not a TrustLine key file.';
  }
}

function minutes(seconds: number): string {
  const s = Number.isFinite(seconds) ? Math.max(0, Math.floor(seconds)) : 0;
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
}

function language(code: string): string {
  try {
    return new Intl.DisplayNames(['en'], { type: 'language' }).of(code) ?? code;
  } catch {
    return code;
  }
}

// ---------------------------------------------------------------------------------------------- sign-in

async function readFile(input: HTMLInputElement): Promise<string | null> {
  const file = input.files?.[0];
  if (!file || file.size > 64 * 1024) return null;
  return file.text();
}

/** The two certificates of a certificate file (`trustline org certify`): two base64 lines, `#` lines ignored. */
function readCertificates(text: string): { issuer: Uint8Array; responder: Uint8Array } | null {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l.length > 0 && !l.startsWith('#'));
  if (lines.length !== 2) return null;
  try {
    const [issuer, responder] = lines.map((l) => Uint8Array.from(atob(l), (c) => c.charCodeAt(0)));
    return parseCertificate(issuer!) && parseCertificate(responder!) ? { issuer: issuer!, responder: responder! } : null;
  } catch {
    return null;
  }
}

async function signIn(keyText: string, certificates: { issuer: Uint8Array; responder: Uint8Array } | null, passphrase: string): Promise<string | null> {
  const read = readKeyFile(keyText);
  if ('error' in read) return keyFileSentence(read.error);
  const now = Math.floor(Date.now() / 1000);
  const certs = certificates ?? (config.demo && isDemoKey(read) ? demoCertificates(read.publicKey, now) : null);
  if (!certs) return 'Choose the certificate file your organisation\'s admin gave you (made by trustline org certify).';
  const responder = parseCertificate(certs.responder)!;
  if (toHex(responder.subjectPublicKey) !== toHex(read.publicKey)) return 'The certificate file certifies another key than this key file\'s.';
  if (now > responder.notAfter) return 'Your certificate has expired; ask your organisation\'s admin for a new one.';
  if (responder.notBefore > now + 300) return 'Your certificate is not valid yet; check this computer\'s clock.';
  const org = config.organisations.find((o) => o.id === toHex(responder.orgId));
  if (!org) return 'This server does not serve the organisation of this certificate.';
  const chain = verifyChain(certs.issuer, certs.responder, { orgId: fromHex(org.id), roots: org.roots.map(fromHex) }, now);
  if (chain.error) return chain.error === 'Expired' ? 'Your certificate has expired; ask your organisation\'s admin for a new one.' : 'The certificates were not issued under this organisation\'s keys.';

  const opened = await openKey(read, passphrase);
  if ('error' in opened) return keyFileSentence(opened.error);
  seed = opened;
  try {
    client = await ResponderClient.signIn(location.origin, { seed, issuerCertificate: certs.issuer, responderCertificate: certs.responder }, { signal: AbortSignal.timeout(20_000) });
  } catch (e) {
    wipeKey();
    return e instanceof TrustLineError ? e.message : 'The server could not be reached; try again in a moment.';
  }
  sealed = read;
  identity = { org: org.name, orgId: org.id, insecure: org.insecure === true, fingerprint: fingerprint(read.publicKey), notAfter: responder.notAfter };
  client.events.on('queue', (snapshot) => onQueue(snapshot));
  client.events.on('availability', (status) => onAvailability(status));
  client.events.on('offered', () => {
    if (!locked) chime();
    renderQueue();
  });
  client.events.on('offerWithdrawn', (_, reason) => {
    say(offerEndText(reason));
    renderQueue();
  });
  try {
    // The console starts available, as it always has; the server keeps it (and sets it away after unanswered offers).
    await client.setAvailability(available, { signal: AbortSignal.timeout(10_000) });
  } catch {
    // the toggle tries again
  }
  client.events.on('status', (status) => {
    connection = status;
    renderStatus();
    renderQueue();
  });
  try {
    const entries = await client.getQueue({ signal: AbortSignal.timeout(10_000) });
    queue = { waiting: entries.length, entries, at: Date.now() };
  } catch {
    // the next QueueChanged fills it in
  }
  return null;
}

function isDemoKey(key: SealedKey): boolean {
  // RFC 8032 TEST 3's public key: the demo responder.
  return toHex(key.publicKey) === 'fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025'
    && config.organisations.some((o) => o.id === DEMO_ORG_ID && o.insecure);
}

function wipeKey(): void {
  seed?.fill(0);
}

function showSignIn(): void {
  document.body.dataset.state = 'signin';
  document.title = TITLE;
  const keyInput = h('input', { id: 'key-file', type: 'file', accept: '.key,application/json' });
  const certInput = h('input', { id: 'cert-file', type: 'file', accept: '.cert,text/plain' });
  const pass = h('input', { id: 'passphrase', type: 'password', autocomplete: 'off', required: true });
  const error = h('p', { id: 'signin-error', role: 'alert', class: 'error' });
  const button = h('button', { type: 'submit', class: 'primary', text: 'Sign in' });
  const progress = h('p', { id: 'signin-progress', role: 'status', class: 'muted' });
  let demoText: string | null = null;
  const form = h('form', { 'aria-labelledby': 'signin-heading' },
    h('h1', { id: 'signin-heading', tabindex: '-1', text: 'Sign in to answer the help line' }),
    h('p', { text: 'Open your key file and your certificate (from your organisation\'s admin), then type your passphrase. Your key stays in this page only; nothing is saved on this computer.' }),
    h('label', { for: 'key-file', text: 'Key file (counsellor.key)' }), keyInput,
    h('label', { for: 'cert-file', text: 'Certificate file (counsellor.cert)' }), certInput,
    h('label', { for: 'passphrase', text: 'Passphrase' }), pass,
    button, progress, error);
  on(keyInput, 'change', () => { demoText = null; });
  on(form, 'submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    const keyText = demoText ?? await readFile(keyInput);
    if (!keyText) {
      error.textContent = 'Choose your key file (made by trustline responder keygen).';
      return;
    }
    let certificates: { issuer: Uint8Array; responder: Uint8Array } | null = null;
    if (certInput.files?.length) {
      certificates = readCertificates(await readFile(certInput) ?? '');
      if (!certificates) {
        error.textContent = 'The certificate file is not a TrustLine certificate file (two base64 certificates).';
        return;
      }
    }
    audio ??= newAudio();
    button.disabled = true;
    progress.textContent = 'Opening your key…';
    const failed = await signIn(keyText, certificates, pass.value).catch(() => 'The key could not be opened in this browser.');
    pass.value = '';
    button.disabled = false;
    progress.textContent = '';
    if (failed) {
      error.textContent = failed;
      pass.focus();
      return;
    }
    showConsole();
  });
  const children: Node[] = [form];
  if (config.demo) {
    const demo = h('button', { type: 'button', id: 'demo-key', class: 'secondary', text: 'Use the demo key file' });
    on(demo, 'click', async () => {
      const response = await fetch('/console/demo/responder.key', noStore);
      if (!response.ok) {
        error.textContent = 'The demo key file is not available on this server.';
        return;
      }
      demoText = await response.text();
      pass.value = DEMO_PASSPHRASE;
      progress.textContent = 'Demo key file loaded; its certificate is made in this page.';
    });
    children.push(h('aside', { class: 'demo', 'aria-label': 'Demo organisation' },
      h('p', {}, h('strong', { text: 'INSECURE demo. ' }), `The demo organisation's keys are public test keys (RFC 8032), for trying TrustLine only. Its key file's passphrase is "${DEMO_PASSPHRASE}".`),
      demo));
  }
  document.body.replaceChildren(h('main', { class: 'signin' }, ...children));
  keyInput.focus();
}

function newAudio(): AudioContext | null {
  try {
    return new AudioContext();
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------- the console

let bar: HTMLElement;
let queueSection: HTMLElement;
let chatSection: HTMLElement;
let statusLine: HTMLElement;

function showConsole(): void {
  document.body.dataset.state = 'console';
  lastActivity = Date.now();
  bar = h('header', { class: 'bar' });
  statusLine = h('p', { id: 'connection', role: 'status', class: 'status' });
  queueSection = h('section', { id: 'queue', 'aria-labelledby': 'queue-heading' });
  chatSection = h('section', { id: 'chats', 'aria-label': 'Chats' });
  document.body.replaceChildren(bar, statusLine, h('main', { class: 'console' }, queueSection, chatSection));
  renderBar();
  renderStatus();
  renderQueue();
  renderChats();
  timers.push(window.setInterval(tick, 1000));
  (queueSection.querySelector('h2') as HTMLElement | null)?.focus();
}

function renderBar(): void {
  if (!identity) return;
  const now = Math.floor(Date.now() / 1000);
  const left = identity.notAfter - now;
  const expiry = new Date(identity.notAfter * 1000);
  const expires = h('span', { id: 'expiry', class: left < WARN_BEFORE_EXPIRY_SECONDS ? 'warn' : '' },
    left < WARN_BEFORE_EXPIRY_SECONDS
      ? `Certificate expires in ${left < 3600 ? `${Math.max(1, Math.floor(left / 60))} minutes` : `${Math.floor(left / 3600)} hours`}: ask your admin for a new one`
      : `Certificate valid until ${expiry.toLocaleString('en-GB', { dateStyle: 'medium', timeStyle: 'short' })}`);
  const availability = h('button', { type: 'button', id: 'availability', 'aria-pressed': available ? 'true' : 'false', class: available ? 'available' : 'away',
    text: available ? 'Available' : 'Away' });
  on(availability, 'click', async () => {
    const wanted = !available;
    available = wanted;
    renderBar();
    renderQueue();
    try {
      await client?.setAvailability(wanted, { signal: AbortSignal.timeout(10_000) });
    } catch (e) {
      available = !wanted;
      renderBar();
      renderQueue();
      say(e instanceof TrustLineError ? e.message : 'Your availability could not be changed; try again.');
    }
  });
  const lock = h('button', { type: 'button', id: 'lock', class: 'secondary', text: 'Lock', 'aria-keyshortcuts': 'Alt+L' });
  on(lock, 'click', () => lockNow());
  const out = h('button', { type: 'button', id: 'sign-out', class: 'secondary', text: 'Sign out' });
  on(out, 'click', () => signOut());
  bar.replaceChildren(
    h('div', { class: 'who' },
      h('p', { id: 'org', class: identity.insecure ? 'insecure' : '' }, identity.org, identity.insecure ? h('strong', { text: ' INSECURE demo' }) : null),
      h('p', { class: 'muted' }, 'Your key: ', h('span', { id: 'fingerprint', text: identity.fingerprint }), ' · ', expires)),
    h('div', { class: 'actions' }, availability, lock, out));
}

function renderStatus(): void {
  if (!statusLine) return;
  statusLine.textContent = connection === 'reconnecting' ? 'Connection to the server lost. Reconnecting… Your chats continue when it is back.'
    : connection === 'closed' ? 'Disconnected from the server.' : notice;
  statusLine.className = connection === 'connected' ? 'status' : 'status warn';
}

function onAvailability(status: ResponderStatus): void {
  available = status.available;
  capacity = status.capacity;
  offersOn = status.offersOn;
  if (status.reason === 'lapsed') say('Offered chats went unanswered, so you were set away. Choose Available to receive chats again.');
  renderBar();
  renderQueue();
}

function offerEndText(reason: string): string {
  switch (reason) {
    case 'lapsed': return 'The offered chat was not answered in time; it goes to a colleague.';
    case 'gone': return 'The offered chat was taken by a colleague, or the person left.';
    case 'away': return 'The offered chat went to a colleague as you are away.';
    default: return 'The offered chat is no longer offered to you.';
  }
}

async function answerOffer(offer: Offer, accept: boolean): Promise<void> {
  if (!client || locked) return;
  try {
    if (accept) adopt(await client.acceptOffer(offer.sessionId, { signal: AbortSignal.timeout(15_000) }));
    else {
      await client.declineOffer(offer.sessionId, { signal: AbortSignal.timeout(10_000) });
      say('Declined; the chat goes to a colleague.');
    }
  } catch (e) {
    say(e instanceof TrustLineError ? e.message : 'The offer could not be answered; try again.');
  }
  renderQueue();
}

function onQueue(snapshot: QueueSnapshot): void {
  const before = queue.waiting;
  queue = { waiting: snapshot.waiting, entries: snapshot.head, at: Date.now() };
  if (snapshot.waiting > before && available && !locked) chime();
  renderQueue();
  updateTitle();
}

function chime(): void {
  chimes++;
  document.body.dataset.chimes = String(chimes);
  if (!audio) return;
  try {
    const tone = audio.createOscillator();
    const gain = audio.createGain();
    tone.frequency.value = 880;
    gain.gain.setValueAtTime(0.2, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.4);
    tone.connect(gain).connect(audio.destination);
    tone.start();
    tone.stop(audio.currentTime + 0.4);
  } catch {
    // no sound is not a failure
  }
}

function updateTitle(): void {
  const unread = chats.reduce((n, c) => n + c.unread, 0);
  const parts = [queue.waiting > 0 && available ? `(${queue.waiting})` : '', unread > 0 ? `• ${unread} unread` : ''].filter((p) => p);
  document.title = parts.length > 0 ? `${parts.join(' ')} ${TITLE}` : TITLE;
}

function renderQueue(): void {
  if (!queueSection) return;
  const canTake = available && !locked && connection === 'connected';
  const next = h('button', { type: 'button', id: 'take-next', class: 'primary', 'aria-keyshortcuts': 'Alt+T', text: 'Take next (Alt+T)' });
  next.disabled = !canTake || queue.waiting === 0;
  on(next, 'click', () => takeNext());
  const list = h('ul', { id: 'queue-list', 'aria-label': 'Waiting' });
  queue.entries.forEach((entry, i) => {
    const take = h('button', { type: 'button', class: 'take', text: 'Take', 'aria-label': `Take waiting person ${i + 1}` });
    take.disabled = !canTake;
    on(take, 'click', () => takeChosen(entry));
    list.append(h('li', { class: entry.urgent ? 'entry urgent' : 'entry' },
      entry.urgent ? h('strong', { class: 'badge', text: 'Urgent' }) : null,
      h('span', { class: 'lang', text: language(entry.language) }),
      h('span', { class: 'topic', text: entry.topic || 'no topic' }),
      h('span', { class: 'wait', 'data-base': String(entry.waitingSeconds), text: `waiting ${minutes(entry.waitingSeconds + (Date.now() - queue.at) / 1000)}` }),
      take));
  });
  const offer = client?.pendingOffer ?? null;
  let offerPanel: HTMLElement | null = null;
  if (offer && !locked) {
    const accept = h('button', { type: 'button', id: 'accept-offer', class: 'primary', text: 'Accept' });
    const decline = h('button', { type: 'button', id: 'decline-offer', class: 'secondary', text: 'Decline' });
    on(accept, 'click', () => answerOffer(offer, true));
    on(decline, 'click', () => answerOffer(offer, false));
    offerPanel = h('div', { id: 'offer', role: 'alert', class: offer.urgent ? 'offer urgent' : 'offer' },
      h('p', { text: `A chat is offered to you: ${language(offer.language)}, ${offer.topic || 'no topic'}${offer.urgent ? ', urgent' : ''}, waiting ${minutes(offer.waitingSeconds)}. Answer within ${offer.expiresInSeconds} seconds.` }),
      accept, decline);
  }
  const open = chats.filter((c) => !c.ended).length;
  queueSection.replaceChildren(
    h('h2', { id: 'queue-heading', tabindex: '-1', text: 'Queue' }),
    ...(offerPanel ? [offerPanel] : []),
    ...(capacity > 0 ? [h('p', { id: 'capacity', class: 'muted', text: `You hold ${open} of at most ${capacity} chats.` })] : []),
    ...(offersOn && available ? [h('p', { class: 'muted', text: 'Waiting people are offered to you one at a time.' })] : []),
    h('p', { id: 'queue-count', role: 'status', text: queue.waiting === 0 ? 'Nobody is waiting.' : queue.waiting === 1 ? '1 person is waiting.' : `${queue.waiting} people are waiting.` }),
    ...(available ? [] : [h('p', { class: 'warn', text: 'You are away: no new chats are offered to you.' })]),
    next, list);
}

function tick(): void {
  for (const span of queueSection?.querySelectorAll<HTMLElement>('.wait') ?? []) {
    span.textContent = `waiting ${minutes(Number(span.dataset.base ?? 0) + (Date.now() - queue.at) / 1000)}`;
  }
  if (identity && identity.notAfter - Date.now() / 1000 < WARN_BEFORE_EXPIRY_SECONDS && !locked) renderBar();
  if (!locked && seed && Date.now() - lastActivity > config.idleLockSeconds * 1000) lockNow();
}

async function takeNext(): Promise<void> {
  if (!client || !available || locked) return;
  try {
    const session = await client.takeNext({ signal: AbortSignal.timeout(15_000) });
    if (!session) say('Nobody is waiting.');
    else adopt(session);
  } catch (e) {
    say(e instanceof TrustLineError ? e.message : 'The chat could not be taken; try again.');
  }
}

async function takeChosen(entry: QueueEntry): Promise<void> {
  if (!client || !available || locked) return;
  try {
    adopt(await client.take(entry.sessionId, { signal: AbortSignal.timeout(15_000) }));
  } catch (e) {
    say(e instanceof TrustLineError ? e.message : 'The chat could not be taken; try again.');
  }
}

function say(text: string): void {
  notice = text;
  renderStatus();
}

function adopt(session: ResponderSession): void {
  const chat: Chat = { number: ++chatCount, session, lines: [], unread: 0, ended: null, returning: false, established: session.hello !== null, draft: '' };
  if (session.hello?.isReturning) chat.returning = true;
  chats.push(chat);
  session.events.on('established', (hello) => {
    chat.established = true;
    chat.returning = hello.isReturning;
    if (chats[active] === chat) renderChats();
  });
  session.events.on('message', (text) => {
    chat.lines.push({ who: 'them', text });
    if (chats[active] !== chat || document.hidden || locked) chat.unread++;
    if (chats[active] === chat) appendLine(chat.lines[chat.lines.length - 1]!);
    renderTabs();
    updateTitle();
  });
  session.events.on('seekerConnection', () => {
    if (chats[active] === chat) renderChats();
    else renderTabs();
  });
  session.events.on('transferOutcome', (outcome) => {
    chat.lines.push({ who: 'note', text: transferOutcomeText(outcome) });
    if (chats[active] === chat) appendLine(chat.lines[chat.lines.length - 1]!);
    else renderTabs();
  });
  session.events.on('ended', (reason) => {
    chat.ended = reason;
    if (chats[active] === chat) {
      ending = false;
      renderChats();
    } else {
      chat.unread++;
      renderTabs();
    }
    renderQueue();
    updateTitle();
  });
  say('');
  select(chats.length - 1);
  renderQueue();
}

function select(index: number): void {
  if (chats[active] && !ending) chats[active]!.draft = (chatSection.querySelector('#message') as HTMLTextAreaElement | null)?.value ?? '';
  active = index;
  ending = false;
  const chat = chats[active];
  if (chat) chat.unread = 0;
  renderChats();
  updateTitle();
  (chatSection.querySelector('#message') as HTMLElement | null)?.focus();
}

let tabs: HTMLElement | null = null;
let log: HTMLElement | null = null;

function renderTabs(): void {
  if (!tabs) return;
  tabs.replaceChildren(...chats.map((chat, i) => {
    const tab = h('button', { type: 'button', role: 'tab', id: `tab-${chat.number}`, 'aria-selected': i === active ? 'true' : 'false', 'aria-controls': 'chat-panel',
      class: chat.ended ? 'tab ended' : 'tab', tabindex: i === active ? '0' : '-1' },
    `Chat ${chat.number}`, chat.session.urgent ? h('span', { class: 'badge', text: 'urgent' }) : null,
    chat.ended ? h('span', { class: 'muted', text: ' (ended)' }) : null,
    chat.unread > 0 ? h('span', { class: 'unread', 'aria-label': `${chat.unread} unread`, text: String(chat.unread) }) : null);
    on(tab, 'click', () => select(i));
    return tab;
  }));
}

function appendLine(line: Line): void {
  log?.append(h('p', { class: `msg ${line.who}` }, h('span', { class: 'who', text: line.who === 'me' ? 'You' : line.who === 'them' ? 'Them' : '' }), h('span', { class: 'text', text: line.text })));
  log?.lastElementChild?.scrollIntoView({ block: 'end' });
}

function renderChats(): void {
  // A re-render (a HELLO, an ending) must not take the counsellor's half-written message or focus away.
  const typing = document.activeElement?.id === 'message';
  tabs = h('div', { role: 'tablist', id: 'tabs', 'aria-label': 'Open chats' });
  renderTabs();
  const chat = chats[active];
  if (!chat) {
    log = null;
    chatSection.replaceChildren(tabs, h('p', { class: 'muted', id: 'no-chat', text: 'No chats yet. Take the next person from the queue (Alt+T).' }));
    return;
  }
  const info = h('p', { class: 'chat-info' },
    `${language(chat.session.language)} · ${chat.session.topic || 'no topic'}`,
    chat.session.urgent ? h('strong', { class: 'badge', text: 'Urgent' }) : null,
    chat.returning ? h('strong', { id: 'returning', class: 'badge returning', text: 'Returning person (verified)' }) : null,
    chat.established ? null : h('span', { class: 'muted', text: ' · setting up the secure connection…' }),
    !chat.ended && !chat.session.seekerConnected
      ? h('span', { id: 'seeker-away', role: 'status', class: 'badge away', text: 'The person’s connection dropped; they may come back in a moment. Messages you send now wait for them.' })
      : null);
  log = h('div', { id: 'log', role: 'log', 'aria-live': 'polite', 'aria-label': `Chat ${chat.number}` });
  for (const line of chat.lines) appendLine(line);
  const panel = h('div', { id: 'chat-panel', role: 'tabpanel', 'aria-labelledby': `tab-${chat.number}` }, info, log);
  if (chat.ended) {
    const closeTab = h('button', { type: 'button', id: 'close-tab', class: 'secondary', text: 'Close this tab' });
    on(closeTab, 'click', () => {
      chat.session.events.clear();
      chats.splice(active, 1);
      select(Math.min(active, chats.length - 1));
    });
    panel.append(h('p', { id: 'ended-reason', role: 'status', class: 'ended', text: endedText(chat.ended) }), closeTab);
  } else if (ending) {
    panel.append(endPanel(chat));
  } else {
    panel.append(composer(chat));
  }
  chatSection.replaceChildren(tabs, panel);
  const message = chatSection.querySelector<HTMLTextAreaElement>('#message');
  if (typing && message) {
    message.focus();
    message.setSelectionRange(message.value.length, message.value.length);
  }
}

function composer(chat: Chat): HTMLElement {
  const message = h('textarea', { id: 'message', rows: '3', maxlength: String(MAX_BODY_SIZE) });
  message.value = chat.draft;
  on(message, 'input', () => { chat.draft = message.value; });
  const send = h('button', { type: 'submit', class: 'primary', text: 'Send' });
  const end = h('button', { type: 'button', id: 'end-chat', class: 'danger', 'aria-keyshortcuts': 'Alt+E', text: 'End chat (Alt+E)' });
  on(end, 'click', () => startEnding());
  const form = h('form', { class: 'compose' }, h('label', { for: 'message', text: `Message to chat ${chat.number} (Enter sends, Shift+Enter new line)` }), message,
    h('div', { class: 'row' }, send, end), transferRow(chat));
  const submit = async (): Promise<void> => {
    const text = message.value.trim();
    if (!text || chat.ended) return;
    if (utf8(text).length > MAX_BODY_SIZE) {
      say('The message is too long; split it in two.');
      return;
    }
    message.value = '';
    chat.draft = '';
    chat.lines.push({ who: 'me', text });
    appendLine(chat.lines[chat.lines.length - 1]!);
    try {
      await chat.session.sendText(text, { signal: AbortSignal.timeout(15_000) });
    } catch (e) {
      say(e instanceof TrustLineError ? e.message : 'The message could not be sent.');
    }
  };
  on(form, 'submit', (e) => {
    e.preventDefault();
    return submit();
  });
  on(message, 'keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      return submit();
    }
  });
  return form;
}

/** Words for what became of a proposed transfer. */
function transferOutcomeText(outcome: string): string {
  switch (outcome) {
    case 'accepted': return 'The person accepted the transfer.';
    case 'declined': return 'The person declined the transfer (or their app cannot check that organisation); the chat goes on with you.';
    case 'timed_out': return 'The person did not answer the transfer in time; the chat goes on with you.';
    case 'failed': return 'The transfer could not be made (the other side is closed or full); the chat goes on with you.';
    default: return 'The transfer did not go through; the chat goes on with you.';
  }
}

/**
 * The transfer action: a colleague (the own organisation's queue) or another organisation this server serves;
 * the server accepts only partners its configuration lists for this organisation, and says so otherwise.
 */
function transferRow(chat: Chat): HTMLElement {
  const target = h('select', { id: 'transfer-to', 'aria-label': 'Transfer to' },
    h('option', { value: identity?.orgId ?? '', text: `A colleague (${identity?.org ?? 'own organisation'})` }),
    ...config.organisations.filter((o) => o.id !== identity?.orgId).map((o) => h('option', { value: o.id, text: o.name })));
  const propose = h('button', { type: 'button', id: 'transfer', class: 'secondary', text: 'Propose transfer' });
  on(propose, 'click', async () => {
    const chosen = target.value;
    const name = target.selectedOptions[0]?.textContent ?? chosen;
    try {
      await chat.session.transfer(fromHex(chosen), { signal: AbortSignal.timeout(10_000) });
      chat.lines.push({ who: 'note', text: `Transfer to ${name} proposed; tell the person in the chat, and wait for their answer.` });
      if (chats[active] === chat) appendLine(chat.lines[chat.lines.length - 1]!);
    } catch (e) {
      say(e instanceof TrustLineError ? e.message : 'The transfer could not be proposed.');
    }
  });
  return h('div', { class: 'row transfer' }, h('label', { for: 'transfer-to', text: 'Transfer to' }), target, propose);
}

function startEnding(): void {
  const chat = chats[active];
  if (!chat || chat.ended) return;
  chat.draft = (chatSection.querySelector('#message') as HTMLTextAreaElement | null)?.value ?? '';
  ending = true;
  renderChats();
  (chatSection.querySelector('#end-reason') as HTMLElement | null)?.focus();
}

function endPanel(chat: Chat): HTMLElement {
  const reason = h('select', { id: 'end-reason' }, ...END_MESSAGES.map((m, i) => h('option', { value: String(i), text: m.label })));
  const confirm = h('button', { type: 'submit', class: 'danger', id: 'confirm-end', text: 'End the chat' });
  const cancel = h('button', { type: 'button', class: 'secondary', text: 'Keep talking' });
  const preview = h('p', { class: 'muted', id: 'end-preview' });
  const showPreview = (): void => {
    const text = END_MESSAGES[Number(reason.value)]?.text ?? '';
    preview.textContent = text ? `The person reads: “${text}”` : 'The person is told that you ended the chat.';
  };
  showPreview();
  on(reason, 'change', showPreview);
  on(cancel, 'click', () => {
    ending = false;
    renderChats();
    (chatSection.querySelector('#message') as HTMLElement | null)?.focus();
  });
  const form = h('form', { class: 'end' }, h('label', { for: 'end-reason', text: `Why are you ending chat ${chat.number}?` }), reason, preview, h('div', { class: 'row' }, confirm, cancel));
  on(form, 'submit', async (e) => {
    e.preventDefault();
    const text = END_MESSAGES[Number(reason.value)]?.text ?? '';
    ending = false;
    await endChat(chat, text);
  });
  on(form, 'keydown', (e) => {
    if (e.key === 'Escape') cancel.click();
  });
  return form;
}

async function endChat(chat: Chat, lastWords: string): Promise<void> {
  if (chat.ended) return;
  try {
    if (lastWords) {
      chat.lines.push({ who: 'me', text: lastWords });
      await chat.session.sendText(lastWords, { signal: AbortSignal.timeout(10_000) });
    }
    await chat.session.close({ signal: AbortSignal.timeout(10_000) });
  } catch (e) {
    say(e instanceof TrustLineError ? e.message : 'The chat could not be ended; try again.');
    renderChats();
  }
}

// ---------------------------------------------------------------------------------------------- lock and leave

function lockNow(): void {
  if (locked || !identity) return;
  locked = true;
  wipeKey();
  document.body.dataset.state = 'locked';
  for (const el of [bar, statusLine, document.querySelector('main')]) {
    if (el) {
      el.hidden = true;
      el.inert = true;
    }
  }
  const pass = h('input', { id: 'unlock-passphrase', type: 'password', autocomplete: 'off', required: true });
  const error = h('p', { id: 'unlock-error', role: 'alert', class: 'error' });
  const out = h('button', { type: 'button', class: 'secondary', text: 'Sign out' });
  on(out, 'click', () => signOut());
  const form = h('form', { id: 'lock-screen', class: 'signin', 'aria-labelledby': 'lock-heading' },
    h('h1', { id: 'lock-heading', tabindex: '-1', text: 'Locked' }),
    h('p', { text: `The console locked itself and forgot your key. ${openChats().length > 0 ? `${openChats().length} chat(s) stay open; new messages wait for you.` : ''}` }),
    h('label', { for: 'unlock-passphrase', text: 'Passphrase' }), pass,
    h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary', text: 'Unlock' }), out), error);
  on(form, 'submit', async (e) => {
    e.preventDefault();
    if (!sealed || !seed) return;
    const opened = await openKey(sealed, pass.value).catch(() => ({ error: 'damaged' as const }));
    pass.value = '';
    if ('error' in opened) {
      error.textContent = keyFileSentence(opened.error);
      return;
    }
    seed.set(opened);
    opened.fill(0);
    unlock(form);
  });
  document.body.append(form);
  pass.focus();
  updateTitle();
}

function unlock(form: HTMLElement): void {
  locked = false;
  lastActivity = Date.now();
  form.remove();
  document.body.dataset.state = 'console';
  for (const el of [bar, statusLine, document.querySelector('main')]) {
    if (el) {
      el.hidden = false;
      el.inert = false;
    }
  }
  const chat = chats[active];
  if (chat) chat.unread = 0;
  renderBar();
  renderQueue();
  renderChats();
}

function openChats(): Chat[] {
  return chats.filter((c) => !c.ended);
}

/** Ends every open chat at once (the seekers are told), forgets the key and starts again from a clean page. */
async function signOut(): Promise<void> {
  const open = openChats();
  if (open.length > 0 && !window.confirm(`End ${open.length} open chat(s) and sign out?`)) return;
  await Promise.allSettled(open.map((c) => c.session.close({ signal: AbortSignal.timeout(3000) })));
  await leave();
  location.replace(location.pathname);
}

async function leave(): Promise<void> {
  for (const t of timers) clearInterval(t);
  timers = [];
  wipeKey();
  seed = null;
  sealed = null;
  const held = client;
  client = null;
  chats = [];
  await held?.dispose().catch(() => undefined);
}

function shortcuts(e: KeyboardEvent): void {
  if (!e.altKey || e.ctrlKey || e.metaKey || locked || document.body.dataset.state !== 'console') return;
  if (e.code === 'KeyT') {
    e.preventDefault();
    void takeNext();
  } else if (e.code === 'KeyN') {
    e.preventDefault();
    if (chats.length > 0) select((active + 1) % chats.length);
  } else if (e.code === 'KeyE') {
    e.preventDefault();
    startEnding();
  } else if (e.code === 'KeyL') {
    e.preventDefault();
    lockNow();
  }
}

async function boot(): Promise<void> {
  try {
    const response = await fetch('/console/config.json', noStore);
    const loaded = (await response.json()) as Partial<ConsoleConfig>;
    config = {
      organisations: Array.isArray(loaded.organisations) ? loaded.organisations : [],
      idleLockSeconds: typeof loaded.idleLockSeconds === 'number' && loaded.idleLockSeconds > 0 ? loaded.idleLockSeconds : 300,
      demo: loaded.demo === true,
    };
  } catch {
    // no configuration: no organisation can sign in, and the sign-in says so
  }
  for (const type of ['keydown', 'pointerdown', 'wheel', 'touchstart'] as const) {
    window.addEventListener(type, () => { lastActivity = Date.now(); }, { passive: true, capture: true });
  }
  window.addEventListener('keydown', shortcuts);
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && chats[active]) {
      chats[active]!.unread = 0;
      renderTabs();
      updateTitle();
    }
  });
  // Closing or reloading with chats open: the browser asks first; if the counsellor goes on, every open chat
  // is ended as the page goes, so the seekers are told at once instead of after the grace period.
  window.addEventListener('beforeunload', (e) => {
    if (openChats().length > 0) {
      e.preventDefault();
      e.returnValue = '';
    }
  });
  window.addEventListener('pagehide', () => {
    for (const chat of openChats()) void chat.session.close().catch(() => undefined);
    wipeKey();
  });
  showSignIn();
}

void boot();
