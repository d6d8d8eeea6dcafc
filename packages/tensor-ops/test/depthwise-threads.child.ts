/**
 * Child process of depthwise.test.ts (run by test-utils/child.ts): the wasm backend with 2 threads, softbias'
 * depth-wise kernels (forward with bias, input and filter gradients) on 2 kernel threads vs 1 (must be equal bit
 * for bit) and vs tfjs-backend-wasm's original forward / the legacy gradient routes. Prints `RESULT <json>`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { setupBackend } from '@softbias/tensor-ops';
import { originalWasmDepthwiseConv2d } from '../src/kernels/depthwise.js';
import { legacyDepthwiseBackpropFilter, legacyDepthwiseBackpropInput } from '../src/kernels/wasm-conv-backprop.js';
import { kernelThreads, setKernelThreads } from '../src/kernels/runtime.js';

await setupBackend('wasm', { threads: 2 });
const be = tf.backend() as unknown as tf.KernelBackend;
const eng = tf.engine() as unknown as { makeTensorFromTensorInfo(i: tf.TensorInfo): tf.Tensor };
const T = (i: tf.TensorInfo) => eng.makeTensorFromTensorInfo(i);

// Start the pool and give its workers time to instantiate the kernels.
tf.dispose(tf.depthwiseConv2d(tf.ones([2, 8, 8, 4]) as tf.Tensor4D, tf.ones([3, 3, 4, 1]) as tf.Tensor4D, 1, 'same'));
await new Promise((r) => setTimeout(r, 500));

const checks: { label: string; sameAs1: boolean; vsOriginal: number; atol: number; ms1: number; ms2: number }[] = [];
const time = (f: () => tf.Tensor): number => {
  const ts: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    tf.dispose(f());
    ts.push(performance.now() - t0);
  }
  return ts.sort((a, b) => a - b)[2]!;
};
for (const [xs, k, pad] of [
  // Small problems run as one task on the calling thread; the others (≥ 2^20 multiply-adds) on the pool.
  [[3, 9, 7, 41], 7, 'same'],
  [[4, 14, 14, 13], 3, 'same'],
  [[2, 28, 28, 40], 7, 'same'],
  [[3, 23, 19, 41], 7, 'same'],
  [[6, 40, 33, 21], 3, 'valid'],
] as [[number, number, number, number], number, 'same' | 'valid'][]) {
  const C = xs[3];
  const x = tf.randomNormal(xs, 0, 1, 'float32', 1);
  const w = tf.randomNormal([k, k, C, 1], 0, 1, 'float32', 2);
  const bias = tf.randomNormal([C], 0, 1, 'float32', 3);
  const yShape = tf.depthwiseConv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, pad).shape;
  const dy = tf.randomNormal(yShape, 0, 1, 'float32', 4);
  const attrs = { strides: [1, 1], pad, dilations: [1, 1] } as unknown as tf.NamedAttrMap;
  const ops: [string, () => tf.Tensor, () => tf.Tensor][] = [
    [
      'y+bias',
      () => tf.fused.depthwiseConv2d({ x: x as tf.Tensor4D, filter: w as tf.Tensor4D, strides: 1, pad, bias }),
      () => tf.add(T(originalWasmDepthwiseConv2d()!({ inputs: { x, filter: w }, backend: be, attrs }) as tf.TensorInfo), bias),
    ],
    [
      'dx',
      () => tf.engine().runKernel(tf.DepthwiseConv2dNativeBackpropInput, { dy, filter: w }, { ...attrs, inputShape: xs }) as tf.Tensor,
      () => T(legacyDepthwiseBackpropInput({ inputs: { dy, filter: w }, backend: be, attrs: { ...attrs, inputShape: xs } })),
    ],
    [
      'dw',
      () => tf.engine().runKernel(tf.DepthwiseConv2dNativeBackpropFilter, { x, dy }, { ...attrs, filterShape: [k, k, C, 1] }) as tf.Tensor,
      () => T(legacyDepthwiseBackpropFilter({ inputs: { x, dy }, backend: be, attrs: { ...attrs, filterShape: [k, k, C, 1] } })),
    ],
  ];
  for (const [what, run, original] of ops) {
    setKernelThreads(1);
    const a1 = run();
    const ms1 = time(run);
    setKernelThreads(null);
    const a2 = run();
    const ms2 = time(run);
    const o = original();
    const d1 = a1.dataSync();
    const d2 = a2.dataSync();
    const od = o.dataSync();
    let same = d1.length === d2.length;
    let worst = 0;
    let scale = 1;
    for (let i = 0; i < d1.length; i++) {
      if (!Object.is(d1[i], d2[i])) same = false;
      worst = Math.max(worst, Math.abs(d2[i]! - od[i]!));
      scale = Math.max(scale, Math.abs(od[i]!));
    }
    checks.push({ label: `${xs.join('x')}/k${k}/${pad}/${what}`, sameAs1: same, vsOriginal: worst, atol: 1e-4 * scale, ms1, ms2 });
    tf.dispose([a1, a2, o]);
  }
  tf.dispose([x, w, bias, dy]);
}
console.log('RESULT ' + JSON.stringify({ threads: kernelThreads(tf.backend()), checks }));
