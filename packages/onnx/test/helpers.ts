/** Test helpers for @softbias/onnx: seeded random weights, onnxruntime sessions, comparisons. */
import * as tf from '@tensorflow/tfjs-core';
import type { Module } from '@softbias/tensor-ops';

/**
 * Give every parameter seeded random values, so that no term of the graph is a no-op (GRN's γ, β and the
 * biases start at 0, LayerNorm at 1/0): matrices keep their trunc-normal init plus N(0, 0.02²) noise, vectors
 * become N(0, 0.1²) (norm scales 1 + N(0, 0.1²)), GPSA's gating parameters N(0, 1).
 */
export function randomizeWeights(model: Module, seed: number): void {
  let s = seed * 1000 + 1;
  for (const [name, p] of model.namedParameters()) {
    if (name.endsWith('pos_proj.weight')) continue; // the convolutional init: keep it (local heads)
    tf.tidy(() => {
      const v = p.value;
      const n = (std: number) => tf.randomNormal(v.shape, 0, std, 'float32', s++);
      let next: tf.Tensor;
      if (name.endsWith('gating_param')) next = n(1);
      else if (v.rank <= 1) next = /norm|\.1\.weight$|^stem\.1|downsample\.0/.test(name) && name.endsWith('weight') ? tf.add(1, n(0.1)) : n(0.1);
      else next = tf.add(v, n(0.02));
      p.variable.assign(next);
    });
  }
}

/** max |a − b| and the tolerance rule for comparisons without a fixture atol: 1e-4·max(1, max|b|). */
export function compare(a: ArrayLike<number>, b: ArrayLike<number>): { diff: number; atol: number; maxAbs: number } {
  if (a.length !== b.length) throw new Error(`compare: lengths ${a.length} and ${b.length}`);
  let diff = 0;
  let maxAbs = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    diff = Number.isNaN(d) ? Infinity : Math.max(diff, d);
    maxAbs = Math.max(maxAbs, Math.abs(b[i]!));
  }
  return { diff, atol: 1e-4 * Math.max(1, maxAbs), maxAbs };
}

/** Deterministic NHWC images in [-2, 2). */
export function images(shape: number[], seed: number): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = (x / 2 ** 32) * 4 - 2;
  }
  return out;
}
