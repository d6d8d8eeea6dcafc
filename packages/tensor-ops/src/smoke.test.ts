import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend, currentBackend, loadFixture } from '@softbias/test-utils';
import { Linear, gradientsRegistered } from '@softbias/tensor-ops';

describeBackend('smoke', () => {
  it('runs on the selected backend', async () => {
    expect(tf.getBackend()).toBe(currentBackend);
    expect(gradientsRegistered()).toBe(true);
    const l = new Linear(3, 2);
    const y = l.forward(tf.ones([2, 4, 3]));
    expect(y.shape).toEqual([2, 4, 2]);
    const g = tf.grad((x: tf.Tensor) => tf.sum(l.forward(x)))(tf.ones([2, 3]));
    expect(g.shape).toEqual([2, 3]);
    const f = loadFixture('convit_tiny');
    expect(f.weights.get('blocks.0.attn.qk.weight')!.shape).toEqual([384, 192]);
  });
});
