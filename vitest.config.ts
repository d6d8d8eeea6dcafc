/**
 * One set of spec files, one vitest project per backend (cpu, wasm, webgpu on Dawn/SwiftShader in Node).
 * - `*.test.ts` run on every backend (the setup file selects it; `describeBackend` tells the spec which).
 * - `*.pure.test.ts` do not touch tensors on a backend (parsers, fuzzers, registries): run once, in `cpu`.
 * Packages resolve to their sources, so tests need no build.
 */
import { defineConfig } from 'vitest/config';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { softbiasAliasEntries } from './scripts/source-aliases.mjs';

const root = fileURLToPath(new URL('.', import.meta.url));
// Every package name and subpath export resolves to its source (scripts/source-aliases.mjs, matched exactly).
const alias = softbiasAliasEntries(root);

const specs = ['packages/*/src/**/*.test.ts', 'packages/*/test/**/*.test.ts', 'examples/*/test/**/*.test.ts', 'test-utils/**/*.test.ts'];
const backends = ['cpu', 'wasm', 'webgpu'] as const;

export default defineConfig({
  resolve: { alias },
  test: {
    pool: 'forks',
    // Two files at a time (vitest's default on 2 cores is one): many specs wait on child processes, a browser or
    // shader compilation rather than compute; webgpu keeps one worker (below).
    maxWorkers: 2,
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
