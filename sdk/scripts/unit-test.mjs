// Compiles test/*.test.ts with esbuild (no type-checking: that is `npm run typecheck`)
// and runs them with Node's built-in test runner.
import { spawnSync } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { build } from 'esbuild';

const here = new URL('..', import.meta.url).pathname;
const out = `${here}build/test`;
rmSync(out, { recursive: true, force: true });
const tests = readdirSync(`${here}test`).filter((f) => f.endsWith('.test.ts'));
await build({
  absWorkingDir: here,
  entryPoints: tests.map((f) => `test/${f}`),
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  outdir: out,
  outExtension: { '.js': '.mjs' },
  sourcemap: 'inline',
  logLevel: 'warning',
});
const files = tests.map((f) => `${out}/${f.replace(/\.ts$/, '.mjs')}`);
const result = spawnSync(process.execPath, ['--enable-source-maps', '--test', ...process.argv.slice(2), ...files], {
  stdio: 'inherit',
});
process.exit(result.status ?? 1);
