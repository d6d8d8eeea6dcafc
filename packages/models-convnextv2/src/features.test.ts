/**
 * featuresOnly (timm's features_only): stage maps at strides 4–32 with their feature_info, equal to timm's stage
 * outputs (fixture); and weights stored as float16 / bfloat16: half the file, logits within a stated bound.
 */
import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend, expectClose, fixtureTensor, loadFixture } from '@softbias/test-utils';
import { FeatureModel, models, readWeights } from '@softbias/tensor-ops/models';
import { type ConvNeXtV2, createModel } from './index.js';

const f = loadFixture('convnextv2_micro');
const arch = { depths: f.config.depths, dims: f.config.dims, numClasses: f.config.num_classes };

describeBackend('convnextv2 featuresOnly and half-precision weights', () => {
  it('featuresOnly: the four stages at strides 4, 8, 16, 32 (timm feature_info), timm’s stage outputs, no classifier', async () => {
    const start = tf.memory().numTensors;
    const fm = createModel('convnextv2_custom', { ...arch, featuresOnly: true });
    expect(fm).toBeInstanceOf(FeatureModel);
    expect(fm.model.numClasses).toBe(0);
    expect(fm.model.namedParameters().some(([n]) => n.startsWith('head.fc'))).toBe(false);
    expect(fm.outIndices).toEqual([0, 1, 2, 3]);
    expect(fm.channels()).toEqual([16, 32, 64, 128]);
    expect(fm.reductions()).toEqual([4, 8, 16, 32]);
    expect(fm.featureInfo.map((i) => i.module)).toEqual(['stages.0', 'stages.1', 'stages.2', 'stages.3']);
    // A classifier checkpoint loads (its head is ignored).
    await fm.loadWeights(f.weights);
    const x = fixtureTensor(f.get('input_nhwc')); // [2, 32, 32, 3]
    const maps = fm.forward(x);
    expect(maps.map((t) => t.shape)).toEqual([
      [2, 8, 8, 16],
      [2, 4, 4, 32],
      [2, 2, 2, 64],
      [2, 1, 1, 128],
    ]);
    for (const i of [0, 1, 2, 3]) {
      const key = `stage${i}_out_nhwc`;
      await expectClose(maps[i]!, f.get(key).data, f.atol(key), `convnextv2_micro/${key}-featuresOnly`);
    }
    // outIndices: explicit, negative and counts, shallowest first.
    const some = createModel('convnextv2_custom', { ...arch, featuresOnly: true, outIndices: [-1, 1] });
    expect(some.outIndices).toEqual([1, 3]);
    expect(some.featureInfo.map((i) => [i.numChs, i.reduction])).toEqual([
      [32, 8],
      [128, 32],
    ]);
    await some.loadWeights(f.weights);
    const two = some.forward(x);
    await expectClose(two[0]!, await maps[1]!.data(), 0, 'featuresOnly outIndices [1]');
    await expectClose(two[1]!, await maps[3]!.data(), 0, 'featuresOnly outIndices [3]');
    const last2 = models.create('convnextv2_atto', { ...arch, featuresOnly: true, outIndices: 2 }); // the registry too
    expect(last2).toBeInstanceOf(FeatureModel);
    expect(last2.outIndices).toEqual([2, 3]);
    last2.dispose();
    expect(() => createModel('convnextv2_custom', { ...arch, featuresOnly: true, outIndices: [4] })).toThrow(/out of range/);
    expect(() => createModel('convnextv2_custom', { ...arch, outIndices: [1] } as never)).toThrow(/needs featuresOnly/);
    tf.dispose([x, ...maps, ...two]);
    fm.dispose();
    some.dispose();
    expect(fm.isDisposed).toBe(true);
    expect(tf.memory().numTensors).toBe(start); // the refused builds allocated nothing, the rest is freed
  });

  it("saveWeights({ dtype: 'float16' | 'bfloat16' }) halves the file; the reloaded model's logits stay within 1e-2 (f16) / 5e-2 (bf16) of float32's", async () => {
    const m = createModel('convnextv2_custom', arch) as ConvNeXtV2;
    await m.loadWeights(f.weights);
    const f32 = await m.saveWeights();
    const f16 = await m.saveWeights(undefined, { dtype: 'float16' });
    const bf16 = await m.saveWeights(undefined, { dtype: 'bfloat16' });
    const w16 = await readWeights(f16);
    expect(new Set(w16.names().map((n) => w16.dtype(n)))).toEqual(new Set(['F16']));
    const wb = await readWeights(bf16);
    expect(new Set(wb.names().map((n) => wb.dtype(n)))).toEqual(new Set(['BF16']));
    // Half the tensor bytes (the JSON header is the same size).
    const header = (b: Uint8Array) => 8 + Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true));
    expect(f16.length - header(f16)).toBe((f32.length - header(f32)) / 2);
    expect(bf16.length - header(bf16)).toBe((f32.length - header(f32)) / 2);
    const x = fixtureTensor(f.get('input_nhwc'));
    const ref = m.forward(x);
    const refData = await ref.data();
    const scale = Math.max(...Array.from(refData, Math.abs));
    for (const [bytes, tol, what] of [
      [f16, 1e-2, 'float16'],
      [bf16, 5e-2, 'bfloat16'],
    ] as const) {
      const back = await models.fromFile(bytes); // the registry's one loader; the CLI and web app load through it
      const y = back.forward(x);
      const d = await y.data();
      let worst = 0;
      for (let i = 0; i < d.length; i++) worst = Math.max(worst, Math.abs(d[i]! - refData[i]!));
      expect(worst, `${what}: max |Δlogit| ${worst} vs max |logit| ${scale}`).toBeLessThanOrEqual(tol * Math.max(1, scale));
      expect(worst, `${what} weights were really rounded`).toBeGreaterThan(0);
      tf.dispose(y);
      back.dispose();
    }
    await expect(m.saveWeights(undefined, { dtype: 'int8' as never })).rejects.toThrow(/'float32', 'float16' or 'bfloat16'/);
    tf.dispose([x, ref]);
    m.dispose();
  });
});
