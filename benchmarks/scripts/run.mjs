#!/usr/bin/env node
// `npm run bench`: bundles the TypeScript benchmark with esbuild and runs it.
//
// Why a bundle: Node 20 cannot run .ts files, and bundling from the packages' sources (like vitest does)
// needs no prior build and always measures the working tree. @softbias/* imports resolve to
// packages/<name>/src/index.ts; every other package (tfjs, webgpu, playwright-core) stays external in the Node
// bundle, so tfjs-core is loaded once and tfjs-backend-wasm finds its .wasm files beside itself. The browser
// bundle (for headless Chromium) includes everything; tfjs-backend-wasm's .wasm files are copied beside it.
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { softbiasSourcesPlugin } from '../../scripts/source-aliases.mjs';

const benchDir = fileURLToPath(new URL('..', import.meta.url));
const root = join(benchDir, '..');
const cache = join(benchDir, '.cache');
mkdirSync(cache, { recursive: true });
// A folder per run (bundles, job and result files), so two runs never share files; assets are shared.
const runDir = mkdtempSync(join(cache, 'run-'));
const web = join(runDir, 'web');
mkdirSync(join(web, 'wasm'), { recursive: true });

/** @softbias/* → their sources (scripts/source-aliases.mjs); in the Node bundle, other bare imports stay external. */
function softbiasSources(externalBare) {
  const sources = softbiasSourcesPlugin(root);
  return {
    name: 'softbias-sources',
    setup(b) {
      sources.setup(b);
      if (externalBare) {
        b.onResolve({ filter: /^[^./]/ }, (args) => (args.path.startsWith('@softbias/') ? undefined : { path: args.path, external: true }));
      }
    },
  };
}

const common = { bundle: true, format: 'esm', sourcemap: 'inline', logLevel: 'warning', target: 'es2022' };
await build({
  ...common,
  entryPoints: [join(benchDir, 'src', 'main.ts')],
  outfile: join(runDir, 'bench.mjs'),
  platform: 'node',
  plugins: [softbiasSources(true)],
});
await build({
  ...common,
  entryPoints: [join(benchDir, 'src', 'browser.ts')],
  outfile: join(web, 'bench.js'),
  platform: 'browser',
  // tensor-ops reaches node:fs only behind a Node check, through dynamic imports.
  external: ['node:*'],
  plugins: [softbiasSources(false)],
});
writeFileSync(
  join(web, 'index.html'),
  '<!doctype html><meta charset="utf-8"><title>softbias bench</title><script type="module" src="/bench.js"></script>\n',
);
const require = createRequire(import.meta.url);
const wasmDist = dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')) + '/dist';
for (const f of readdirSync(wasmDist)) if (f.endsWith('.wasm')) copyFileSync(join(wasmDist, f), join(web, 'wasm', f));

const r = spawnSync(process.execPath, ['--enable-source-maps', join(runDir, 'bench.mjs'), ...process.argv.slice(2)], {
  stdio: 'inherit',
  env: { ...process.env, SOFTBIAS_ROOT: root },
});
rmSync(runDir, { recursive: true, force: true });
process.exit(r.status ?? 1);
