import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend } from '@softbias/test-utils';
import { Rng } from '@softbias/tensor-ops';
import { accuracy, topKCorrect, AccuracyMeter, ConfusionMatrix, predictions } from '@softbias/metrics';

/** Definition: sort classes by (logit desc, index asc); correct when the label is in the first k. */
function topKDef(logits: number[], K: number, labels: number[], k: number): number {
  let correct = 0;
  labels.forEach((l, r) => {
    const row = logits.slice(r * K, (r + 1) * K);
    const order = row.map((v, c) => [v, c] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
    if (order.slice(0, k).some(([, c]) => c === l)) correct++;
  });
  return correct;
}

describeBackend('accuracy and confusion matrix', () => {
  it('top-1 / top-5 equal the definition, tensors and host arrays, ties by class index', async () => {
    const rng = new Rng(9);
    const N = 57;
    const K = 10;
    // Integer logits so that ties happen.
    const logits = Array.from({ length: N * K }, () => rng.int(6));
    const labels = Array.from({ length: N }, () => rng.int(K));
    const t = tf.tensor2d(logits, [N, K]);
    const y = tf.tensor1d(labels, 'int32');
    const { counts, total } = await topKCorrect(t, y, [1, 3, 5, 10]);
    expect(total).toBe(N);
    expect(counts).toEqual([1, 3, 5, 10].map((k) => topKDef(logits, K, labels, k)));
    expect(counts[3]).toBe(N);
    const [a1] = await accuracy(Float32Array.from(logits), labels, [1], K);
    expect(a1).toBeCloseTo(topKDef(logits, K, labels, 1) / N, 12);
    const meter = new AccuracyMeter();
    await meter.update(tf.slice(t, [0, 0], [20, K]), labels.slice(0, 20));
    await meter.update(tf.slice(t, [20, 0], [37, K]), tf.slice(y, 20, 37));
    const r = meter.result();
    expect(r.count).toBe(N);
    expect(r.top1).toBeCloseTo(topKDef(logits, K, labels, 1) / N, 12);
    expect(r.top5).toBeCloseTo(topKDef(logits, K, labels, 5) / N, 12);
    expect(Array.from(await predictions(t))).toEqual(labels.map((_, i) => {
      const row = logits.slice(i * K, (i + 1) * K);
      return row.indexOf(Math.max(...row));
    }));
    tf.dispose([t, y]);
    await expect(topKCorrect(tf.zeros([2, 3, 1]), [0, 1])).rejects.toThrow(/expected logits \[N, numClasses\]/);
    await expect(topKCorrect([0, 1, 2, 3], [0], [1], 2)).rejects.toThrow(/2 rows of logits but 1 labels/);
    await expect(topKCorrect([0, 1], [4], [1], 2)).rejects.toThrow(/label 4 is out of range for 2 classes/);
  });

  it('confusion matrix counts (true, predicted) pairs', async () => {
    const cm = new ConfusionMatrix(3);
    await cm.update([0, 1, 2, 2, 1, 0, 0], [0, 1, 1, 2, 1, 2, 0]);
    const logits = tf.tensor2d([[0, 0, 5], [9, 1, 1]]);
    await cm.update(logits, tf.tensor1d([2, 1], 'int32'));
    logits.dispose();
    expect(cm.toRows()).toEqual([
      [2, 0, 0],
      [1, 2, 1],
      [1, 0, 2],
    ]);
    expect(cm.total).toBe(9);
    expect(cm.accuracy()).toBeCloseTo(6 / 9, 12);
    expect(cm.recall()).toEqual([1, 2 / 4, 2 / 3]);
    expect(cm.precision()).toEqual([2 / 4, 1, 2 / 3]);
    expect(cm.format(['a', 'b', 'c']).split('\n')).toHaveLength(4);
    await expect(cm.update([3], [0])).rejects.toThrow(/class 3 out of range for 3 classes/);
  });
});
