/**
 * featuresOnly for ConViT: block outputs as [B, H / patch, W / patch, C] maps (class token left out) equal to
 * timm's block outputs (fixture), with feature_info; and float16 weights: half the file, the same model back.
 */
import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend, expectClose, fixtureTensor, loadFixture } from '@softbias/test-utils';
import { FeatureModel, models, readWeights } from '@softbias/tensor-ops/models';
import { createModel, loadModel } from '@softbias/models-convit';
import { overridesFor } from '../test/helpers.js';

const f = loadFixture('convit_micro'); // 32 px, patch 4, width 48, depth 4, class token joins before block 3

describeBackend('models-convit featuresOnly and half-precision weights', () => {
  it('featuresOnly: the last 3 blocks by default as NHWC maps [B, 8, 8, 48] (reduction 4), timm’s block outputs', async () => {
    const start = tf.memory().numTensors;
    const fm = createModel('convit_tiny', { ...overridesFor(f), featuresOnly: true });
    expect(fm).toBeInstanceOf(FeatureModel);
    expect(fm.model.numClasses).toBe(0);
    expect(fm.outIndices).toEqual([1, 2, 3]);
    expect(fm.featureInfo).toEqual([1, 2, 3].map((i) => ({ index: i, module: `blocks.${i}`, numChs: 48, reduction: 4 })));
    const r = await fm.loadWeights(f.weights); // a classifier's checkpoint: the head is ignored
    expect(r.loaded.some((k) => k.startsWith('head.'))).toBe(false);
    const x = fixtureTensor(f.get('input_nhwc'));
    const maps = fm.forward(x);
    expect(maps.map((t) => t.shape)).toEqual([1, 2, 3].map(() => [2, 8, 8, 48]));
    for (const [j, i] of [1, 2, 3].entries()) {
      const ref = f.get(`block${i}_out`);
      const tokens = ref.shape[1]!; // 64 patches, or 65 with the class token in front
      const patches = new Float32Array(2 * 64 * 48);
      for (let b = 0; b < 2; b++) patches.set(ref.data.subarray((b * tokens + tokens - 64) * 48, (b + 1) * tokens * 48), b * 64 * 48);
      await expectClose(maps[j]!, patches, f.atol(`block${i}_out`), `convit_micro/block${i}_out-featuresOnly`);
    }
    const first = models.create('convit_tiny', { ...overridesFor(f), featuresOnly: true, outIndices: [0] }); // the registry too
    expect(first).toBeInstanceOf(FeatureModel);
    expect(first.channels()).toEqual([48]);
    expect(first.reductions()).toEqual([4]);
    await first.loadWeights(f.weights);
    const [m0] = first.forward(x);
    expect(m0!.shape).toEqual([2, 8, 8, 48]);
    expect(() => createModel('convit_tiny', { ...overridesFor(f), featuresOnly: true, outIndices: [4] })).toThrow(/out of range/);
    tf.dispose([x, ...maps, m0!]);
    fm.dispose();
    first.dispose();
    expect(tf.memory().numTensors).toBe(start);
  });

  it("saveWeights(path, { dtype: 'float16' }) writes half the tensor bytes; the reloaded ConViT's logits are within 1e-2 · max|logit|", async () => {
    const { mkdtempSync, readFileSync, statSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = mkdtempSync(join(tmpdir(), 'convit-f16-'));
    const m = createModel('convit_tiny', overridesFor(f));
    await m.loadWeights(f.weights);
    await m.saveWeights(join(dir, 'f32.safetensors'));
    await m.saveWeights(join(dir, 'f16.safetensors'), { dtype: 'float16' });
    await m.saveWeights(join(dir, 'bf16.safetensors'), { dtype: 'bfloat16' });
    // The tensor bytes (the file less its 8-byte length and JSON header) halve.
    const tensorBytes = (n: string) => {
      const bytes = readFileSync(join(dir, n));
      return statSync(join(dir, n)).size - 8 - Number(bytes.readBigUInt64LE(0));
    };
    const params = [...f.weights.values()].reduce((s, t) => s + t.data.length, 0);
    expect(tensorBytes('f32.safetensors')).toBe(params * 4);
    expect(tensorBytes('f16.safetensors')).toBe(params * 2);
    expect(tensorBytes('bf16.safetensors')).toBe(params * 2);
    expect((await readWeights(join(dir, 'f16.safetensors'))).dtype('pos_embed')).toBe('F16');
    const x = fixtureTensor(f.get('input_nhwc'));
    const logits = m.forward(x);
    const ref = await logits.data();
    const scale = Math.max(...Array.from(ref, Math.abs));
    for (const [file, tol] of [
      ['f16.safetensors', 1e-2],
      ['bf16.safetensors', 5e-2],
    ] as const) {
      const back = await loadModel(join(dir, file));
      const y = back.forward(x);
      const d = await y.data();
      let worst = 0;
      for (let i = 0; i < d.length; i++) worst = Math.max(worst, Math.abs(d[i]! - ref[i]!));
      expect(worst, `${file}: max |Δlogit| ${worst}, max |logit| ${scale}`).toBeLessThanOrEqual(tol * Math.max(1, scale));
      expect(worst).toBeGreaterThan(0);
      tf.dispose(y);
      back.dispose();
    }
    tf.dispose([x, logits]);
    m.dispose();
  });
});
