// Size report: the script-tag bundle as shipped, and what an app bundler ships for
// createClient plus one adapter (the ESM entries, tree-shaken and minified the same way).
// Raw and gzip bytes; run after `npm run build`.
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const here = new URL('..', import.meta.url).pathname;
const gzip = (bytes) => gzipSync(bytes, { level: 9 }).length;
const rows = [];

const iife = readFileSync(`${here}dist/openqoe.min.js`);
rows.push(['dist/openqoe.min.js (script tag, all adapters)', iife.length, gzip(iife)]);

const adapters = { html5: 'trackHtml5', videojs: 'trackVideoJs', hlsjs: 'trackHlsJs', dashjs: 'trackDashJs', shaka: 'trackShaka' };
for (const [entry, name] of Object.entries(adapters)) {
  const result = await build({
    absWorkingDir: here,
    stdin: {
      contents: `export { createClient } from './dist/esm/index.js'; export { ${name} } from './dist/esm/${entry}.js';`,
      resolveDir: here,
      loader: 'js',
    },
    bundle: true,
    minify: true,
    format: 'esm',
    target: 'es2020',
    write: false,
    legalComments: 'none',
    // The entries import shared chunks for their side effects; there are none (sideEffects: false).
    logLevel: 'error',
  });
  const bytes = result.outputFiles[0].contents;
  rows.push([`ESM: createClient + ${name} (@openqoe/sdk/${entry})`, bytes.length, gzip(bytes)]);
}

console.log('| output | raw bytes | gzip bytes |\n|---|---:|---:|');
for (const [file, raw, gz] of rows) console.log(`| ${file} | ${raw} | ${gz} |`);
