/**
 * setGradCheckpointing: a training step's loss and every gradient equal the step without it (bit for bit, with stochastic depth and attention dropout on), at a lower peak of tensor memory.
 */
import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend, gradientStep } from '@softbias/test-utils';
import { createModel } from '@softbias/models-convit';

async function step(checkpointing: boolean) {
  const m = createModel('convit_tiny', { imgSize: 16, patchSize: 4, embedDim: 32, depth: 3, numHeads: 2, localUpToLayer: 2, numClasses: 5, dropPathRate: 0.3, attnDropRate: 0.1, seed: 3 });
  m.train().setGradCheckpointing(checkpointing);
  const x = tf.randomNormal([3, 16, 16, 3], 0, 1, 'float32', 2);
  const r = await gradientStep(m, x);
  x.dispose();
  m.dispose();
  return r;
}

describeBackend('ConViT setGradCheckpointing', () => {
  it('same loss and gradients as without it, at a lower peak memory', async () => {
    const plain = await step(false);
    const ck = await step(true);
    expect(ck.loss).toBe(plain.loss);
    for (let i = 0; i < plain.grads.length; i++) expect(ck.grads[i], `gradient ${i}`).toEqual(plain.grads[i]);
    expect(ck.peak, `peak bytes ${ck.peak} vs ${plain.peak}`).toBeLessThan(plain.peak);
  });
});
