/**
 * The demo is built from the packages' sources (no prior build): every @softbias/<name> import resolves to
 * packages/<name>/src/index.ts, which Vite compiles.
 */
import { defineConfig } from 'vite';
import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const root = fileURLToPath(new URL('../..', import.meta.url));
const alias: Record<string, string> = {};
for (const dir of readdirSync(join(root, 'packages'))) {
  const src = join(root, 'packages', dir, 'src', 'index.ts');
  if (existsSync(src)) alias[`@softbias/${dir}`] = src;
}

const ISOLATION = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' };

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: './',
  resolve: { alias },
  // Cross-origin isolation, so wasm threads (?threads=2) can use SharedArrayBuffer in `vite dev` / `vite preview`.
  server: { host: '127.0.0.1', headers: ISOLATION },
  preview: { host: '127.0.0.1', headers: ISOLATION },
  // Not minified: tfjs-backend-wasm's threaded build starts its pthread workers from the *source text* of its
  // module factory (Function.prototype.toString); minifying renames the bundle-level names that text refers
  // to, and every worker then fails with "e is not defined".
  build: { target: 'es2022', chunkSizeWarningLimit: 4096, minify: false },
});
