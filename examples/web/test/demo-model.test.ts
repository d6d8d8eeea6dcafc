/**
 * The web app's model loading, free of the DOM: a float16 weights file loads and classifies as its float32
 * original, and the top-5 names come from the file's own labels (or ImageNet-1k's for 1000 classes).
 */
import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend } from '@softbias/test-utils';
import { imagenetLabels } from '@softbias/tensor-ops/models';
import { createModel } from '@softbias/models-convit';
import { classify, loadDemoModel, preprocessFor } from '../src/demo-model.js';

const micro = { imgSize: 16, patchSize: 4, embedDim: 16, depth: 2, numHeads: 2, localUpToLayer: 1, seed: 5 };

function image(): { data: Uint8ClampedArray; width: number; height: number } {
  const data = new Uint8ClampedArray(20 * 24 * 4).map((_, i) => (i * 53) % 256);
  return { data, width: 24, height: 20 };
}

describeBackend('web app: half-precision files and label names', () => {
  it('a float16 file gives the float32 file’s top-5 (same classes, probabilities within 1e-2)', async () => {
    const m = createModel('convit_tiny', { ...micro, numClasses: 6 });
    const [f32, f16] = [await m.saveWeights(), await m.saveWeights(undefined, { dtype: 'float16' })];
    m.dispose();
    const results = [];
    for (const bytes of [f32, f16]) {
      const dm = await loadDemoModel(bytes);
      const x = preprocessFor(dm, image());
      results.push((await classify(dm, x)).top5);
      x.dispose();
      dm.model.dispose();
    }
    const [a, b] = results;
    expect(b!.map((p) => p.index)).toEqual(a!.map((p) => p.index));
    for (const [i, p] of b!.entries()) expect(Math.abs(p.probability - a![i]!.probability)).toBeLessThan(1e-2);
    expect(a![0]!.label).toBe(`class ${a![0]!.index}`); // no names in the file
  });

  it("names: the file's __metadata__ labels; ImageNet-1k's for a 1000-class model", async () => {
    const start = tf.memory().numTensors;
    const names = ['a', 'b', 'c'];
    const m = createModel('convit_tiny', { ...micro, numClasses: 3 });
    const { writeWeights } = await import('@softbias/tensor-ops/models');
    const bytes = await writeWeights(m, { arch: 'convit_tiny', family: 'convit', config: m.config, metadata: { labels: JSON.stringify(names) } });
    m.dispose();
    const dm = await loadDemoModel(bytes);
    expect(dm.labels).toEqual(names);
    dm.model.dispose();
    const big = createModel('convit_tiny', { ...micro, numClasses: 1000 });
    const dm2 = await loadDemoModel(await big.saveWeights());
    big.dispose();
    expect(dm2.labels).toEqual([...imagenetLabels()]);
    dm2.model.dispose();
    expect(tf.memory().numTensors).toBe(start);
  });
});
