// Builds the seeker page into dist/: one bundle (the SDK, the page and every language file), its stylesheet
// and icon, and index.html with subresource integrity for both. Nothing here is committed.
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, 'dist');
rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });

// Every i18n/<code>.json becomes a language of the page: adding a language is adding a file.
const languages = {};
for (const file of readdirSync(join(here, 'i18n')).filter((f) => f.endsWith('.json')).sort()) {
  languages[file.slice(0, -5)] = JSON.parse(readFileSync(join(here, 'i18n', file), 'utf8'));
}

await build({
  entryPoints: [join(here, 'src', 'main.ts')],
  outfile: join(dist, 'app.js'),
  bundle: true,
  minify: true,
  format: 'iife',
  platform: 'browser',
  target: ['es2022'],
  legalComments: 'none',
  define: { __LANGUAGES__: JSON.stringify(languages) },
  logLevel: 'warning',
});
copyFileSync(join(here, 'static', 'app.css'), join(dist, 'app.css'));
copyFileSync(join(here, 'static', 'icon.svg'), join(dist, 'icon.svg'));

const sri = (file) => 'sha384-' + createHash('sha384').update(readFileSync(join(dist, file))).digest('base64');
const html = readFileSync(join(here, 'static', 'index.html'), 'utf8')
  .replace('{{APP_JS_SRI}}', sri('app.js'))
  .replace('{{APP_CSS_SRI}}', sri('app.css'));
writeFileSync(join(dist, 'index.html'), html);
