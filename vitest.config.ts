/**
 * One set of spec files, one vitest project per backend (cpu, wasm, webgpu on Dawn/SwiftShader in Node).
 * - `*.test.ts` run on every backend (the setup file selects it; `describeBackend` tells the spec which).
 * - `*.pure.test.ts` do not touch tensors on a backend (parsers, fuzzers, registries): run once, in `cpu`.
 * Packages resolve to their sources, so tests need no build.
 */
import { defineConfig } from 'vitest/config';
import { readdirSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const root = fileURLToPath(new URL('.', import.meta.url));
const alias: Record<string, string> = { '@softbias/test-utils': join(root, 'test-utils/index.ts') };
for (const dir of readdirSync(join(root, 'packages'))) {
  const src = join(root, 'packages', dir, 'src', 'index.ts');
  if (existsSync(src)) alias[`@softbias/${dir}`] = src;
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
