/**
 * The demo is built from the packages' sources (no prior build): every @softbias/<name> import resolves to
 * packages/<name>/src/index.ts (subpath exports to their src/ files), which Vite compiles.
 */
import { defineConfig } from 'vite';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const root = fileURLToPath(new URL('../..', import.meta.url));
// Exact matches, so '@softbias/x' does not swallow the subpath exports '@softbias/x/sub' (package.json
// `exports` "./sub" → its src/ file).
const alias: { find: RegExp; replacement: string }[] = [];
const exact = (name: string, path: string) =>
  alias.push({ find: new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`), replacement: path });
for (const dir of readdirSync(join(root, 'packages'))) {
  const src = join(root, 'packages', dir, 'src', 'index.ts');
  if (existsSync(src)) exact(`@softbias/${dir}`, src);
  const pkg = join(root, 'packages', dir, 'package.json');
  const exports = existsSync(pkg) ? (JSON.parse(readFileSync(pkg, 'utf8')).exports ?? {}) : {};
  for (const [sub, target] of Object.entries(exports as Record<string, { default?: string }>)) {
    const file = typeof target === 'object' ? target?.default : undefined;
    if (sub === '.' || !file?.startsWith('./dist/') || !file.endsWith('.js')) continue;
    const source = join(root, 'packages', dir, 'src', file.slice('./dist/'.length).replace(/\.js$/, '.ts'));
    if (existsSync(source)) exact(`@softbias/${dir}/${sub.slice(2)}`, source);
  }
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
