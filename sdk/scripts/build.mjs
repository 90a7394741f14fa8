// Builds dist/: ESM entries (one per adapter, shared code in chunks), the script-tag
// IIFE bundle and the type declarations. Players are never bundled.
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { build } from 'esbuild';

const here = new URL('..', import.meta.url).pathname;
rmSync(`${here}dist`, { recursive: true, force: true });

const common = { bundle: true, target: 'es2020', platform: 'browser', legalComments: 'none', absWorkingDir: here };

await build({
  ...common,
  entryPoints: {
    index: 'src/index.ts',
    html5: 'src/adapters/html5.ts',
    videojs: 'src/adapters/videojs.ts',
    hlsjs: 'src/adapters/hlsjs.ts',
    dashjs: 'src/adapters/dashjs.ts',
    shaka: 'src/adapters/shaka.ts',
  },
  format: 'esm',
  splitting: true,
  outdir: 'dist/esm',
  chunkNames: 'chunks/[name]-[hash]',
  sourcemap: true,
});

await build({
  ...common,
  entryPoints: ['src/global.ts'],
  format: 'iife',
  globalName: 'OpenQoE',
  minify: true,
  sourcemap: true,
  outfile: 'dist/openqoe.min.js',
});

execFileSync(process.execPath, [`${here}node_modules/typescript/bin/tsc`, '-p', `${here}tsconfig.build.json`], {
  stdio: 'inherit',
});
console.log('built dist/esm, dist/openqoe.min.js, dist/types');
