// What the two browser drivers (seeker-page.mjs, console-page.mjs) share: their arguments, Debian's chromium
// (never a downloaded browser), events on stdout as JSON lines, the in-page privacy watch, and the loop that
// reads commands from stdin as JSON lines.
import { existsSync, mkdirSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

export const argv = process.argv.slice(2);
export const arg = (name, fallback) => { const i = argv.indexOf(`--${name}`); return i >= 0 ? argv[i + 1] : fallback; };
export const timeout = 20_000;
export const emit = (event, data = {}) => process.stdout.write(JSON.stringify({ event, ...data }) + '\n');

/** Debian's chromium from --chromium, CHROMIUM_PATH or the PATH, launched headless; the run ends with a sentence when there is none. */
export async function launch(extraArgs = []) {
  const onPath = (name) => (process.env.PATH ?? '').split(delimiter).map((dir) => join(dir, name)).find(existsSync);
  const executablePath = arg('chromium', process.env.CHROMIUM_PATH || onPath('chromium') || onPath('chromium-browser'));
  if (!executablePath) {
    emit('error', { message: 'Chromium was not found: install Debian\'s chromium (apt-get install chromium) or set CHROMIUM_PATH.' });
    process.exit(1);
  }
  mkdirSync(arg('shots'), { recursive: true });
  return chromium.launch({ executablePath, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage', ...extraArgs] });
}

/** An init script: what a page must never do, counted from inside it (CSP violations and any use of browser storage). */
export function watch() {
  const w = window;
  w.__tl = { violations: [], storage: [] };
  document.addEventListener('securitypolicyviolation', (e) => w.__tl.violations.push(`${e.violatedDirective} ${e.blockedURI}`));
  const note = (what) => w.__tl.storage.push(what);
  for (const [owner, name] of [[Storage.prototype, 'setItem'], [IDBFactory.prototype, 'open'], [CacheStorage.prototype, 'open'], [ServiceWorkerContainer.prototype, 'register']]) {
    const original = owner[name];
    owner[name] = function (...args) { note(name); return original.apply(this, args); };
  }
  const cookie = Object.getOwnPropertyDescriptor(Document.prototype, 'cookie');
  Object.defineProperty(Document.prototype, 'cookie', { get() { return cookie.get.call(this); }, set(v) { note('cookie'); cookie.set.call(this, v); } });
}

/** Says the browser is up, then runs each command line through `handle`; a failed command is an error event, never the end. */
export async function serve(browser, handle) {
  emit('launched', { chromium: browser.version() });
  for await (const line of createInterface({ input: process.stdin })) {
    try {
      await handle(JSON.parse(line));
    } catch (e) {
      emit('error', { message: e instanceof Error ? e.message : String(e) });
    }
  }
  await browser.close();
}
