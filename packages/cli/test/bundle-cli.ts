/**
 * Test-only: bundle the `softbias` command (packages/cli/src/bin.ts) into one ESM file with esbuild, with every
 * @softbias/x package and its subpath exports (package.json "./sub" → src/sub…) resolved to the sources, as
 * vitest.config.ts does, so a spec can run the real CLI as a process.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';

export async function bundleCli(root: string, outfile: string): Promise<void> {
  const sources = new Map<string, string>();
  for (const d of readdirSync(join(root, 'packages'))) {
    const src = join(root, 'packages', d, 'src/index.ts');
    if (existsSync(src)) sources.set(`@softbias/${d}`, src);
    const pkgPath = join(root, 'packages', d, 'package.json');
    const exportsMap = existsSync(pkgPath) ? ((JSON.parse(readFileSync(pkgPath, 'utf8')) as { exports?: Record<string, unknown> }).exports ?? {}) : {};
    for (const [sub, target] of Object.entries(exportsMap)) {
      const file = typeof target === 'object' && target ? (target as { default?: string }).default : undefined;
      if (sub === '.' || !file?.startsWith('./dist/') || !file.endsWith('.js')) continue;
      sources.set(`@softbias/${d}/${sub.slice(2)}`, join(root, 'packages', d, 'src', file.slice('./dist/'.length).replace(/\.js$/, '.ts')));
    }
  }
  await build({
    entryPoints: [join(root, 'packages/cli/src/bin.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile,
    plugins: [
      {
        name: 'softbias-sources',
        setup(b) {
          b.onResolve({ filter: /^@softbias\// }, (args) => {
            const path = sources.get(args.path);
            return path ? { path } : undefined;
          });
        },
      },
    ],
    external: ['@tensorflow/*', 'webgpu', 'onnxruntime-*'],
    logLevel: 'error',
  });
}
