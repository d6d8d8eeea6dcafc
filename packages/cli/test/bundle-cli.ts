/**
 * Test-only: bundle the `softbias` command (packages/cli/src/bin.ts) into one ESM file with esbuild, with every
 * @softbias/x package and its subpath exports (package.json "./sub" → src/sub…) resolved to the sources, as
 * vitest.config.ts does, so a spec can run the real CLI as a process.
 */
import { join } from 'node:path';
import { build } from 'esbuild';
import { softbiasSourcesPlugin } from '../../../scripts/source-aliases.mjs';

export async function bundleCli(root: string, outfile: string): Promise<void> {
  await build({
    entryPoints: [join(root, 'packages/cli/src/bin.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile,
    plugins: [softbiasSourcesPlugin(root)],
    external: ['@tensorflow/*', 'webgpu', 'onnxruntime-*'],
    logLevel: 'error',
  });
}
