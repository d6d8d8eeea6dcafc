/**
 * Bundled consumers (the benchmarks, the CLI's process tests, the web demo) keep every family's registration:
 * a bundle that only imports the family packages for their registration, or only uses a model class, still
 * lists both families in the one registry. (A registration in a side-effect-only module would be dropped by
 * esbuild / rolldown under `sideEffects: false`.)
 */
import { describe, it, expect } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import { repoRoot } from '@softbias/test-utils';

function sources(): Map<string, string> {
  const out = new Map<string, string>();
  for (const d of readdirSync(join(repoRoot, 'packages'))) {
    const src = join(repoRoot, 'packages', d, 'src/index.ts');
    if (existsSync(src)) out.set(`@softbias/${d}`, src);
    const pkg = join(repoRoot, 'packages', d, 'package.json');
    const exportsMap = existsSync(pkg) ? ((JSON.parse(readFileSync(pkg, 'utf8')) as { exports?: Record<string, unknown> }).exports ?? {}) : {};
    for (const [sub, target] of Object.entries(exportsMap)) {
      const file = typeof target === 'object' && target ? (target as { default?: string }).default : undefined;
      if (sub === '.' || !file?.startsWith('./dist/') || !file.endsWith('.js')) continue;
      out.set(`@softbias/${d}/${sub.slice(2)}`, join(repoRoot, 'packages', d, 'src', file.slice('./dist/'.length).replace(/\.js$/, '.ts')));
    }
  }
  return out;
}

async function familiesOfBundle(entry: string): Promise<string[]> {
  const map = sources();
  // Inside the repo (node_modules/.cache), so the bundle resolves its external tfjs imports.
  mkdirSync(join(repoRoot, 'node_modules', '.cache'), { recursive: true });
  const outfile = join(mkdtempSync(join(repoRoot, 'node_modules', '.cache', 'softbias-registry-bundle-')), 'entry.mjs');
  await build({
    stdin: { contents: entry, resolveDir: join(repoRoot, 'packages/cli/src'), loader: 'ts' },
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile,
    external: ['@tensorflow/*', 'webgpu', 'onnxruntime-*'],
    logLevel: 'error',
    plugins: [{ name: 'softbias-sources', setup: (b) => b.onResolve({ filter: /^@softbias\// }, (a) => (map.has(a.path) ? { path: map.get(a.path)! } : undefined)) }],
  });
  const out = execFileSync(process.execPath, [outfile], { cwd: repoRoot, encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').at(-1)!) as string[];
}

describe('registration survives bundling', () => {
  it('bare imports of the family packages register both families', async () => {
    const fams = await familiesOfBundle(
      "import '@softbias/models-convit';\nimport '@softbias/models-convnextv2';\nimport { models } from '@softbias/tensor-ops/models';\nconsole.log(JSON.stringify(models.familyNames()));\n",
    );
    expect(fams).toEqual(expect.arrayContaining(['convit', 'convnextv2', 'fcmae']));
  });
  it('using only the ConvNeXt V2 class registers its family', async () => {
    const fams = await familiesOfBundle(
      "import { ConvNeXtV2 } from '@softbias/models-convnextv2';\nimport { models } from '@softbias/tensor-ops/models';\nconsole.log(typeof ConvNeXtV2);\nconsole.log(JSON.stringify(models.familyNames()));\n",
    );
    expect(fams).toEqual(expect.arrayContaining(['convnextv2', 'fcmae']));
  });
});
