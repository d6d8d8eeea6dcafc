/**
 * Seeded timm init, parameter count and input validation. They allocate tensors, so they run on every backend
 * (a `*.pure.test.ts` touches no backend).
 */
import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend, loadFixture } from '@softbias/test-utils';
import { createModel } from '@softbias/models-convit';
import { overridesFor } from '../test/helpers.js';

const micro = overridesFor(loadFixture('convit_micro'));

describeBackend('models-convit: seeded timm init, parameter count, input validation', () => {
  it('a model built twice with the same seed is identical; another seed differs', async () => {
    const a = createModel('convit_tiny', { ...micro, seed: 42 });
    const b = createModel('convit_tiny', { ...micro, seed: 42 });
    const c = createModel('convit_tiny', { ...micro, seed: 43 });
    const sa = a.stateDict();
    const sb = b.stateDict();
    const sc = c.stateDict();
    for (const [k, t] of sa) expect(Array.from(await sb.get(k)!.data()), k).toEqual(Array.from(await t.data()));
    const qa = await sa.get('blocks.0.attn.qk.weight')!.data();
    const qc = await sc.get('blocks.0.attn.qk.weight')!.data();
    expect(Array.from(qa)).not.toEqual(Array.from(qc));
    // timm init: trunc_normal(.02) linears, zero biases, LayerNorm (1, 0), GPSA local init, gates 1.
    const qkStd = Math.sqrt(Array.from(qa).reduce((s, v) => s + v * v, 0) / qa.length);
    expect(Math.abs(qkStd - 0.02)).toBeLessThan(0.002);
    expect(Array.from(await sa.get('blocks.3.attn.proj.bias')!.data()).every((v) => v === 0)).toBe(true);
    expect(Array.from(await sa.get('norm.weight')!.data()).every((v) => v === 1)).toBe(true);
    expect(Array.from(await sa.get('blocks.2.attn.gating_param')!.data())).toEqual([1, 1, 1, 1]);
    tf.dispose([...sa.values(), ...sb.values(), ...sc.values()]);
    for (const m of [a, b, c]) m.dispose();
  });

  it('convit_tiny at full size has 5,710,512 parameters (timm)', () => {
    const m = createModel('convit_tiny');
    expect(m.numParameters()).toBe(5_710_512);
    m.dispose();
  });

  it('bad input shapes and dtypes throw naming the expected shape', async () => {
    const m = createModel('convit_tiny', micro);
    const cases: [tf.Tensor, RegExp][] = [
      [tf.zeros([32, 32, 3]), /expected input of shape \[B, 32, 32, 3\] \(NHWC float32\), got rank 3/],
      [tf.zeros([1, 32, 32, 1]), /expected input of shape \[B, 32, 32, 3\].*\(1 channels\)/],
      [tf.zeros([1, 3, 32, 32]), /looks like NCHW/],
      [tf.zeros([1, 64, 64, 3]), /expected input of shape \[B, 32, 32, 3\].*got \[1,64,64,3\].*imgSize: \[64, 64\]/],
      [tf.zeros([1, 32, 32, 3], 'int32'), /expected float32 input, got int32/],
    ];
    for (const [x, re] of cases) {
      expect(() => m.forward(x)).toThrow(re);
      x.dispose();
    }
    const feats = tf.zeros([1, 65, 40]);
    expect(() => m.forwardHead(feats)).toThrow(/expected features \[B, T, 48\]/);
    feats.dispose();
    m.dispose();
  });
});
