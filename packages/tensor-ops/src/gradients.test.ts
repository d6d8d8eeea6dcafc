/**
 * Gradients on every backend: tensor-ops registers tfjs-core's gradient functions in the ONE tfjs-core the app
 * and the backend packages share, and a small training step (Linear → LayerNorm → GELU → Linear, tf.variableGrads
 * and a manual SGD update) lowers the loss. Plain Node (CJS and ESM) is covered by node-entry.pure.test.ts.
 */
import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { describeBackend, currentBackend, expectClose, defaultAtol } from '@softbias/test-utils';
import { Linear, LayerNorm, gelu, gradientsRegistered, REQUIRED_GRADIENTS, Module, Rng } from '@softbias/tensor-ops';

const requireHere = createRequire(import.meta.url);
const generatedGradients = fileURLToPath(new URL('./generated/gradients.js', import.meta.url));

/** tfjs-core as each backend package (and tensor-ops' generated gradient module) resolves and loads it. */
function coreSeenFrom(pkg: string): { path: string; core: typeof tf } {
  const entry = requireHere.resolve(pkg);
  const req = createRequire(entry);
  return { path: req.resolve('@tensorflow/tfjs-core'), core: req('@tensorflow/tfjs-core') };
}

describeBackend('gradients: one tfjs-core', () => {
  it('tensor-ops, the backends and the test share one engine and one tfjs-core module', () => {
    expect((globalThis as any)._tfengine).toBe(tf.engine());
    const here = { path: requireHere.resolve('@tensorflow/tfjs-core'), core: requireHere('@tensorflow/tfjs-core') };
    const generated = createRequire(generatedGradients).resolve('@tensorflow/tfjs-core');
    expect(generated).toBe(here.path);
    for (const pkg of ['@tensorflow/tfjs-backend-cpu', '@tensorflow/tfjs-backend-wasm', '@tensorflow/tfjs-backend-webgpu']) {
      const seen = coreSeenFrom(pkg);
      expect(seen.path, pkg).toBe(here.path);
      expect(seen.core, pkg).toBe(here.core);
      expect(seen.core.engine()).toBe(tf.engine());
    }
    // The module this spec imports is that same instance (not a second copy through another entry point).
    expect(here.core.Tensor).toBe(tf.Tensor);
    expect(here.core.engine).toBe(tf.engine);
    // Loaded once: a single tfjs-core file in the CommonJS cache.
    const coreFiles = Object.keys(requireHere.cache).filter((k) => /[\\/]@tensorflow[\\/]tfjs-core[\\/]/.test(k));
    expect(coreFiles).toEqual([here.path]);
  });

  it('every gradient softbias needs is registered where the backends look for it', () => {
    expect(gradientsRegistered()).toBe(true);
    const core = coreSeenFrom('@tensorflow/tfjs-backend-wasm').core;
    const missing = REQUIRED_GRADIENTS.filter((k) => core.getGradient(k) == null);
    expect(missing).toEqual([]);
    // The registry holds all of tfjs-core's gradients (about 100), not just the few we list.
    expect(REQUIRED_GRADIENTS.length).toBeGreaterThan(20);
    for (const k of ['Erf', 'BatchMatMul', 'Rsqrt', 'Transpose', 'Reshape']) expect(core.getGradient(k)?.kernelName).toBe(k);
  });

  it('a gradient flows through the kernels of this backend (erf, matmul, rsqrt)', async () => {
    expect(tf.getBackend()).toBe(currentBackend);
    const x = tf.tensor([[0.3, -1.2], [2.0, 0.5]]);
    const w = tf.tensor([[1.5, -0.5], [0.25, 2.0]]);
    const g = tf.grad((a: tf.Tensor) => tf.sum(tf.erf(tf.matMul(a, w))))(x);
    // d/da Σ erf(a·w) = (2/√π·exp(−(a·w)²))·wᵀ
    const xa = [[0.3, -1.2], [2.0, 0.5]];
    const wa = [[1.5, -0.5], [0.25, 2.0]];
    const ref = new Float64Array(4);
    for (let i = 0; i < 2; i++)
      for (let k = 0; k < 2; k++) {
        for (let j = 0; j < 2; j++) {
          const z = xa[i]![0]! * wa[0]![j]! + xa[i]![1]! * wa[1]![j]!;
          ref[i * 2 + k] += (2 / Math.sqrt(Math.PI)) * Math.exp(-z * z) * wa[k]![j]!;
        }
      }
    await expectClose(g, ref, defaultAtol(ref), 'grad erf(matmul)');
    expect(g).toBeInstanceOf(tf.Tensor);
    tf.dispose([x, w, g]);
  });
});

class Tiny extends Module {
  readonly fc1: Linear;
  readonly norm: LayerNorm;
  readonly fc2: Linear;
  constructor(rng: Rng) {
    super();
    // Every matmul output (and weight gradient) above 128 elements: tfjs-webgpu's reduce program for smaller
    // ones is very slow on SwiftShader.
    this.fc1 = this.registerModule('fc1', new Linear(12, 16, { rng, init: { kind: 'torch' } }));
    this.norm = this.registerModule('norm', new LayerNorm(16));
    this.fc2 = this.registerModule('fc2', new Linear(16, 9, { rng, init: { kind: 'torch' } }));
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => this.fc2.forward(gelu(this.norm.forward(this.fc1.forward(x)))));
  }
}

describeBackend('gradients: a training step', () => {
  it('Linear + LayerNorm + GELU: the loss decreases under tf.variableGrads + manual SGD', async () => {
    const rng = new Rng(123);
    const model = new Tiny(rng);
    const x = tf.tensor(Float32Array.from({ length: 4 * 5 * 12 }, () => rng.normal()), [4, 5, 12]);
    const target = tf.tensor(Float32Array.from({ length: 4 * 5 * 9 }, () => rng.normal()), [4, 5, 9]);
    const vars = model.parameters().map((p) => p.variable);
    const lossFn = () => tf.mean(tf.square(tf.sub(model.forward(x), target))) as tf.Scalar;
    const baseline = tf.memory().numTensors;
    const losses: number[] = [];
    const lr = 0.1;
    for (let step = 0; step < 12; step++) {
      const { value, grads } = tf.variableGrads(lossFn, vars);
      losses.push((await value.data())[0]!);
      expect(Object.keys(grads).length).toBe(vars.length);
      tf.tidy(() => {
        for (const v of vars) v.assign(tf.sub(v, tf.mul(grads[v.name]!, lr)));
      });
      value.dispose();
      tf.dispose(Object.values(grads));
      expect(tf.memory().numTensors, `step ${step}: no tensor left behind`).toBe(baseline);
    }
    for (let i = 1; i < losses.length; i++) expect(losses[i], `step ${i}: ${losses}`).toBeLessThan(losses[i - 1]!);
    expect(losses.at(-1)!).toBeLessThan(0.8 * losses[0]!);
    // The gradient of every parameter was non-zero (all of them are on the path).
    const { grads, value } = tf.variableGrads(lossFn, vars);
    for (const v of vars) {
      const m = tf.tidy(() => tf.max(tf.abs(grads[v.name]!)));
      expect((await m.data())[0]!, v.name).toBeGreaterThan(0);
      m.dispose();
    }
    tf.dispose([value, ...Object.values(grads), x, target]);
    model.dispose();
  });
});
