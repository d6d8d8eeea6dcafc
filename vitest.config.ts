/**
 * One set of spec files, one vitest project per backend (cpu, wasm, webgpu on Dawn/SwiftShader in Node).
 * - `*.test.ts` run on every backend (the setup file selects it; `describeBackend` tells the spec which).
 * - `*.pure.test.ts` do not touch tensors on a backend (parsers, fuzzers, registries): run once, in `cpu`.
 * Packages resolve to their sources, so tests need no build.
 */
import { defineConfig } from 'vitest/config';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const root = fileURLToPath(new URL('.', import.meta.url));
// Every package name and subpath export (package.json `exports` "./x" → its `src/` file) resolves to the
// sources, matched exactly (so '@softbias/x' does not swallow '@softbias/x/sub').
const alias: { find: RegExp; replacement: string }[] = [];
const exact = (name: string, path: string) =>
  alias.push({ find: new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`), replacement: path });
exact('@softbias/test-utils', join(root, 'test-utils/index.ts'));
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

const specs = ['packages/*/src/**/*.test.ts', 'packages/*/test/**/*.test.ts', 'examples/*/test/**/*.test.ts', 'test-utils/**/*.test.ts'];
const backends = ['cpu', 'wasm', 'webgpu'] as const;

export default defineConfig({
  resolve: { alias },
  test: {
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 120_000,
    projects: backends.map((backend) => ({
      extends: true,
      test: {
        name: backend,
        include: backend === 'cpu' ? specs : specs,
        exclude: backend === 'cpu' ? [] : ['**/*.pure.test.ts'],
        setupFiles: [join(root, 'test-utils/setup.ts')],
        env: { SOFTBIAS_BACKEND: backend },
        // Dawn and SwiftShader are single-device: one webgpu worker at a time.
        ...(backend === 'webgpu' ? { maxWorkers: 1, fileParallelism: false } : {}),
      },
    })),
  },
});
