/**
 * Generated from the registry: every size up to tiny is built, run forward and backward on a 32×32 input,
 * and round-tripped through saveWeights → loadModel, on every backend. (base, large and huge are covered from
 * their shapes in registry.pure.test.ts; building them is not a unit test.)
 */
import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend, excludedHere } from '@softbias/test-utils';
import { parseSafetensors } from '@softbias/tensor-ops';
import { MODELS, createModel, loadModel, countParameters, parameterShapes } from './index.js';

const BUILT = MODELS.filter((m) => ['atto', 'femto', 'pico', 'nano', 'tiny'].includes(m.name.replace('convnextv2_', '')));

function finite(a: ArrayLike<number>): boolean {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i]!)) return false;
  return true;
}

describeBackend('convnextv2 registry: build, forward, backward, save → load', () => {
  for (const m of BUILT) {
    const excluded = excludedHere(`convnextv2/registry/${m.name}`);
    (excluded ? it.skip : it)(excluded ? `${m.name} [skipped here: vitest.exclusions.ts]` : m.name, async () => {
      const before = tf.memory().numTensors;
      const model = createModel(m.name, { numClasses: 7 });
      // Parameters: names and PyTorch shapes exactly the registry's (MLP weights held as Linear).
      const shapes = parameterShapes({ ...model.config, convMlp: false });
      expect(model.namedParameters().map(([k, p]) => [k, p.torchShape])).toEqual(shapes);
      expect(model.numParameters()).toBe(countParameters(m.name, { numClasses: 7 }));

      const x = tf.randomNormal([1, 32, 32, 3], 0, 1, 'float32', 1);
      const r = tf.randomNormal([1, 7], 0, 1, 'float32', 2);
      const logits = model.forward(x);
      expect(logits.shape).toEqual([1, 7]);
      const l0 = (await logits.data()) as Float32Array;
      expect(finite(l0)).toBe(true);

      const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(model.forward(x), r)) as tf.Scalar);
      expect(Object.keys(grads).length).toBe(model.parameters().length);
      for (const [k, p] of model.namedParameters()) {
        const g = grads[p.variable.name];
        expect(g?.shape, k).toEqual(p.shape);
      }
      // A gradient that reaches the stem has passed through every block (incl. the depth-wise conv backprop).
      const stemGrad = await grads[model.stem.conv.weight.variable.name]!.data();
      expect(finite(stemGrad)).toBe(true);
      expect(stemGrad.some((v) => v !== 0)).toBe(true);

      const bytes = await model.saveWeights();
      const file = parseSafetensors(bytes);
      expect(file.metadata).toMatchObject({ format: 'pt', arch: m.name, family: 'convnextv2' });
      expect(JSON.parse(file.metadata['config']!)).toMatchObject({ name: m.name, numClasses: 7 });
      expect(file.info('stages.0.blocks.0.mlp.fc1.weight').shape.length).toBe(m.convMlp ? 4 : 2);
      const loaded = await loadModel(bytes);
      expect(loaded.config).toEqual(model.config);
      const l1 = loaded.forward(x);
      expect(Array.from(await l1.data())).toEqual(Array.from(l0));

      tf.dispose([x, r, logits, value, l1, ...Object.values(grads)]);
      model.dispose();
      loaded.dispose();
      expect(tf.memory().numTensors).toBe(before);
    }, 600_000);
  }
});
