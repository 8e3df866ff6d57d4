// Drives the seeker page in Debian's Chromium (playwright-core, never a browser download) on a phone-sized
// screen, for the .NET browser tests (Server.Tests/Web/SeekerPageTests.cs): commands arrive on stdin as JSON
// lines, events leave on stdout as JSON lines. Every wait is bounded.
//   node tests/seeker-page.mjs --url http://127.0.0.1:PORT/ --shots DIR [--chromium PATH]
import { join } from 'node:path';
import { arg, emit, launch, serve, timeout, watch } from './driver.mjs';

const url = arg('url');
const shots = arg('shots');
const neutral = 'https://neutral.example/';

const browser = await launch();
const context = await browser.newContext({
  viewport: { width: 360, height: 740 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true, locale: 'nl-NL', serviceWorkers: 'allow',
});
context.setDefaultTimeout(timeout);

// What the page must never do, counted from inside it: CSP violations and any use of browser storage.
await context.addInitScript(watch);

// The page's WebSockets go through here, so a test can cut them as a lost signal would.
let blocked = false;
const sockets = new Set();
await context.routeWebSocket(/\/hubs\//, (ws) => {
  if (blocked) {
    ws.close({ code: 1006 });
    return;
  }
  ws.connectToServer();
  sockets.add(ws);
  ws.onClose(() => sockets.delete(ws));
});
await context.route(`${neutral}**`, (route) => route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>Weather</title><p>Sunny.</p>' }));

const page = await context.newPage();
const consoleErrors = [];
const pageErrors = [];
page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
page.on('pageerror', (e) => pageErrors.push(e.message));

const state = (name) => page.waitForSelector(`body[data-state="${name}"]`, { timeout });
const shot = async (name) => {
  const path = join(shots, `seeker-${name}.png`);
  await page.screenshot({ path, fullPage: false });
  return path;
};
const theirTexts = () => page.$$eval('#log .msg.them .text', (els) => els.map((e) => e.textContent));

async function start(c) {
  await page.waitForSelector('#org');
  await page.selectOption('#language', c.language);
  await page.selectOption('#topic', c.topic ?? '');
  if (c.urgent) await page.check('#urgent');
  await page.tap('form button[type="submit"]');
  if (c.refused) return; // the open is expected to end at once (await-ended follows)
  await state('waiting');
  await page.waitForSelector('#position');
  emit('waiting', { position: await page.textContent('#position'), screenshot: await shot('waiting') });
}

async function send(texts) {
  for (const text of texts) {
    const before = await page.locator('#log .msg.me').count();
    await page.fill('#message', text);
    await page.tap('.compose button[type="submit"]');
    await page.waitForFunction((n) => document.querySelectorAll('#log .msg.me').length === n, before + 1, { timeout });
  }
}

async function handle(c) {
  switch (c.cmd) {
    case 'open': {
      await page.goto(url, { waitUntil: 'load' });
      await page.waitForSelector('#org');
      const exit = await page.locator('#quick-exit').boundingBox();
      const fitsWidth = await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
      const labelled = await page.$$eval('select, textarea, input', (els) => els.every((e) => e.labels && e.labels.length > 0));
      emit('ready', { title: await page.title(), exitWidth: exit?.width ?? 0, exitHeight: exit?.height ?? 0, fitsWidth, labelled, orgs: await page.$$eval('#org option', (o) => o.map((x) => x.textContent)), screenshot: await shot('start') });
      break;
    }
    case 'start':
      await start(c);
      break;
    case 'await-connected': {
      await state('connected');
      await page.waitForFunction(() => (document.getElementById('fingerprint')?.textContent ?? '').length > 0, undefined, { timeout });
      emit('connected', { fingerprint: await page.textContent('#fingerprint'), verified: await page.textContent('#verified-org') });
      break;
    }
    case 'expect': {
      await page.waitForFunction((n) => document.querySelectorAll('#log .msg.them').length >= n, c.count, { timeout });
      emit('received', { texts: await theirTexts() });
      break;
    }
    case 'send':
      await send(c.texts);
      emit('sent');
      break;
    case 'delivered':
      // Every own message marked as received by the counsellor's side (the mark's text is the page language's).
      await page.waitForFunction((mark) => {
        const marks = [...document.querySelectorAll('#log .msg.me .state')];
        return marks.length > 0 && marks.every((m) => m.textContent === mark);
      }, c.mark, { timeout });
      emit('delivered');
      break;
    case 'await-transfer': {
      await page.waitForSelector('#transfer');
      emit('transfer', { text: await page.textContent('#transfer-text'), screenshot: await shot('transfer') });
      break;
    }
    case 'accept-transfer': {
      await page.tap('#transfer-accept');
      await state('waiting');
      await page.waitForSelector('#transfer-note');
      emit('transferred', { note: await page.textContent('#transfer-note'), lines: await page.locator('#log .msg').count() });
      break;
    }
    case 'screenshot':
      emit('shot', { screenshot: await shot(c.name) });
      break;
    case 'closed-notice':
      emit('closed-notice', { text: (await page.textContent('#closed-notice')) ?? '', screenshot: await shot('closed') });
      break;
    case 'cut': {
      blocked = true;
      for (const ws of [...sockets]) await ws.close({ code: 1006 });
      await state('reconnecting');
      emit('cut', { status: await page.textContent('#connection'), screenshot: await shot('reconnecting') });
      break;
    }
    case 'send-offline':
      await send(c.texts);
      emit('sent-offline');
      break;
    case 'restore':
      blocked = false;
      await state('connected');
      emit('restored');
      break;
    case 'await-ended': {
      await state('ended');
      emit('ended', { reason: await page.textContent('#ended-reason'), screenshot: await shot('ended') });
      break;
    }
    case 'new-chat':
      await page.tap('main button.primary');
      await page.waitForSelector('#org');
      emit('start-again');
      break;
    case 'try-reload': {
      // A reload would end the chat: the page asks first (the browser's own leave-page question); dismiss it.
      let dialog = null;
      page.once('dialog', async (d) => { dialog = d.type(); await d.dismiss(); });
      await page.reload({ timeout: 3000 }).catch(() => null);
      emit('reload', { dialog, state: await page.evaluate(() => document.body.dataset.state) });
      break;
    }
    case 'audit': {
      const seen = await page.evaluate(() => window.__tl);
      emit('audit', { violations: seen.violations, storage: seen.storage, consoleErrors, pageErrors });
      break;
    }
    case 'quick-exit': {
      if (c.how === 'button') await page.tap('#quick-exit');
      else await page.keyboard.press('Escape');
      await page.waitForURL(neutral, { timeout });
      const historyLength = await page.evaluate(() => history.length);
      // Walk the whole history back: no entry may lead to the chat.
      const backUrls = [page.url()];
      for (let i = 0; i < 5; i++) {
        await page.goBack({ timeout: 2000 }).catch(() => null);
        if (page.url() === backUrls.at(-1)) break;
        backUrls.push(page.url());
      }
      // Look at the server's origin from a fresh tab: nothing may have been left there.
      const probe = await context.newPage();
      await probe.goto(new URL('/health/live', url).toString());
      const storage = await probe.evaluate(async () => ({
        localStorage: localStorage.length,
        sessionStorage: sessionStorage.length,
        cookie: document.cookie,
        indexedDB: (await indexedDB.databases()).length,
        caches: (await caches.keys()).length,
        serviceWorkers: (await navigator.serviceWorker.getRegistrations()).length,
      }));
      const state = await context.storageState();
      await probe.close();
      emit('exited', {
        historyLength, backUrls, storage,
        cookies: state.cookies.length, originsWithStorage: state.origins.length,
      });
      break;
    }
    case 'exit':
      await browser.close();
      emit('bye');
      process.exit(0);
  }
}

await serve(browser, handle);
