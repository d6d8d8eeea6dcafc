import { it, expect } from 'vitest';
import { describeBackend } from '@softbias/test-utils';
import { Linear, LayerNorm, Module, PatchEmbed, Rng } from '@softbias/tensor-ops';
import { countParameters, formatCount } from '@softbias/metrics';

class Tiny extends Module {
  constructor() {
    super();
    const rng = new Rng(0);
    this.registerModule('patch_embed', new PatchEmbed({ imgSize: 8, patchSize: 4, inChans: 1, embedDim: 6, rng }));
    this.registerModule('norm', new LayerNorm(6));
    this.registerModule('head', new Linear(6, 10, { rng }));
  }
}

describeBackend('parameter counts', () => {
  it('totals, trainable and groups from the shapes', () => {
    const m = new Tiny();
    m.namedParameters().find(([n]) => n === 'norm.bias')![1].trainable = false;
    const c = countParameters(m);
    const pe = 4 * 4 * 1 * 6 + 6;
    expect(c.total).toBe(pe + 12 + 6 * 10 + 10);
    expect(c.trainable).toBe(c.total - 6);
    expect(c.groups).toEqual([
      { name: 'patch_embed', count: pe, trainable: pe },
      { name: 'norm', count: 12, trainable: 6 },
      { name: 'head', count: 70, trainable: 70 },
    ]);
    expect(countParameters(m, 3).groups.map((g) => g.name)).toEqual(['patch_embed.proj.weight', 'patch_embed.proj.bias', 'norm.weight', 'norm.bias', 'head.weight', 'head.bias']);
    expect(formatCount(5_717_416)).toBe('5.72M');
    expect(formatCount(1_254_000_000)).toBe('1.25G');
    m.dispose();
  });
});
