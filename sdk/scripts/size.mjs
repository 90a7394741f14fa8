// Raw and gzip size of every built output, for the README's size table.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';

const dist = new URL('../dist', import.meta.url).pathname;

function* files(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* files(path);
    else if (name.endsWith('.js')) yield path;
  }
}

const rows = [...files(dist)].sort().map((path) => {
  const bytes = readFileSync(path);
  return { file: relative(dist, path), raw: bytes.length, gzip: gzipSync(bytes, { level: 9 }).length };
});
console.log('| file | raw bytes | gzip bytes |\n|---|---:|---:|');
for (const r of rows) console.log(`| dist/${r.file} | ${r.raw} | ${r.gzip} |`);
