/**
 * The lean backward pass (lean-gradients.ts) against tfjs' own `engine.gradients`: the same gradients, bit for
 * bit, on a small transformer-like stack (LayerNorm, MLP with GELU, a matmul attention, a residual used twice);
 * a lower peak of live tensor bytes; no tensor left behind; higher-order gradients still right.
 */
import * as tf from '@tensorflow/tfjs-core';
import { it, expect, afterEach } from 'vitest';
import { describeBackend } from '@softbias/test-utils';
import { LayerNorm, Mlp, Rng, useLeanGradients, leanGradientsActive } from './index.js';

function rand(shape: number[], rng: Rng): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const d = new Float32Array(n);
  for (let i = 0; i < n; i++) d[i] = rng.random() * 2 - 1;
  return tf.tensor(d, shape, 'float32');
}

describeBackend('lean backward pass', () => {
  afterEach(() => {
    useLeanGradients(true);
  });

  it('is installed by importing tensor-ops', () => {
    expect(leanGradientsActive()).toBe(true);
  });

  it('gives the same gradients as tfjs, bit for bit, and leaves no tensor behind', async () => {
    const rng = new Rng(5);
    const [B, N, C] = [2, 9, 16];
    const norm = new LayerNorm(C);
    const mlp = new Mlp(C, { hiddenFeatures: 4 * C, rng });
    const wq = tf.variable(rand([C, C], rng));
    const x = rand([B, N, C], rng);
    const vars = [...norm.parameters(), ...mlp.parameters()].map((p) => p.value as tf.Variable).concat([wq]);
    let live = 0;
    const loss = () => {
      let h = x;
      for (let depth = 0; depth < 3; depth++) {
        const n = norm.forward(h);
        const q = tf.matMul(tf.reshape(n, [B * N, C]), wq);
        const a = tf.softmax(tf.matMul(tf.reshape(q, [B, N, C]), n, false, true));
        h = tf.add(h, tf.matMul(a, n));
        h = tf.add(h, tf.reshape(mlp.forward(tf.reshape(h, [B * N, C])), [B, N, C]));
      }
      live = Math.max(live, tf.memory().numBytes);
      return tf.mean(tf.square(h)) as tf.Scalar;
    };
    // Async reads: WebGPU in Node has no dataSync.
    const run = async (lean: boolean) => {
      useLeanGradients(lean);
      const before = tf.memory().numTensors;
      const { value, grads } = tf.variableGrads(loss, vars);
      const entries: [string, number[]][] = [];
      for (const [k, g] of Object.entries(grads)) entries.push([k, Array.from(await g.data())]);
      const out = { value: (await value.data())[0], grads: Object.fromEntries(entries) };
      tf.dispose([value, ...Object.values(grads)]);
      expect(tf.memory().numTensors, `tensors left (${lean ? 'lean' : 'stock'})`).toBe(before);
      return out;
    };
    const stock = await run(false);
    const lean = await run(true);
    expect(lean.value).toBe(stock.value);
    expect(Object.keys(lean.grads).sort()).toEqual(Object.keys(stock.grads).sort());
    for (const k of Object.keys(stock.grads)) expect(lean.grads[k], k).toEqual(stock.grads[k]);

    tf.dispose([x, wq]);
    norm.dispose();
    mlp.dispose();
  });

  it('frees saved tensors during the backward (peak below the stock walk)', () => {
    const rng = new Rng(9);
    const w = tf.variable(rand([64, 64], rng));
    const x = rand([64, 64], rng);
    // A chain: the gradient of the first layer is computed last, when the stock walk still holds everything.
    let peakDuring = 0;
    const spy = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const t = args[0] as tf.Tensor;
      (args[1] as tf.GradSaveFunc)([]);
      return {
        value: tf.clone(t),
        gradFunc: (d: tf.Tensor | tf.Tensor[]) => {
          peakDuring = tf.memory().numBytes;
          return [tf.clone(d as tf.Tensor)];
        },
      };
    });
    const measure = (lean: boolean) => {
      useLeanGradients(lean);
      const { value, grads } = tf.variableGrads(() => {
        let h = spy(tf.matMul(x, w));
        for (let i = 0; i < 12; i++) h = tf.tanh(tf.matMul(h, w));
        return tf.sum(h) as tf.Scalar;
      }, [w]);
      tf.dispose([value, ...Object.values(grads)]);
      return peakDuring;
    };
    const stock = measure(false);
    const lean = measure(true);
    expect(lean).toBeLessThan(stock * 0.5);
    tf.dispose([w, x]);
  });

  it('leaves higher-order gradients to tfjs (d²/dx² x³ = 6x)', async () => {
    const x = tf.tensor1d([1, 2, -3]);
    const d2 = tf.grad(tf.grad((t: tf.Tensor) => tf.pow(t, 3)));
    const g = d2(x);
    const got = Array.from(await g.data());
    for (const [i, want] of [6, 12, -18].entries()) expect(Math.abs(got[i]! - want)).toBeLessThanOrEqual(1e-5 * Math.abs(want));
    tf.dispose([x, g]);
  });
});
