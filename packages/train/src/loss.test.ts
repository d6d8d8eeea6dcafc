import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend, expectClose } from '@softbias/test-utils';
import { Rng } from '@softbias/tensor-ops';
import { crossEntropy, clipGradNorm, smoothOneHot } from '@softbias/train';

/** PyTorch CrossEntropyLoss(label_smoothing=ε), mean reduction, float64: (1−ε)·nll + ε·mean_k(−log p_k). */
function ceDef(logits: number[], K: number, labels: number[], eps: number): number {
  let total = 0;
  labels.forEach((l, b) => {
    const row = logits.slice(b * K, (b + 1) * K);
    const mx = Math.max(...row);
    const lse = mx + Math.log(row.reduce((s, v) => s + Math.exp(v - mx), 0));
    const logp = row.map((v) => v - lse);
    total += (1 - eps) * -logp[l]! + (eps * logp.reduce((s, v) => s - v, 0)) / K;
  });
  return total / labels.length;
}

describeBackend('losses and clipping', () => {
  it('label-smoothing cross-entropy equals PyTorch’s definition; its gradient is softmax − target', async () => {
    const rng = new Rng(5);
    const B = 6;
    const K = 7;
    const logits = Array.from({ length: B * K }, () => 3 * rng.normal());
    const labels = Array.from({ length: B }, () => rng.int(K));
    const x = tf.tensor2d(logits, [B, K]);
    const y = tf.tensor1d(labels, 'int32');
    for (const eps of [0, 0.1, 0.3]) {
      const l = crossEntropy(x, y, { labelSmoothing: eps });
      await expectClose(l, [ceDef(logits, K, labels, eps)], 1e-5, `ce/eps${eps}`);
      l.dispose();
    }
    // Soft targets: the smoothed one-hot as targets gives the same loss.
    const soft = tf.tensor2d(smoothOneHot(labels, K, 0.1), [B, K]);
    const ls = crossEntropy(x, soft);
    await expectClose(ls, [ceDef(logits, K, labels, 0.1)], 1e-5, 'ce/soft');
    // d loss / d logits = (softmax − target) / B.
    const g = tf.grad((z: tf.Tensor) => crossEntropy(z, y, { labelSmoothing: 0.1 }))(x);
    const want: number[] = [];
    const t = smoothOneHot(labels, K, 0.1);
    for (let b = 0; b < B; b++) {
      const row = logits.slice(b * K, (b + 1) * K);
      const mx = Math.max(...row);
      const z = row.reduce((s, v) => s + Math.exp(v - mx), 0);
      row.forEach((v, k) => {
        want.push((Math.exp(v - mx) / z - t[b * K + k]!) / B);
      });
    }
    await expectClose(g, want, 1e-6, 'ce/grad');
    tf.dispose([x, y, soft, ls, g]);
    expect(() => crossEntropy(tf.zeros([2, 3, 1]), tf.zeros([2], 'int32'))).toThrow(/expected logits \[B, K\]/);
  });

  it('clip_grad_norm_: total L2 norm, scale min(1, max/(norm+1e-6)), over many gradients', async () => {
    const rng = new Rng(8);
    // 12 gradients: more than a WebGPU kernel may take as inputs (8 storage buffers), so the norm must not use one AddN.
    const data = Array.from({ length: 12 }, (_, i) => Array.from({ length: 3 + i }, () => rng.normal()));
    const norm = Math.sqrt(data.flat().reduce((s, v) => s + v * v, 0));
    const grads = new Map<string, tf.Tensor>(data.map((d, i) => [`p${i}`, i % 2 ? tf.tensor1d(d) : tf.tensor2d(d, [1, d.length])]));
    for (const maxNorm of [0.5, 100]) {
      const { grads: c, totalNorm } = clipGradNorm(grads, maxNorm);
      await expectClose(totalNorm, [norm], 1e-5, 'clip/norm');
      const coef = Math.min(1, maxNorm / (norm + 1e-6));
      for (let i = 0; i < data.length; i++) await expectClose(c.get(`p${i}`)!, data[i]!.map((v) => v * coef), 1e-6, `clip/p${i}`);
      tf.dispose([...c.values(), totalNorm]);
    }
    tf.dispose([...grads.values()]);
  });
});
