/**
 * Generated from the registry, on every backend: each model with its head count and mixers, reduced in size
 * (the full-size shapes are checked without a backend in registry.pure.test.ts): a quarter of the head
 * width (12 per head, 16 for the "+" models), a 32 px input with patch 16 (2×2 grid), depth 2 (one GPSA
 * block then one MHSA block; the DeiT twins two MHSA blocks). Checks the state dict's names and shapes, a
 * forward, a backward, and a save → load round trip.
 */
import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend, excludedHere, expectClose } from '@softbias/test-utils';
import { Rng } from '@softbias/tensor-ops';
import { createModel, convitModelInfo, listModels, loadModel, parameterShapes } from '@softbias/models-convit';

describeBackend('models-convit: every registered model (reduced size)', () => {
  for (const name of listModels()) {
    it.skipIf(excludedHere(`convit/registry/${name}`))(`${name}: shapes, forward, backward, save → load`, async () => {
      const { localUpToLayer: lu = 0, numHeads = 1 } = convitModelInfo(name).args;
      const embedDim = numHeads * (name.endsWith('_plus') ? 16 : 12);
      const overrides = { imgSize: 32, patchSize: 16, inChans: 3, embedDim, depth: 2, localUpToLayer: lu > 0 ? 1 : 0, numClasses: 7, seed: 1 };
      const model = createModel(name, overrides);
      expect(model.name).toBe(name);
      const sd = model.stateDict();
      const shapes = parameterShapes(model.config);
      expect([...sd.keys()]).toEqual([...shapes.keys()]);
      for (const [k, t] of sd) expect(t.shape, k).toEqual(shapes.get(k));
      tf.dispose([...sd.values()]);

      const rng = new Rng(2);
      const x = tf.tensor(Float32Array.from({ length: 2 * 32 * 32 * 3 }, () => rng.normal()), [2, 32, 32, 3]);
      const logits = model.forward(x);
      expect(logits.shape).toEqual([2, 7]);
      const values = await logits.data();
      expect(values.every(Number.isFinite)).toBe(true);

      const R = tf.tensor(Float32Array.from({ length: 14 }, () => rng.normal()), [2, 7]);
      model.train();
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(model.forward(x), R)) as tf.Scalar);
      model.eval();
      for (const [k, p] of model.trainableParameters()) {
        const g = grads[p.variable.name];
        expect(g, `gradient of ${k}`).toBeDefined();
        expect(g!.shape, k).toEqual(p.shape);
        expect((await g!.data()).every(Number.isFinite), `finite gradient of ${k}`).toBe(true);
      }

      const bytes = await model.saveWeights();
      const again = await loadModel(bytes);
      expect(again.name).toBe(name);
      expect(again.config).toEqual(model.config);
      const y1 = again.forward(x);
      await expectClose(y1, values, 1e-6, `${name}: logits after save → loadModel`);
      const fresh = createModel(name, { ...overrides, seed: 9 });
      await fresh.loadWeights(bytes);
      const y2 = fresh.forward(x);
      await expectClose(y2, values, 1e-6, `${name}: logits after save → loadWeights`);
      tf.dispose([x, logits, R, value, y1, y2, ...Object.values(grads)]);
      for (const m of [model, again, fresh]) m.dispose();
    }, 600_000);
  }
});
