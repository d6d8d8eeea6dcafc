import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend, expectClose, defaultAtol, expectNoLeak } from '@softbias/test-utils';
import { Rng } from '@softbias/tensor-ops';
import { FeedForwardPatchesMixer } from './index.js';
import { ffPatchesRef, randomF32, randomizeParams } from '../test/reference.js';
import { checkMixerGradients } from '../test/grad-check.js';

describeBackend('FeedForwardPatchesMixer', () => {
  it('has mlp.fc1 / mlp.fc2 over the patch axis', () => {
    const m = new FeedForwardPatchesMixer({ dim: 8, numPatches: 6, hiddenRatio: 2 });
    expect(m.kind).toBe('ff-patches');
    expect(m.namedParameters().map(([n, p]) => [n, p.torchShape])).toEqual([
      ['mlp.fc1.weight', [12, 6]],
      ['mlp.fc1.bias', [12]],
      ['mlp.fc2.weight', [6, 12]],
      ['mlp.fc2.bias', [6]],
    ]);
    m.dispose();
  });

  for (const prefix of [0, 1]) {
    it(`matches the float64 definition (${prefix} prefix)`, async () => {
      const rng = new Rng(60 + prefix);
      const [B, C] = [2, 5];
      const grid = [2, 3] as const;
      const Pn = 6;
      const N = prefix + Pn;
      const m = new FeedForwardPatchesMixer({ dim: C, numPatches: Pn, hiddenRatio: 1.5, rng });
      const p = randomizeParams(m, rng);
      const x = randomF32(B * N * C, rng);
      const tokens = tf.tensor(x, [B, N, C]);
      const want = ffPatchesRef(Float64Array.from(x), B, Pn, prefix, C, p);
      await expectNoLeak(async () => {
        const y = m.forward({ tokens, grid, numPrefixTokens: prefix });
        await expectClose(y, want, defaultAtol(want), `ff-patches p${prefix}`, [B, N, C]);
        if (prefix > 0) {
          const head = tf.slice(y, [0, 0, 0], [B, prefix, C]);
          const orig = tf.slice(tokens, [0, 0, 0], [B, prefix, C]);
          expect(Array.from(await head.data())).toEqual(Array.from(await orig.data()));
          tf.dispose([head, orig]);
        }
        y.dispose();
      });
      tokens.dispose();
      m.dispose();
    });
  }

  it('gradients match finite differences of the definition', async () => {
    const rng = new Rng(62);
    const [B, C, prefix] = [2, 3, 1];
    const grid = [2, 2] as const;
    const N = prefix + 4;
    const m = new FeedForwardPatchesMixer({ dim: C, numPatches: 4, hiddenRatio: 2, rng });
    const params = randomizeParams(m, rng);
    await checkMixerGradients({
      mixer: m,
      params,
      x: randomF32(B * N * C, rng),
      shape: [B, N, C],
      grid,
      prefix,
      ref: (x, p) => ffPatchesRef(x, B, 4, prefix, C, p),
      label: 'ff-patches',
      rng,
    });
    m.dispose();
  });

  it('needs the token count it was built for', () => {
    const m = new FeedForwardPatchesMixer({ dim: 4, numPatches: 16 });
    const t = tf.zeros([2, 10, 4]);
    expect(() => m.forward({ tokens: t, grid: [3, 3], numPrefixTokens: 1 })).toThrow(
      /built for 16 patch tokens, got a 3×3 grid \(9\); expected tokens \[B, 17, 4\]/,
    );
    const wrongC = tf.zeros([2, 17, 3]);
    expect(() => m.forward({ tokens: wrongC, grid: [4, 4], numPrefixTokens: 1 })).toThrow(/expected tokens \[B, 17, 4\]/);
    tf.dispose([t, wrongC]);
    m.dispose();
  });
});
