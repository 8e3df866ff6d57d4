// Drives the counsellor console in Debian's Chromium (playwright-core, never a browser download) for the .NET
// browser tests (Server.Tests/Web/ConsolePageTests.cs), and the seeker page in a second browser context as the
// person on the other side. Commands arrive on stdin as JSON lines, events leave on stdout. Every wait is bounded.
//   node tests/console-page.mjs --url http://127.0.0.1:PORT/ --shots DIR [--track-bytes] [--chromium PATH]
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { argon2id } from 'hash-wasm';
import { arg, argv, emit, launch, serve, timeout, watch } from './driver.mjs';

const url = arg('url');
const shots = arg('shots');

const browser = await launch(['--autoplay-policy=no-user-gesture-required']);

const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'en-GB', serviceWorkers: 'allow' });
context.setDefaultTimeout(timeout);
await context.addInitScript(watch);
// With --track-bytes, every Uint8Array the console makes is remembered weakly, so a test can look for copies of
// the key in the page's memory (after a garbage collection) without any help from the page itself.
if (argv.includes('--track-bytes')) {
  await context.addInitScript(() => {
    const Original = Uint8Array;
    const refs = [];
    const Tracked = new Proxy(Original, {
      construct(target, args, newTarget) {
        const made = Reflect.construct(target, args, newTarget);
        refs.push(new WeakRef(made));
        return made;
      },
    });
    Object.defineProperty(Original.prototype, 'constructor', { value: Tracked, writable: true, configurable: true });
    window.Uint8Array = Tracked;
    window.__tlFind = (needle) => {
      const seed = Original.from(needle);
      const buffers = new Set();
      const live = [];
      for (const ref of refs) {
        const a = ref.deref();
        if (!a) continue;
        live.push(ref);
        if (a.buffer.byteLength > 0) buffers.add(a.buffer);
      }
      refs.splice(0, refs.length, ...live);
      let found = 0;
      for (const buffer of buffers) {
        const all = new Original(buffer);
        for (let i = all.indexOf(seed[0]); i >= 0 && i + seed.length <= all.length; i = all.indexOf(seed[0], i + 1)) {
          let same = true;
          for (let j = 1; j < seed.length && same; j++) same = all[i + j] === seed[j];
          if (same) found++;
        }
      }
      return { buffers: buffers.size, found };
    };
  });
}

let page = await context.newPage();
const consoleErrors = [];
const pageErrors = [];
const listen = (p) => {
  p.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  p.on('pageerror', (e) => pageErrors.push(e.message));
};
listen(page);

// The person on the other side: the seeker page on a phone, in its own browser context.
let seekerContext = null;
let seeker = null;

const shot = async (target, name) => {
  const path = join(shots, `${name}.png`);
  await target.screenshot({ path, fullPage: false });
  return path;
};
const state = (name) => page.waitForSelector(`body[data-state="${name}"]`, { timeout });
const text = async (selector) => (await page.textContent(selector))?.trim() ?? '';

async function signIn(c) {
  await page.waitForSelector('#key-file');
  await page.setInputFiles('#key-file', c.key);
  if (c.cert) await page.setInputFiles('#cert-file', c.cert);
  await page.fill('#passphrase', c.passphrase);
  const started = Date.now();
  await page.click('form button[type="submit"]');
  // Either the console opens or the sign-in says why not, in one sentence.
  await page.waitForFunction(() => document.body.dataset.state === 'console' || (document.getElementById('signin-error')?.textContent ?? '').length > 0, undefined, { timeout: 30_000 });
  const ms = Date.now() - started;
  if (await page.evaluate(() => document.body.dataset.state) === 'console') {
    await page.waitForSelector('#queue-count');
    emit('signed-in', { ms, org: await text('#org'), fingerprint: await text('#fingerprint'), expiry: await text('#expiry'), queue: await text('#queue-count') });
  } else {
    emit('refused', { ms, error: await text('#signin-error'), passphraseEmpty: (await page.inputValue('#passphrase')) === '' });
  }
}

/** The key file's seed and the key that wraps it, opened here (Argon2id over the passphrase's UTF-16LE code units, as KeyFile.cs does). */
async function secretsOf(path, passphrase) {
  const file = JSON.parse(readFileSync(path, 'utf8'));
  const salt = Buffer.from(file.kdf.salt, 'base64');
  const ad = Buffer.from(`trustline-private-key/v1|${file.kind}|${file.publicKey}|argon2id|${file.kdf.memoryKiB}|${file.kdf.passes}|${file.kdf.salt}|xchacha20-poly1305`);
  const key = await argon2id({ password: Buffer.from(passphrase, 'utf16le'), salt, parallelism: 1, iterations: file.kdf.passes, memorySize: file.kdf.memoryKiB, hashLength: 32, outputType: 'binary' });
  return { seed: xchacha20poly1305(key, Buffer.from(file.nonce, 'base64'), ad).decrypt(Buffer.from(file.ciphertext, 'base64')), wrapping: key };
}

/** How many copies of the key (and of the passphrase-derived key that opens the file) are alive in the console's memory after a full garbage collection. */
async function keyCopies({ seed, wrapping }) {
  const cdp = await context.newCDPSession(page);
  try {
    await cdp.send('HeapProfiler.enable');
    await cdp.send('HeapProfiler.collectGarbage');
    await cdp.send('HeapProfiler.collectGarbage');
  } finally {
    await cdp.detach().catch(() => undefined);
  }
  const key = await page.evaluate((needle) => window.__tlFind(needle), [...seed]);
  const opener = await page.evaluate((needle) => window.__tlFind(needle), [...wrapping]);
  return { buffers: key.buffers, found: key.found, wrappingFound: opener.found };
}

async function tabs() {
  return page.$$eval('#tabs [role="tab"]', (els) => els.map((e) => ({
    label: e.textContent, selected: e.getAttribute('aria-selected') === 'true', unread: Number(e.querySelector('.unread')?.textContent ?? 0),
  })));
}

async function handle(c) {
  switch (c.cmd) {
    case 'open': {
      await page.goto(new URL('/console/', url).toString(), { waitUntil: 'load' });
      await page.waitForSelector('#key-file');
      const labelled = await page.$$eval('select, textarea, input', (els) => els.every((e) => e.labels && e.labels.length > 0));
      emit('ready', { title: await page.title(), labelled, demo: (await page.$('#demo-key')) !== null, screenshot: await shot(page, 'console-sign-in') });
      break;
    }
    case 'sign-in':
      await signIn(c);
      break;
    case 'demo-sign-in': {
      // The INSECURE demo: the server's demo key file, its published passphrase filled in, certificates made in the page.
      await page.click('#demo-key');
      await page.waitForFunction(() => (document.getElementById('passphrase')?.value ?? '').length > 0, undefined, { timeout });
      await page.click('form button[type="submit"]');
      await page.waitForFunction(() => document.body.dataset.state === 'console' || (document.getElementById('signin-error')?.textContent ?? '').length > 0, undefined, { timeout: 30_000 });
      emit('demo-signed-in', { state: await page.evaluate(() => document.body.dataset.state), org: (await page.$('#org')) ? await text('#org') : await text('#signin-error'), fingerprint: (await page.$('#fingerprint')) ? await text('#fingerprint') : '' });
      break;
    }
    case 'queue': {
      // Wait until the queue shows this many entries.
      await page.waitForFunction((n) => document.querySelectorAll('#queue-list li').length === n, c.count, { timeout });
      emit('queue', {
        count: await text('#queue-count'),
        entries: await page.$$eval('#queue-list li', (els) => els.map((e) => e.textContent)),
        urgent: await page.$$eval('#queue-list li.urgent', (els) => els.length),
        title: await page.title(),
        chimes: Number(await page.evaluate(() => document.body.dataset.chimes ?? 0)),
        takeDisabled: await page.isDisabled('#take-next'),
        offered: (await page.$('#offer')) !== null,
        screenshot: c.shot ? await shot(page, c.shot) : null,
      });
      break;
    }
    case 'availability':
      await page.click('#availability');
      emit('availability', { label: await text('#availability'), pressed: await page.getAttribute('#availability', 'aria-pressed') });
      break;
    case 'offer': {
      // Wait for an offer, then answer it (accept: a new tab; decline: the offer goes).
      await page.waitForSelector('#offer', { timeout });
      const offered = { offer: await text('#offer p'), capacity: (await page.$('#capacity')) ? await text('#capacity') : '' };
      const before = (await tabs()).length;
      await page.click(c.accept ? '#accept-offer' : '#decline-offer');
      if (c.accept) await page.waitForFunction((n) => document.querySelectorAll('#tabs [role="tab"]').length === n + 1, before, { timeout });
      await page.waitForFunction(() => !document.getElementById('offer'), undefined, { timeout });
      emit('offer-answered', { ...offered, tabs: await tabs(), capacityAfter: (await page.$('#capacity')) ? await text('#capacity') : '', status: await text('#connection') });
      break;
    }
    case 'take-next': {
      const before = (await tabs()).length;
      await page.keyboard.press('Alt+T');
      await page.waitForFunction((n) => document.querySelectorAll('#tabs [role="tab"]').length === n + 1, before, { timeout });
      emit('taken', { tabs: await tabs(), info: await text('.chat-info'), labelled: await page.$$eval('select, textarea, input', (els) => els.every((e) => e.labels && e.labels.length > 0)) });
      break;
    }
    case 'take': {
      const before = (await tabs()).length;
      // The list must show what the server says now (one notice per change, coalesced), not what it showed before.
      if (c.expect !== undefined) {
        await page.waitForFunction((n) => document.querySelectorAll('#queue-list li').length === n, c.expect, { timeout });
      }
      await page.click(`#queue-list li:nth-child(${c.index + 1}) button.take`);
      await page.waitForFunction((n) => document.querySelectorAll('#tabs [role="tab"]').length === n + 1, before, { timeout });
      emit('taken', { tabs: await tabs(), info: await text('.chat-info') });
      break;
    }
    case 'established':
      await page.waitForFunction(() => !(document.querySelector('.chat-info')?.textContent ?? '').includes('setting up'), undefined, { timeout });
      emit('established', { info: await text('.chat-info'), returning: (await page.$('#returning')) !== null });
      break;
    case 'send': {
      const before = await page.locator('#log .msg.me').count();
      await page.fill('#message', c.text);
      await page.keyboard.press('Enter');
      await page.waitForFunction((n) => document.querySelectorAll('#log .msg.me').length === n + 1, before, { timeout });
      emit('sent');
      break;
    }
    case 'expect':
      await page.waitForFunction((n) => document.querySelectorAll('#log .msg.them').length >= n, c.count, { timeout });
      emit('received', {
        texts: await page.$$eval('#log .msg.them .text', (els) => els.map((e) => e.textContent)),
        elements: await page.$$eval('#log .msg.them .text *', (els) => els.length),
      });
      break;
    case 'unread':
      // Wait until the tab numbered c.tab (1-based) shows c.count unread.
      await page.waitForFunction(([i, n]) => Number(document.querySelectorAll('#tabs [role="tab"]')[i]?.querySelector('.unread')?.textContent ?? 0) === n, [c.tab - 1, c.count], { timeout });
      emit('tabs', { tabs: await tabs(), title: await page.title() });
      break;
    case 'next-chat':
      await page.keyboard.press('Alt+N');
      emit('tabs', { tabs: await tabs(), title: await page.title() });
      break;
    case 'end': {
      await page.keyboard.press('Alt+E');
      await page.waitForSelector('#end-reason');
      await page.selectOption('#end-reason', String(c.reason));
      await page.click('#confirm-end');
      await page.waitForSelector('#ended-reason');
      emit('ended', { reason: await text('#ended-reason'), tabs: await tabs() });
      break;
    }
    case 'ended':
      await page.waitForSelector('#ended-reason');
      emit('ended', { reason: await text('#ended-reason'), tabs: await tabs() });
      break;
    case 'transfer': {
      // Propose a transfer of the current chat to the organisation whose id (hex) is c.org.
      const notes = await page.locator('#log .msg.note').count();
      await page.selectOption('#transfer-to', c.org);
      await page.click('#transfer');
      await page.waitForFunction((n) => document.querySelectorAll('#log .msg.note').length > n || (document.getElementById('connection')?.textContent ?? '').length > 0, notes, { timeout });
      emit('transfer', {
        options: await page.$$eval('#transfer-to option', (els) => els.map((e) => e.textContent)),
        notes: await page.$$eval('#log .msg.note .text', (els) => els.map((e) => e.textContent)),
        status: await text('#connection'),
        screenshot: await shot(page, 'console-transfer'),
      });
      break;
    }
    case 'notes':
      await page.waitForFunction((n) => document.querySelectorAll('#log .msg.note').length >= n, c.count, { timeout });
      emit('notes', { notes: await page.$$eval('#log .msg.note .text', (els) => els.map((e) => e.textContent)) });
      break;
    case 'screenshot':
      emit('shot', { screenshot: await shot(page, c.name) });
      break;
    case 'key-copies':
      emit('key-copies', await keyCopies(await secretsOf(c.key, c.passphrase)));
      break;
    case 'await-locked': {
      await page.waitForSelector('body[data-state="locked"]', { timeout: c.seconds * 1000 });
      emit('locked', { heading: await text('#lock-heading'), consoleHidden: !(await page.isVisible('main.console')) && !(await page.isVisible('header.bar')), screenshot: await shot(page, 'console-locked') });
      break;
    }
    case 'unlock': {
      await page.fill('#unlock-passphrase', c.passphrase);
      await page.click('#lock-screen button[type="submit"]');
      await page.waitForFunction(() => document.body.dataset.state === 'console' || (document.getElementById('unlock-error')?.textContent ?? '').length > 0, undefined, { timeout: 30_000 });
      emit('unlocked', { state: await page.evaluate(() => document.body.dataset.state), error: (await page.$('#unlock-error')) ? await text('#unlock-error') : '' });
      break;
    }
    case 'audit': {
      const seen = await page.evaluate(() => window.__tl);
      emit('audit', { violations: seen.violations, storage: seen.storage, consoleErrors, pageErrors });
      break;
    }
    case 'try-reload': {
      // With chats open the console asks first (the browser's own leave-page question); dismissing keeps them.
      let dialog = null;
      page.once('dialog', async (d) => { dialog = d.type(); await d.dismiss(); });
      await page.reload({ timeout: 3000 }).catch(() => null);
      emit('reload', { dialog, state: await page.evaluate(() => document.body.dataset.state), tabs: (await tabs()).length });
      break;
    }
    case 'close': {
      // Closing the tab with chats open: the question comes; the counsellor confirms; the chats are ended.
      let dialog = null;
      page.once('dialog', async (d) => { dialog = d.type(); await d.accept(); });
      await page.close({ runBeforeUnload: true });
      await page.waitForEvent('close', { timeout });
      emit('closed', { dialog });
      break;
    }
    case 'seeker-open': {
      seekerContext = await browser.newContext({ viewport: { width: 360, height: 740 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true, locale: 'en-GB' });
      seekerContext.setDefaultTimeout(timeout);
      seeker = await seekerContext.newPage();
      await seeker.goto(url, { waitUntil: 'load' });
      await seeker.waitForSelector('#org');
      await seeker.selectOption('#language', c.language);
      await seeker.selectOption('#topic', c.topic ?? '');
      await seeker.tap('form button[type="submit"]');
      await seeker.waitForSelector('body[data-state="waiting"]');
      emit('seeker-waiting');
      break;
    }
    case 'seeker-connected':
      await seeker.waitForSelector('body[data-state="connected"]');
      emit('seeker-connected');
      break;
    case 'seeker-send': {
      const before = await seeker.locator('#log .msg.me').count();
      await seeker.fill('#message', c.text);
      await seeker.tap('.compose button[type="submit"]');
      await seeker.waitForFunction((n) => document.querySelectorAll('#log .msg.me').length === n + 1, before, { timeout });
      emit('seeker-sent');
      break;
    }
    case 'seeker-expect':
      await seeker.waitForFunction((n) => document.querySelectorAll('#log .msg.them').length >= n, c.count, { timeout });
      emit('seeker-received', { texts: await seeker.$$eval('#log .msg.them .text', (els) => els.map((e) => e.textContent)) });
      break;
    case 'seeker-ended':
      await seeker.waitForSelector('body[data-state="ended"]', { timeout: (c.seconds ?? 20) * 1000 });
      emit('seeker-ended', { reason: (await seeker.textContent('#ended-reason'))?.trim() });
      break;
    case 'exit':
      await browser.close();
      emit('bye');
      process.exit(0);
  }
}

await serve(browser, handle);
