/**
 * Child process of eltwise.test.ts (run by test-utils/child.ts): the wasm backend with 2 threads, the fused GELU
 * and LayerNorm (forward and gradients) on 2 kernel threads vs 1 (must be equal bit for bit) and vs tfjs' op graph.
 * Prints `RESULT <json>`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { setupBackend } from '@softbias/tensor-ops';
import { kernelThreads, setKernelThreads } from '../src/kernels/runtime.js';
import { gelu, geluOps } from '../src/layers/activation.js';
import { layerNorm, layerNormOps } from '../src/layers/norm.js';

await setupBackend('wasm', { threads: 2 });
// Progress lines: when the child dies or hangs, the test's message shows how far it got.
console.log('PHASE backend started');
// Start the pool and give its workers time to instantiate the kernels.
tf.dispose(gelu(tf.ones([256, 1024])));
await new Promise((r) => setTimeout(r, 500));

const checks: {
  label: string;
  sameAs1: boolean;
  vsOps: number;
  atol: number;
}[] = [];
const maxDiff = (a: Float32Array[], b: Float32Array[]) => {
  // Largest difference relative to max(1, max |b|) of each output.
  let m = 0;
  a.forEach((x, k) => {
    const ref = b[k]!;
    let s = 1;
    for (const v of ref) s = Math.max(s, Math.abs(v));
    for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - ref[i]!) / s);
  });
  return m;
};
const same = (a: Float32Array[], b: Float32Array[]) =>
  a.every((x, k) => x.length === b[k]!.length && x.every((v, i) => Object.is(v, b[k]![i]!)));
const run = (f: () => tf.Tensor[]): Float32Array[] => tf.tidy(() => f().map((t) => t.dataSync() as Float32Array));
const at = (threads: number | null, f: () => tf.Tensor[]) => {
  setKernelThreads(threads);
  try {
    return run(f);
  } finally {
    setKernelThreads(null);
  }
};
const check = (label: string, fused: () => tf.Tensor[], ops: () => tf.Tensor[], atol: number) => {
  const one = at(1, fused);
  const two = at(null, fused);
  checks.push({
    label,
    sameAs1: same(one, two),
    vsOps: maxDiff(two, run(ops)),
    atol,
  });
};

for (const shape of [
  [4, 197, 768],
  [2, 56, 56, 40],
  [3, 7, 5],
]) {
  const x = tf.mul(tf.randomNormal(shape, 0, 1, 'float32', 1), 2);
  const r = tf.randomNormal(shape, 0, 1, 'float32', 2);
  const c = shape[shape.length - 1]!;
  const w = tf.add(tf.randomNormal([c], 0, 0.5, 'float32', 3), 1);
  const b = tf.randomNormal([c], 0, 0.3, 'float32', 4);
  const L = (f: (a: tf.Tensor) => tf.Tensor) => (a: tf.Tensor) => tf.sum(tf.mul(f(a), r));
  check(
    `gelu [${shape}]`,
    () => [gelu(x)],
    () => [geluOps(x)],
    1e-6
  );
  check(
    `gelu grad [${shape}]`,
    () => [tf.grad(L(gelu))(x)],
    () => [tf.grad(L(geluOps))(x)],
    1e-5
  );
  const LN = (ln: typeof layerNorm) => (a: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) => tf.sum(tf.mul(ln(a, ww, bb, 1e-6), r));
  check(
    `layerNorm [${shape}]`,
    () => [layerNorm(x, w, b, 1e-6)],
    () => [layerNormOps(x, w, b, 1e-6)],
    4e-6
  );
  check(
    `layerNorm grads [${shape}]`,
    () => tf.grads(LN(layerNorm))([x, w, b]),
    () => tf.grads(LN(layerNormOps))([x, w, b]),
    2e-5
  );
  tf.dispose([x, r, w, b]);
}
console.log('RESULT ' + JSON.stringify({ threads: kernelThreads(tf.backend()), checks }));
