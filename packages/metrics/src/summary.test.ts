import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend } from '@softbias/test-utils';
import { summarizeOverDataset, summarizeLayers, LayerMeter } from '@softbias/metrics';

describeBackend('per-layer summaries', () => {
  it('weights each batch by its size; disposes the batches', async () => {
    // measure(x) returns, per layer and head, the batch mean of a per-sample value v(sample) = sample id · (l + 1) + h.
    const ids = [[0, 1, 2], [3, 4], [5]];
    const batches = ids.map((b) => ({ x: tf.tensor2d(b, [b.length, 1]), y: tf.tensor1d(b, 'int32') }));
    const before = tf.memory().numTensors;
    const summary = await summarizeOverDataset(batches, async (x) => {
      const v = Array.from(await x.data());
      return [0, 1].map((l) => [0, 1, 2].map((h) => v.reduce((s, id) => s + id * (l + 1) + h, 0) / v.length));
    });
    expect(summary.samples).toBe(6);
    // Definition: the mean over all 6 samples (ids 0..5, mean 2.5).
    summary.layers.forEach((layer, l) => {
      if (!layer) throw new Error('layer summary missing');
      expect(layer.heads.map((v) => +v.toFixed(10))).toEqual([0, 1, 2].map((h) => 2.5 * (l + 1) + h));
      expect(layer.mean).toBeCloseTo(2.5 * (l + 1) + 1, 10);
      expect(layer.min).toBeCloseTo(2.5 * (l + 1), 10);
      expect(layer.max).toBeCloseTo(2.5 * (l + 1) + 2, 10);
    });
    expect(tf.memory().numTensors).toBe(before - 6);
    expect(summarizeLayers([[0.2, 0.6], null, Float32Array.from([1])]).layers.map((l) => l?.mean ?? null)).toEqual([0.4, null, 1]);
    // Layers without values (null) stay null; the others are weighted means.
    const m = new LayerMeter();
    m.add([[1, 2], null], 1);
    m.add([Float32Array.from([4, 8]), null], 3);
    expect(m.result()).toEqual({ samples: 4, layers: [{ heads: [13 / 4, 26 / 4], mean: 39 / 8, min: 13 / 4, max: 26 / 4 }, null] });
    expect(() => m.add([[1, 2, 3], null])).toThrow(/got values shaped \[3, null\], earlier batches were \[2, null\]/);
    expect(() => m.add([[1, 2], [5]])).toThrow(/got values shaped \[2, 1\], earlier batches were \[2, null\]/);
  });
});
