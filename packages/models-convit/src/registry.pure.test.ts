/** Registry and config checks that need no backend: generated for every registered name. */
import { describe, it, expect } from 'vitest';
import {
  listModels,
  convitModelInfo,
  resolveConfig,
  parameterShapes,
  dropPathRates,
  IMAGENET_DEFAULT_MEAN,
  IMAGENET_DEFAULT_STD,
} from '@softbias/models-convit';

/** Parameter count of a ConViT written out from the architecture (timm convit.py), independent of the code. */
function expectedCount(C: number, H: number, lu: number, depth: number, p: number, N: number, classes: number): number {
  const hidden = 4 * C;
  const patch = C * 3 * p * p + C;
  const gpsa = 2 * C * C + C * C + (C * C + C) + (3 * H + H) + H;
  const mhsa = 3 * C * C + (C * C + C);
  const mlp = C * hidden + hidden + hidden * C + C;
  const block = (attn: number) => 4 * C + attn + mlp;
  return patch + C + N * C + lu * block(gpsa) + (depth - lu) * block(mhsa) + 2 * C + classes * C + classes;
}

const EXPECTED: Record<string, { width: number; heads: number; lu: number }> = {
  convit_tiny: { width: 192, heads: 4, lu: 10 },
  convit_small: { width: 432, heads: 9, lu: 10 },
  convit_base: { width: 768, heads: 16, lu: 10 },
  convit_tiny_plus: { width: 256, heads: 4, lu: 10 },
  convit_small_plus: { width: 576, heads: 9, lu: 10 },
  convit_base_plus: { width: 1024, heads: 16, lu: 10 },
  convit_tiny_deit: { width: 192, heads: 4, lu: 0 },
  convit_small_deit: { width: 432, heads: 9, lu: 0 },
  convit_base_deit: { width: 768, heads: 16, lu: 0 },
};

describe('models-convit registry', () => {
  it('lists the nine ImageNet models (ConViT, "+" and DeiT twins) and the two Fashion-MNIST ones, with filters', () => {
    expect(listModels().sort()).toEqual([...Object.keys(EXPECTED), 'convit_fmnist', 'convit_fmnist_deit'].sort());
    expect(listModels('*_deit').sort()).toEqual(['convit_base_deit', 'convit_fmnist_deit', 'convit_small_deit', 'convit_tiny_deit']);
    expect(listModels('plus').length).toBe(3);
    expect(listModels('fmnist')).toEqual(['convit_fmnist', 'convit_fmnist_deit']);
  });

  it("convit_fmnist and its DeiT twin: softbias demo's trunk, Fashion-MNIST's data config, no weights", () => {
    for (const [name, lu] of [['convit_fmnist', 4], ['convit_fmnist_deit', 0]] as const) {
      const info = convitModelInfo(name);
      const cfg = resolveConfig(info.args);
      expect([cfg.imgSize, cfg.patchSize, cfg.inChans, cfg.embedDim, cfg.numHeads, cfg.depth, cfg.mlpRatio, cfg.numClasses]).toEqual([[28, 28], 4, 1, 64, 4, 6, 2, 10]);
      expect(cfg.mixers.map((m) => m.kind)).toEqual(Array.from({ length: 6 }, (_, i) => (i < lu ? 'gpsa' : 'mhsa')));
      expect(info.pretrained).toMatchObject({ inputSize: [1, 28, 28], cropPct: 1, numClasses: 10, weights: null, license: null });
      expect(info.pretrained.mean[0]).toBeCloseTo(0.2860406, 7);
      expect(info.pretrained.std[0]).toBeCloseTo(0.3530242, 7);
      expect(info.tags).toEqual([]);
    }
  });

  for (const name of Object.keys(EXPECTED)) {
    it(`${name}: architecture, data config and parameter count from shapes`, () => {
      const e = EXPECTED[name]!;
      const info = convitModelInfo(name);
      const cfg = resolveConfig(info.args);
      expect([cfg.embedDim, cfg.numHeads, cfg.localUpToLayer, cfg.depth, cfg.patchSize]).toEqual([e.width, e.heads, e.lu, 12, 16]);
      expect(cfg.imgSize).toEqual([224, 224]);
      expect(cfg.mixers.map((m) => m.kind)).toEqual(Array.from({ length: 12 }, (_, i) => (i < e.lu ? 'gpsa' : 'mhsa')));
      if (name.endsWith('_plus')) expect(cfg.embedDim / cfg.numHeads).toBe(64);
      else expect(cfg.embedDim / cfg.numHeads).toBe(48);
      const p = info.pretrained;
      expect(p.inputSize).toEqual([3, 224, 224]);
      expect(p.mean).toEqual(IMAGENET_DEFAULT_MEAN);
      expect(p.std).toEqual(IMAGENET_DEFAULT_STD);
      expect(p.cropPct).toBe(0.875);
      const released = ['convit_tiny', 'convit_small', 'convit_base'].includes(name);
      expect(p.license).toBe(released ? 'apache-2.0' : null);
      expect(p.weights).toBe(released ? `timm/${name}.fb_in1k` : null);
      const shapes = parameterShapes(cfg);
      const total = [...shapes.values()].reduce((n, s) => n + s.reduce((a, b) => a * b, 1), 0);
      expect(total).toBe(expectedCount(e.width, e.heads, e.lu, 12, 16, 196, 1000));
    });
  }

  it('parameter counts agree with timm and the fixture (5,710,512 for convit_tiny)', () => {
    const count = (n: string) =>
      [...parameterShapes(resolveConfig(convitModelInfo(n).args)).values()].reduce((s, sh) => s + sh.reduce((a, b) => a * b, 1), 0);
    expect(count('convit_tiny')).toBe(5_710_512);
    expect((count('convit_small') / 1e6).toFixed(2)).toBe('27.78');
    expect((count('convit_base') / 1e6).toFixed(2)).toBe('86.54');
  });

  it('config validation names the problem', () => {
    const base = convitModelInfo('convit_tiny').args;
    expect(() => resolveConfig(base, { embed_dim: 48 } as never)).toThrow(/unknown option 'embed_dim' \(did you mean 'embedDim'\?\)/);
    expect(() => resolveConfig(base, { embedDim: 190 })).toThrow(/embedDim 190 \(the TOTAL width\) must be a multiple of numHeads 4/);
    expect(() => resolveConfig(base, { imgSize: [224, 200] })).toThrow(/multiple of patchSize 16/);
    expect(() => resolveConfig(base, { localUpToLayer: 13 })).toThrow(/localUpToLayer must be an integer in \[0, depth = 12\]/);
    expect(() => resolveConfig(base, { dropPathRate: 1 })).toThrow(/dropPathRate must be in \[0, 1\)/);
    expect(() => resolveConfig(base, { mixers: () => ({ kind: 'conv' }) as never })).toThrow(/unknown kind 'conv'/);
    expect(() => resolveConfig(base, { mixers: [{ kind: 'mhsa' }] })).toThrow(/mixers has 1 entries but depth is 12/);
    expect(() => convitModelInfo('deit_tiny_patch16_224')).toThrow(/timm VisionTransformer \(DeiT\).*convit_tiny_deit/);
    expect(() => convitModelInfo('convit_huge')).toThrow(/unknown ConViT model 'convit_huge'; registered: convit_tiny/);
  });

  it('embedDim is the total width; non-square imgSize; mixers by function with defaults', () => {
    const cfg = resolveConfig(convitModelInfo('convit_tiny').args, {
      imgSize: [32, 48],
      patchSize: 8,
      mixers: (i) => (i === 1 ? { kind: 'gpsa', gate: 'frozen' } : i === 11 ? { kind: 'window', size: 2 } : undefined),
    });
    expect(cfg.embedDim).toBe(192);
    expect(cfg.imgSize).toEqual([32, 48]);
    expect(cfg.mixers[0]).toEqual({ kind: 'gpsa', gate: 'learned', localInit: true, trainable: true });
    expect(cfg.mixers[1]).toEqual({ kind: 'gpsa', gate: 'frozen', localInit: true, trainable: true });
    expect(cfg.mixers[10]).toEqual({ kind: 'mhsa' });
    expect(cfg.mixers[11]).toEqual({ kind: 'window', size: 2 });
    expect(JSON.parse(JSON.stringify(cfg))).toEqual(cfg); // serialisable for __metadata__
  });

  it("drop-path rates rise linearly from 0 to the rate over the blocks (timm's rule)", () => {
    expect(dropPathRates(0.1, 5)).toEqual([0, 0.025, 0.05, 0.075, 0.1].map(Math.fround));
    expect(dropPathRates(0.3, 1)).toEqual([0]);
  });
});
