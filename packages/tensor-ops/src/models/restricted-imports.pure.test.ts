/**
 * The repo's Biome config refuses the deprecated per-family names in internal code (noRestrictedImports):
 * a probe importing them fails the lint, the shared names pass.
 */
import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '@softbias/test-utils';

function lint(source: string): { status: number | null; out: string } {
  const dir = mkdtempSync(join(tmpdir(), 'softbias-restricted-'));
  const file = join(dir, 'probe.ts');
  writeFileSync(file, source);
  const biome = join(repoRoot, 'node_modules', '.bin', 'biome');
  const r = spawnSync(biome, ['lint', `--config-path=${join(repoRoot, 'biome.json')}`, file], { cwd: repoRoot, encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('deprecated names are restricted imports', () => {
  it('each deprecated ConvNeXt V2 name fails the lint; the shared ones pass', () => {
    for (const name of ['preprocess', 'IMAGENET_MEAN', 'IMAGENET_STD', 'type PretrainedConfig', 'type ImageInput', 'type PreprocessOptions']) {
      const r = lint(`import { ${name} } from '@softbias/models-convnextv2';\nexport type X = unknown;\nvoid 0;\n`);
      expect(r.status, name).not.toBe(0);
      expect(r.out, name).toMatch(/noRestrictedImports/);
    }
    const ok = lint(
      "import { preprocess, IMAGENET_DEFAULT_MEAN } from '@softbias/tensor-ops/models';\nimport { createModel } from '@softbias/models-convnextv2';\nexport const x = [preprocess, IMAGENET_DEFAULT_MEAN, createModel];\n",
    );
    expect(ok.out).not.toMatch(/noRestrictedImports/);
    expect(ok.status).toBe(0);
  });
  it("ConViT's deprecated re-exports fail the lint too", () => {
    const r = lint("import { IMAGENET_DEFAULT_MEAN } from '@softbias/models-convit';\nexport const m = IMAGENET_DEFAULT_MEAN;\n");
    expect(r.out).toMatch(/noRestrictedImports/);
  });
});
