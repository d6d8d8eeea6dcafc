/**
 * setGradCheckpointing: a training step's loss and every gradient equal the step without it (bit for bit, with stochastic depth on), at a lower peak of tensor memory.
 */
import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend, gradientStep } from '@softbias/test-utils';
import { createModel } from '@softbias/models-convnextv2';

async function step(checkpointing: boolean) {
  const m = createModel('convnextv2_custom', { depths: [2, 2, 2, 2], dims: [8, 16, 24, 32], numClasses: 5, dropPathRate: 0.3, seed: 3 });
  m.train().setGradCheckpointing(checkpointing);
  const x = tf.randomNormal([2, 64, 64, 3], 0, 1, 'float32', 2);
  const r = await gradientStep(m, x);
  x.dispose();
  m.dispose();
  return r;
}

describeBackend('ConvNeXt V2 setGradCheckpointing', () => {
  it('same loss and gradients as without it, at a lower peak memory', async () => {
    const plain = await step(false);
    const ck = await step(true);
    expect(ck.loss).toBe(plain.loss);
    for (let i = 0; i < plain.grads.length; i++) expect(ck.grads[i], `gradient ${i}`).toEqual(plain.grads[i]);
    expect(ck.peak, `peak bytes ${ck.peak} vs ${plain.peak}`).toBeLessThan(plain.peak);
  });
});
