/** A model rebuilt from a weights file holding NaN is refused (loadStateDict's non-finite check), leaking nothing. */
import * as tf from '@tensorflow/tfjs-core';
import { describe, it, expect } from 'vitest';
import { parseSafetensors, serializeSafetensors } from '@softbias/tensor-ops';
import { createModel } from '@softbias/models-convit';
import { loadAnyModel } from './models.js';

function poisoned(bytes: Uint8Array, name: string, v: number): Uint8Array {
  const f = parseSafetensors(bytes);
  const tensors = f.names().map((n) => {
    const t = f.getFloat32(n);
    if (n === name) t.data[3] = v;
    return [n, t] as [string, { data: Float32Array; shape: number[] }];
  });
  return serializeSafetensors(tensors, { metadata: { ...f.metadata } });
}

describe('non-finite weights files', () => {
  it("a model's loadModel refuses a weights file holding NaN", async () => {
    const m = createModel('convit_tiny', { embedDim: 16, depth: 1, numHeads: 2, localUpToLayer: 1, imgSize: 16, patchSize: 8, numClasses: 3 });
    const bytes = await m.saveWeights();
    m.dispose();
    const before = tf.memory().numTensors;
    await expect(loadAnyModel(poisoned(bytes, 'head.weight', NaN))).rejects.toThrow(/head\.weight.*holds NaN/);
    expect(tf.memory().numTensors).toBe(before);
    const ok = await loadAnyModel(bytes);
    ok.model.dispose();
  });
});
