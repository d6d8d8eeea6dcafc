/**
 * The demo is built from the packages' sources (no prior build): every @softbias/<name> import resolves to
 * packages/<name>/src/index.ts (subpath exports to their src/ files), which Vite compiles.
 */
import { defineConfig } from 'vite';
import { fileURLToPath } from 'node:url';
import { softbiasAliasEntries } from '../../scripts/source-aliases.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));
// Every package name and subpath export resolves to its source (scripts/source-aliases.mjs, matched exactly).
const alias = softbiasAliasEntries(root);

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
  // The fine-tune Worker is an ES module (it imports tfjs and the packages, split into chunks).
  worker: { format: 'es' },
});
