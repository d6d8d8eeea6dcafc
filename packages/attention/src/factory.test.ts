import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend, expectNoLeak } from '@softbias/test-utils';
import { Rng } from '@softbias/tensor-ops';
import {
  createMixer,
  DwConvMixer,
  FeedForwardPatchesMixer,
  Mhsa,
  WindowAttention,
  type AttentionMixerSpec,
  type MixerContext,
} from './index.js';

const ctx: MixerContext = { dim: 8, numHeads: 2, grid: [4, 4] };

describeBackend('createMixer', () => {
  const specs: [AttentionMixerSpec, Function, string[]][] = [
    [{ kind: 'mhsa' }, Mhsa, ['qkv.weight', 'proj.weight', 'proj.bias']],
    [{ kind: 'window', size: 2 }, WindowAttention, ['qkv.weight', 'proj.weight', 'proj.bias']],
    [{ kind: 'dwconv', dynamic: false }, DwConvMixer, ['conv.weight', 'conv.bias', 'proj.weight', 'proj.bias']],
    [
      { kind: 'dwconv', dynamic: true },
      DwConvMixer,
      ['conv.bias', 'conv.fc1.weight', 'conv.fc1.bias', 'conv.fc2.weight', 'conv.fc2.bias', 'proj.weight', 'proj.bias'],
    ],
    [{ kind: 'ff-patches' }, FeedForwardPatchesMixer, ['mlp.fc1.weight', 'mlp.fc1.bias', 'mlp.fc2.weight', 'mlp.fc2.bias']],
  ];
  for (const [spec, cls, names] of specs) {
    it(`builds ${JSON.stringify(spec)}`, async () => {
      const m = createMixer(spec, { ...ctx, rng: new Rng(7) });
      expect(m).toBeInstanceOf(cls);
      expect(m.kind).toBe(spec.kind);
      expect(m.namedParameters().map(([n]) => n)).toEqual(names);
      // Same seed, same weights.
      const again = createMixer(spec, { ...ctx, rng: new Rng(7) });
      const a = m.namedParameters()[0]![1].value;
      const b = again.namedParameters()[0]![1].value;
      expect(Array.from(await a.data())).toEqual(Array.from(await b.data()));
      const tokens = tf.randomNormal([2, 17, 8]);
      await expectNoLeak(() => {
        const y = m.forward({ tokens, grid: ctx.grid, numPrefixTokens: 1 });
        expect(y.shape).toEqual([2, 17, 8]);
        y.dispose();
      });
      tokens.dispose();
      m.dispose();
      again.dispose();
    });
  }

  it('passes options through', () => {
    const m = createMixer({ kind: 'mhsa' }, { ...ctx, qkvBias: true }) as Mhsa;
    expect(m.namedParameters().map(([n]) => n)).toContain('qkv.bias');
    const ff = createMixer({ kind: 'ff-patches' }, { ...ctx, mlpRatio: 2 }) as FeedForwardPatchesMixer;
    expect(ff.numPatches).toBe(16);
    expect(ff.hiddenFeatures).toBe(32);
    const dw = createMixer({ kind: 'dwconv', dynamic: false, kernelSize: 3, proj: false }, ctx) as DwConvMixer;
    expect(dw.namedParameters().map(([n, p]) => [n, p.torchShape])).toEqual([
      ['conv.weight', [8, 1, 3, 3]],
      ['conv.bias', [8]],
    ]);
    [m, ff, dw].forEach((x) => {
      x.dispose();
    });
  });

  it('rejects unknown kinds and incomplete specs', () => {
    expect(() => createMixer({ kind: 'gpsa' } as any, ctx)).toThrow(/unknown mixer kind 'gpsa'.*@softbias\/gpsa/);
    expect(() => createMixer({ kind: 'nope' } as any, ctx)).toThrow(/'mhsa', 'window', 'dwconv', 'ff-patches'/);
    expect(() => createMixer({ kind: 'window' } as any, ctx)).toThrow(/size must be a positive integer/);
  });
});
