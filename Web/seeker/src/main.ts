// The seeker page: choose an organisation, wait, talk, leave without a trace. Everything lives in this
// page's memory; nothing is written to any browser storage. Quick exit is the Escape key or the button.
import { fromHex, MAX_BODY_SIZE, SeekerClient, toHex, utf8, type SeekerState, type TransferOffer } from '@trustline/client';
import type en from '../i18n/en.json';

type Texts = typeof en;
declare const __LANGUAGES__: Record<string, Texts>;
const LANGUAGES = __LANGUAGES__;

interface PageConfig {
  /** The relay to talk to; the page's own origin when absent. */
  server?: string;
  quickExitUrl: string;
  /**
   * The pins: only organisations listed here can be chosen, whatever the directory says. Languages and topics
   * come from the relay's directory; listed here they are used when the directory cannot be read (a page on
   * the organisation's own domain, since the relay sends no CORS headers).
   */
  organisations: Array<{ id: string; name: string; insecure?: boolean; roots: string[]; languages?: string[]; topics?: string[] }>;
}

interface DirectoryEntry {
  id: string;
  name: string;
  languages: string[];
  topics: string[];
  /** Coarse, never a head count: open, busy (opens take a moment of work) or closed. */
  status?: 'open' | 'busy' | 'closed';
  opensAt?: string | null;
  queueWhenClosed?: boolean;
  closedMessage?: Record<string, string>;
  alternatives?: Array<{ name: string; contact: string }>;
}

interface Organisation {
  id: string;
  name: string;
  insecure: boolean;
  roots: string[];
  languages: string[];
  topics: string[];
  closed: boolean;
  queueWhenClosed: boolean;
  opensAt: string | null;
  closedMessage: Record<string, string>;
  alternatives: Array<{ name: string; contact: string }>;
}

interface Line {
  who: 'me' | 'them';
  text: string;
  /** For the seeker's own lines: its position among sent texts (1 = first text after HELLO). */
  sequence?: number;
}

const FALLBACK_EXIT = 'https://www.bbc.com/weather';
const noStore: RequestInit = { credentials: 'omit', cache: 'no-store', referrerPolicy: 'no-referrer' };

let config: PageConfig | null = null;
let organisations: Organisation[] = [];
let ui = pickLanguage();
let t: Texts = LANGUAGES[ui]!;
let client: SeekerClient | null = null;
let chosen: Organisation | null = null;
let lines: Line[] = [];
let textsSent = 0;
let deliveredThrough = 0;
let position = 0;
/** How long the server keeps the place while this page's connection is lost, in seconds (0: not told). */
let hold = 0;
let wait: { lowSeconds: number; highSeconds: number } | null = null;
let ending: string | null = null;
let reconnecting = false;
let exiting = false;
/** A transfer the counsellor proposed, not yet answered; and a sentence about the last one. */
let offer: TransferOffer | null = null;
let transferNote = '';
let render: () => void = () => undefined;
let main: HTMLElement;

function pickLanguage(): string {
  for (const wanted of navigator.languages ?? []) {
    const code = wanted.slice(0, 2).toLowerCase();
    if (LANGUAGES[code]) return code;
  }
  return LANGUAGES.en ? 'en' : Object.keys(LANGUAGES)[0]!;
}

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

function fill(template: string, values: Record<string, string | number>): string {
  return template.replace(/\{(\w+)\}/g, (_, k: string) => String(values[k] ?? ''));
}

function languageLabel(code: string): string {
  if (LANGUAGES[code]) return LANGUAGES[code]!.languageName;
  try {
    return new Intl.DisplayNames([ui], { type: 'language' }).of(code) ?? code;
  } catch {
    return code;
  }
}

function show(view: () => void, state: string): void {
  render = view;
  document.body.dataset.state = state;
  view();
}

function screen(heading: string, ...children: Array<Node | null>): void {
  const title = h('h1', { tabindex: '-1', text: heading });
  main.replaceChildren(title, ...children.filter((c): c is Node => c !== null));
  title.focus();
}

function bar(): HTMLElement {
  const langs = h('div', { class: 'langs', role: 'group', 'aria-label': 'Language / Taal' });
  for (const code of Object.keys(LANGUAGES)) {
    const button = h('button', { type: 'button', class: 'lang', lang: code, 'aria-pressed': String(code === ui), text: code.toUpperCase(), title: LANGUAGES[code]!.languageName });
    button.addEventListener('click', () => {
      ui = code;
      t = LANGUAGES[code]!;
      document.documentElement.lang = code;
      document.body.replaceChildren(bar(), main);
      render();
    });
    langs.append(button);
  }
  const exit = h('button', { type: 'button', class: 'exit', id: 'quick-exit', text: t.quickExit, title: t.quickExitHint, 'aria-describedby': 'exit-hint' });
  exit.addEventListener('click', () => void quickExit());
  // The connection line sits in the sticky header, so it is seen wherever the chat is scrolled to.
  const connection = h('p', { id: 'connection', role: 'status' });
  const header = h('header', { class: 'top' }, h('div', { class: 'bar' }, langs, exit), connection, h('span', { id: 'exit-hint', class: 'sr-only', text: t.quickExitHint }));
  queueMicrotask(showConnection);
  return header;
}

async function load(): Promise<void> {
  config = (await (await fetch('/seeker/config.json', noStore)).json()) as PageConfig;
  let directory: DirectoryEntry[] = [];
  try {
    const response = await fetch(`${(config.server ?? location.origin).replace(/\/+$/, '')}/v1/directory`, noStore);
    directory = ((await response.json()) as { organisations: DirectoryEntry[] }).organisations;
  } catch {
    // Unreachable or cross-origin: fall back to what the configuration lists.
  }
  organisations = config.organisations.flatMap((pinned) => {
    const listed = directory.find((d) => d.id === pinned.id);
    const languages = listed?.languages ?? pinned.languages ?? [];
    return languages.length === 0 ? [] : [{
      ...pinned, insecure: pinned.insecure === true, languages, topics: listed?.topics ?? pinned.topics ?? [],
      closed: listed?.status === 'closed', queueWhenClosed: listed?.queueWhenClosed === true, opensAt: listed?.opensAt ?? null,
      closedMessage: listed?.closedMessage ?? {}, alternatives: listed?.alternatives ?? [],
    }];
  });
}

function startView(): void {
  if (organisations.length === 0) {
    screen(t.startHeading, h('p', { text: t.noOrganisations }));
    return;
  }
  const org = h('select', { id: 'org', name: 'org' });
  for (const o of organisations) org.append(h('option', { value: o.id, text: o.insecure ? `${o.name} ${t.organisationInsecure}` : o.name }));
  if (chosen) org.value = chosen.id;
  const language = h('select', { id: 'language', name: 'language' });
  const topic = h('select', { id: 'topic', name: 'topic' });
  const fillChoices = () => {
    const o = organisations.find((x) => x.id === org.value)!;
    const keepLanguage = language.value;
    language.replaceChildren(...o.languages.map((code) => h('option', { value: code, text: languageLabel(code) })));
    language.value = o.languages.includes(keepLanguage) ? keepLanguage : o.languages.includes(ui) ? ui : o.languages[0]!;
    const topics = t.topics as Record<string, string>;
    topic.replaceChildren(h('option', { value: '', text: t.topicNone }), ...o.topics.map((code) => h('option', { value: code, text: topics[code] ?? code })));
  };
  const notice = h('div', { id: 'closed-notice', role: 'status' });
  const showNotice = () => {
    const o = organisations.find((x) => x.id === org.value)!;
    notice.replaceChildren(...(o.closed ? closedInfo(o) : []));
    notice.className = o.closed ? 'status warn' : '';
  };
  org.addEventListener('change', () => { fillChoices(); showNotice(); });
  fillChoices();
  showNotice();
  const urgent = h('input', { type: 'checkbox', id: 'urgent', name: 'urgent', 'aria-describedby': 'urgent-hint' });
  const start = h('button', { type: 'submit', class: 'primary', text: t.start });
  const form = h('form', { novalidate: true },
    h('div', { class: 'field' }, h('label', { for: 'org', text: t.organisation }), org),
    notice,
    h('div', { class: 'field' }, h('label', { for: 'language', text: t.chatLanguage }), language),
    h('div', { class: 'field' }, h('label', { for: 'topic', text: t.topic }), topic),
    h('div', { class: 'field check' }, urgent, h('div', {}, h('label', { for: 'urgent', text: t.urgent }), h('p', { id: 'urgent-hint', class: 'hint', text: t.urgentHint }))),
    start,
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    chosen = organisations.find((x) => x.id === org.value)!;
    void open(chosen, language.value, topic.value, urgent.checked);
  });
  screen(t.startHeading, h('p', { text: t.startIntro }), h('p', { class: 'status', text: t.noTrace }), form);
}

function preparingView(percent: number | null): void {
  screen(t.waitingHeading, h('p', { class: 'status', role: 'status', text: percent === null ? t.preparing : fill(t.preparingProgress, { percent }) }));
}

function showConnection(): void {
  const line = document.getElementById('connection');
  if (!line) return;
  line.className = reconnecting ? 'connection' : 'sr-only';
  line.textContent = reconnecting ? t.reconnecting : '';
}

function waitingView(): void {
  const leave = h('button', { type: 'button', class: 'secondary', text: t.leaveQueue });
  leave.addEventListener('click', () => void client?.close({ signal: AbortSignal.timeout(10000) }).catch(() => undefined));
  screen(t.waitingHeading,
    h('p', { class: 'status', role: 'status', id: 'position', text: position <= 1 ? t.positionNext : fill(t.position, { position }) }),
    h('p', { id: 'wait', text: waitText() }),
    transferNote ? h('p', { class: 'status', id: 'transfer-note', role: 'status', text: transferNote }) : null,
    ...(hold > 0 ? [h('p', { id: 'hold', class: 'hint', text: fill(t.holdNotice, { minutes: Math.max(1, Math.round(hold / 60)) }) })] : []),
    h('p', { text: fill(t.waitingNext, { org: chosen!.name }) }),
    h('p', { class: 'hint', text: t.reloadWarning }),
    leave);
}

/** The likely wait in whole minutes, as a range; never one confident number, and honest when there is none. */
function waitText(): string {
  if (!wait) return t.waitUnknown;
  const low = Math.max(1, Math.floor(wait.lowSeconds / 60));
  const high = Math.max(low + 1, Math.ceil(wait.highSeconds / 60));
  return fill(t.waitRange, { low, high });
}

function lineElement(line: Line): HTMLElement {
  const item = h('li', { class: `msg ${line.who}` }, h('span', { class: 'who', text: line.who === 'me' ? t.you : t.counsellor }), h('span', { class: 'text', text: line.text }));
  if (line.who === 'me') item.append(h('span', { class: 'state', text: (line.sequence ?? 0) <= deliveredThrough ? t.sent : t.sending }));
  return item;
}

function chatView(): void {
  const log = h('ol', { class: 'log', id: 'log', role: 'log', 'aria-live': 'polite', 'aria-label': t.connectedHeading }, ...lines.map(lineElement));
  const box = h('textarea', { id: 'message', name: 'message', rows: '3', autocomplete: 'off', spellcheck: 'true' });
  const error = h('p', { class: 'sr-only', role: 'alert', id: 'compose-error' });
  const form = h('form', { class: 'compose', novalidate: true }, h('label', { for: 'message', text: t.messageLabel }), box, error, h('button', { type: 'submit', class: 'primary', text: t.send }));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const text = box.value;
    if (text.trim() === '' || !client) return;
    if (utf8(text).length > MAX_BODY_SIZE) {
      error.className = 'status warn';
      error.textContent = t.tooLong;
      return;
    }
    error.className = 'sr-only';
    error.textContent = '';
    box.value = '';
    const line: Line = { who: 'me', text, sequence: ++textsSent };
    lines.push(line);
    log.append(lineElement(line));
    void client.sendText(text).catch(() => undefined);
    box.focus();
  });
  const end = h('button', { type: 'button', class: 'secondary', text: t.endChat });
  end.addEventListener('click', () => void client?.close({ signal: AbortSignal.timeout(10000) }).catch(() => undefined));
  const verified = h('div', { class: 'verified', id: 'verified' },
    h('p', { id: 'verified-org', text: fill(t.verified, { org: chosen!.name }) }),
    h('p', {}, h('span', { text: `${t.fingerprintLabel}: ` }), h('span', { class: 'fingerprint', id: 'fingerprint', text: client?.fingerprint ?? '' })),
    h('p', { class: 'hint', text: t.fingerprintHint }));
  screen(t.connectedHeading, verified, transferPanel(), log, form, h('p', { class: 'hint', text: t.reloadWarning }), end);
}

/** The counsellor's transfer proposal, with the target's name from this page's own pins; or the last outcome. */
function transferPanel(): HTMLElement | null {
  if (!offer) return transferNote ? h('p', { class: 'status', id: 'transfer-note', role: 'status', text: transferNote }) : null;
  const proposed = offer;
  const yes = h('button', { type: 'button', class: 'primary', id: 'transfer-accept', text: t.transferAccept });
  const no = h('button', { type: 'button', class: 'secondary', id: 'transfer-decline', text: t.transferDecline });
  yes.addEventListener('click', () => {
    const seeker = client;
    offer = null;
    if (!seeker) return;
    void seeker.acceptTransfer({ signal: AbortSignal.timeout(15000) }).catch(() => {
      transferNote = t.transferFailed;
      if (client === seeker && seeker.state === 'connected') render();
    });
  });
  no.addEventListener('click', () => {
    const seeker = client;
    offer = null;
    transferNote = t.transferDeclined;
    render();
    void seeker?.declineTransfer({ signal: AbortSignal.timeout(10000) }).catch(() => undefined);
  });
  return h('div', { class: 'status warn', id: 'transfer', role: 'alertdialog', 'aria-labelledby': 'transfer-text' },
    h('p', { id: 'transfer-text', text: fill(proposed.sameOrganisation ? t.transferColleague : t.transferProposed, { org: proposed.target.name }) }),
    h('div', { class: 'row' }, yes, no));
}

/** What a closed organisation tells people: since when it is closed, when it opens, its own words, and where else to turn. */
function closedInfo(o: Organisation): HTMLElement[] {
  const parts: HTMLElement[] = [h('p', { text: fill(t.closedNow, { name: o.name }) })];
  if (o.opensAt) {
    const when = new Date(o.opensAt);
    if (!Number.isNaN(when.getTime())) {
      parts.push(h('p', { text: fill(t.opensAt, { when: when.toLocaleString(ui, { weekday: 'long', hour: '2-digit', minute: '2-digit' }) }) }));
    }
  }
  const own = o.closedMessage[ui] ?? o.closedMessage.en;
  if (own) parts.push(h('p', { text: own }));
  if (o.alternatives.length > 0) {
    parts.push(h('p', { text: t.alternatives }), h('ul', {}, ...o.alternatives.map((a) => h('li', { text: `${a.name}: ${a.contact}` }))));
  }
  if (o.queueWhenClosed) parts.push(h('p', { text: t.queueWhileClosed }));
  return parts;
}

function endedView(): void {
  const reasons = t.endReasons as Record<string, string>;
  const key = ending?.startsWith('handshake_failed') ? 'handshake_failed' : ending ?? 'other';
  const again = h('button', { type: 'button', class: 'primary', text: t.newChat });
  again.addEventListener('click', () => {
    lines = []; // the old conversation is forgotten as soon as it is no longer shown
    show(startView, 'start');
  });
  const text = fill(reasons[key] ?? reasons.other!, { minutes: Math.max(1, Math.round(hold / 60)) });
  screen(t.endedHeading, h('p', { class: 'status', role: 'status', id: 'ended-reason', text }),
    key === 'closed' && chosen ? h('div', { class: 'status' }, ...closedInfo(chosen)) : null, again,
    lines.length > 0 ? h('ol', { class: 'log after', 'aria-label': t.connectedHeading }, ...lines.map(lineElement)) : null);
}

function warnBeforeLeaving(e: BeforeUnloadEvent): void {
  // The browser shows its own "leave this page?" question: a reload would end the chat (chain keys live in memory only).
  e.preventDefault();
}

async function open(org: Organisation, language: string, topic: string, urgent: boolean): Promise<void> {
  lines = [];
  textsSent = 0;
  deliveredThrough = 0;
  ending = null;
  reconnecting = false;
  position = 0;
  wait = null;
  offer = null;
  transferNote = '';
  hold = 0;
  const server = config!.server ?? location.origin;
  // Every organisation this page pins may be a transfer target; any other is declined without asking.
  const seeker = new SeekerClient(server, { orgId: fromHex(org.id), roots: org.roots.map(fromHex) }, {
    organisationName: org.name,
    transferTargets: config!.organisations.filter((o) => o.id !== org.id).map((o) => ({ name: o.name, pin: { orgId: fromHex(o.id), roots: o.roots.map(fromHex) } })),
  });
  client = seeker;
  window.addEventListener('beforeunload', warnBeforeLeaving);
  seeker.events.on('puzzle', (tried, expected) => preparingView(Math.min(99, Math.floor((100 * tried) / expected))));
  seeker.events.on('queue', (q) => {
    position = q.position;
    wait = q.wait;
    if (document.body.dataset.state === 'waiting') render();
  });
  seeker.events.on('state', (state: SeekerState) => {
    if (client !== seeker) return;
    reconnecting = state === 'reconnecting';
    if (state === 'connected') show(chatView, 'connected');
    else if (state === 'waiting') show(waitingView, 'waiting');
    else if (state === 'reconnecting') document.body.dataset.state = 'reconnecting';
    showConnection();
  });
  seeker.events.on('message', (text) => {
    const line: Line = { who: 'them', text };
    lines.push(line);
    document.getElementById('log')?.append(lineElement(line));
    if (document.hidden) document.title = `• ${t.tabTitle}`; // never the content
  });
  seeker.events.on('delivered', (sequence) => {
    deliveredThrough = Math.max(deliveredThrough, sequence);
    for (const [i, el] of Array.from(document.querySelectorAll('#log .msg.me .state')).entries()) {
      const mine = lines.filter((l) => l.who === 'me')[i];
      if (mine && (mine.sequence ?? 0) <= deliveredThrough) el.textContent = t.sent;
    }
  });
  seeker.events.on('transferProposed', (proposed) => {
    if (client !== seeker) return;
    offer = proposed;
    transferNote = '';
    if (seeker.state === 'connected') render();
  });
  seeker.events.on('transferDeclined', () => {
    if (client !== seeker) return;
    offer = null;
    transferNote = t.transferUnknown;
    if (seeker.state === 'connected') render();
  });
  seeker.events.on('transferred', (target) => {
    if (client !== seeker) return;
    // The old conversation is forgotten: the next counsellor starts afresh, and so does this page.
    const pinned = config!.organisations.find((o) => o.id === toHex(target.pin.orgId));
    chosen = organisations.find((o) => o.id === toHex(target.pin.orgId))
      ?? { ...chosen!, id: toHex(target.pin.orgId), name: target.name, roots: pinned?.roots ?? [] };
    lines = [];
    textsSent = 0;
    deliveredThrough = 0;
    offer = null;
    transferNote = fill(t.transferredNote, { org: target.name });
    show(waitingView, 'waiting');
  });
  seeker.events.on('ended', (reason) => {
    if (client !== seeker) return;
    ending = reason;
    reconnecting = false;
    showConnection();
    window.removeEventListener('beforeunload', warnBeforeLeaving);
    client = null;
    void seeker.dispose();
    show(endedView, 'ended');
  });
  show(() => preparingView(null), 'preparing');
  try {
    const queue = await seeker.open({ language, topic, urgent, signal: AbortSignal.timeout(60000) });
    position = queue.position;
    wait = queue.wait;
    hold = queue.holdSeconds;
    if (seeker.state === 'waiting') show(waitingView, 'waiting');
  } catch (e) {
    if (client !== seeker) return;
    const code = (e as { code?: string }).code;
    ending = code === 'queue_full' || code === 'closed' ? code : 'open_failed';
    window.removeEventListener('beforeunload', warnBeforeLeaving);
    client = null;
    void seeker.dispose();
    show(endedView, 'ended');
  }
}

/** Close the session, wipe the page's memory and DOM, and replace this page in the history with a neutral site. */
async function quickExit(): Promise<void> {
  if (exiting) return;
  exiting = true;
  const target = config?.quickExitUrl ?? FALLBACK_EXIT;
  window.removeEventListener('beforeunload', warnBeforeLeaving);
  const seeker = client;
  client = null;
  document.body.replaceChildren();
  document.title = '';
  lines = [];
  offer = null;
  transferNote = '';
  organisations = [];
  chosen = null;
  render = () => undefined;
  if (seeker) {
    // Give the close a brief moment to reach the server (so it ends the session now), never longer.
    const closing = seeker.close({ signal: AbortSignal.timeout(800) }).catch(() => undefined);
    await Promise.race([closing, new Promise((resolve) => setTimeout(resolve, 800))]);
    void seeker.dispose();
  }
  location.replace(target);
}

function init(): void {
  document.documentElement.lang = ui;
  document.title = t.tabTitle;
  main = h('main', { id: 'main' });
  document.body.replaceChildren(bar(), main);
  document.addEventListener('keydown', (e) => {
    // Not while an input method is composing a character: there Escape only cancels the composition.
    if (e.key === 'Escape' && !e.isComposing) {
      e.preventDefault();
      void quickExit();
    }
  });
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) document.title = t.tabTitle;
  });
  show(() => preparingView(null), 'loading');
  load().then(() => show(startView, 'start'), () => {
    organisations = [];
    show(startView, 'start');
  });
}

init();
