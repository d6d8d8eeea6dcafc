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

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: './',
  resolve: { alias },
  server: { host: '127.0.0.1' },
  preview: { host: '127.0.0.1' },
  build: { target: 'es2022', chunkSizeWarningLimit: 4096 },
});
