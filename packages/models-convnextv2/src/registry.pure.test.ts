/**
 * The registry without tensors: parameter counts from shapes for every size (beside the paper's), configs,
 * key naming and the official → timm key map of the fixtures.
 */
import { describe, it, expect } from 'vitest';
import { fixtureManifest } from '@softbias/test-utils';
import {
  listModels,
  MODELS,
  countParameters,
  parameterShapes,
  resolveConfig,
  detectKeyNaming,
  officialToTimmKey,
} from './index.js';

/** The paper's numbers (ConvNeXt V2, Woo et al. 2023), in millions, printed with its rounding. */
function asPaperPrints(count: number, paper: number): number {
  return Number.isInteger(paper) ? Math.round(count / 1e6) : Math.round(count / 1e5) / 10;
}

describe('convnextv2 registry', () => {
  it('lists the eight official sizes, smallest first', () => {
    expect(listModels()).toEqual([
      'convnextv2_atto',
      'convnextv2_femto',
      'convnextv2_pico',
      'convnextv2_nano',
      'convnextv2_tiny',
      'convnextv2_base',
      'convnextv2_large',
      'convnextv2_huge',
    ]);
  });

  for (const m of MODELS) {
    it(`${m.name}: parameter count from shapes matches the paper's ${m.paperParamsM}M`, () => {
      const n = countParameters(m.name);
      expect(asPaperPrints(n, m.paperParamsM)).toBe(m.paperParamsM);
      const shapes = parameterShapes(resolveConfig(m.name));
      // 4 stem + 4 per downsample + 10 per block + 4 head.
      const blocks = m.depths.reduce((a, b) => a + b, 0);
      expect(shapes.length).toBe(4 + 3 * 4 + 10 * blocks + 4);
      expect(new Set(shapes.map(([k]) => k)).size).toBe(shapes.length);
      const mlp = shapes.find(([k]) => k === 'stages.0.blocks.0.mlp.fc1.weight')![1];
      expect(mlp).toEqual(m.convMlp ? [4 * m.dims[0], m.dims[0], 1, 1] : [4 * m.dims[0], m.dims[0]]);
      expect(m.pretrained.mean).toEqual([0.485, 0.456, 0.406]);
      expect(m.pretrained.license).toBe('CC-BY-NC-4.0');
    });
  }

  it('exact counts: atto and the micro fixture equal the reference models; overrides change the count', () => {
    const man = fixtureManifest().cases;
    expect(countParameters('convnextv2_atto')).toBe(man.convnextv2_atto.weights.num_parameters);
    const c = man.convnextv2_micro.config;
    expect(countParameters('convnextv2_custom', { depths: c.depths, dims: c.dims, numClasses: c.num_classes })).toBe(
      man.convnextv2_micro.weights.num_parameters,
    );
    // Classifier: 320·k + k parameters; no classifier at numClasses 0; 4 input channels add 40·16 stem weights.
    expect(countParameters('convnextv2_atto') - countParameters('convnextv2_atto', { numClasses: 10 })).toBe(990 * 321);
    expect(countParameters('convnextv2_atto') - countParameters('convnextv2_atto', { numClasses: 0 })).toBe(1000 * 321);
    expect(countParameters('convnextv2_atto', { inChans: 4 }) - countParameters('convnextv2_atto')).toBe(40 * 16);
  });

  it('resolveConfig: registered defaults, overrides, and errors naming what is wrong', () => {
    const t = resolveConfig('convnextv2_tiny', { numClasses: 10, dropPathRate: 0.1 });
    expect(t).toMatchObject({ depths: [3, 3, 9, 3], dims: [96, 192, 384, 768], numClasses: 10, convMlp: false, inChans: 3 });
    expect(resolveConfig('convnextv2_atto').convMlp).toBe(true);
    expect(() => resolveConfig('convnextv2_small')).toThrow(/unknown ConvNeXt V2 model 'convnextv2_small'.*convnextv2_atto/);
    expect(() => resolveConfig('convnextv2_atto', { depths: [1, 2, 3] })).toThrow(/depths must be 4 positive integers/);
    expect(() => resolveConfig('convnextv2_atto', { dropPathRate: 1 })).toThrow(/dropPathRate/);
    expect(() => resolveConfig('convnextv2_atto', { numClasses: -1 })).toThrow(/numClasses/);
  });

  it('official → timm key map: every key of both fixtures maps back; naming is detected', () => {
    const man = fixtureManifest().cases;
    for (const c of ['convnextv2_micro', 'convnextv2_atto']) {
      const map = man[c].official_key_map as Record<string, { official_key: string }>;
      const official = Object.values(map).map((v) => v.official_key);
      expect(detectKeyNaming(official)).toBe('official');
      expect(detectKeyNaming(Object.keys(map))).toBe('timm');
      for (const [timm, v] of Object.entries(map)) expect(officialToTimmKey(v.official_key), v.official_key).toBe(timm);
    }
  });
});
