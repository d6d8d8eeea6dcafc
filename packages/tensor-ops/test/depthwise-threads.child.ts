/**
 * Child process of depthwise.test.ts (run by test-utils/child.ts): the wasm backend with 2 threads, softbias'
 * depth-wise kernels (forward with bias, input and filter gradients) on 2 kernel threads vs 1 (must be equal bit
 * for bit) and vs tfjs-backend-wasm's original forward / the legacy gradient routes; the row-form kernels (sparse
 * conv) the same way against a float64 loop. Prints `RESULT <json>`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { setupBackend } from '@softbias/tensor-ops';
import { originalWasmDepthwiseConv2d } from '../src/kernels/depthwise.js';
import { legacyDepthwiseBackpropFilter, legacyDepthwiseBackpropInput } from '../src/kernels/wasm-conv-backprop.js';
import { kernelThreads, setKernelThreads } from '../src/kernels/runtime.js';
import { ROW_DEPTHWISE_FILTER_GRAD_KERNEL, ROW_DEPTHWISE_KERNEL } from '../src/kernels/depthwise.js';

await setupBackend('wasm', { threads: 2 });
// Progress lines: when the child dies or hangs, the test's message shows how far it got.
console.log('PHASE backend started');
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
    console.log(`PHASE ${xs.join('x')}/k${k}/${pad}/${what}`);
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
// The row form: a random neighbour table (entries V = zero row), against a float64 loop.
{
  const [V, C, KK] = [3001, 41, 49];
  const table = new Int32Array(V * KK);
  let seed = 12345;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed / 2 ** 32;
  };
  for (let i = 0; i < table.length; i++) table[i] = rnd() < 0.4 ? V : Math.floor(rnd() * V);
  const x = tf.randomNormal([V, C], 0, 1, 'float32', 5);
  const dy = tf.randomNormal([V, C], 0, 1, 'float32', 6);
  const w = tf.randomNormal([7, 7, C, 1], 0, 1, 'float32', 7);
  const bias = tf.randomNormal([C], 0, 1, 'float32', 8);
  const nbr = tf.tensor2d(table, [V, KK], 'int32');
  const xd = x.dataSync(), dyd = dy.dataSync(), wd = w.dataSync(), bd = bias.dataSync();
  const refY = new Float64Array(V * C), refX = new Float64Array(V * C), refW = new Float64Array(KK * C);
  for (let v = 0; v < V; v++)
    for (let j = 0; j < KK; j++) {
      const q = table[v * KK + j]!;
      if (q === V) continue;
      for (let c = 0; c < C; c++) {
        refY[v * C + c] += xd[q * C + c]! * wd[j * C + c]!;
        refX[v * C + c] += dyd[q * C + c]! * wd[(KK - 1 - j) * C + c]!;
        refW[j * C + c] += xd[q * C + c]! * dyd[v * C + c]!;
      }
    }
  for (let i = 0; i < V * C; i++) refY[i] += bd[i % C]!;
  const ops: [string, () => tf.Tensor, Float64Array][] = [
    ['rows/y+bias', () => tf.engine().runKernel(ROW_DEPTHWISE_KERNEL, { x, nbr, filter: w, bias }, { flip: false } as unknown as tf.NamedAttrMap) as tf.Tensor, refY],
    ['rows/dx', () => tf.engine().runKernel(ROW_DEPTHWISE_KERNEL, { x: dy, nbr, filter: w }, { flip: true } as unknown as tf.NamedAttrMap) as tf.Tensor, refX],
    ['rows/dw', () => tf.engine().runKernel(ROW_DEPTHWISE_FILTER_GRAD_KERNEL, { x, nbr, dy }) as tf.Tensor, refW],
  ];
  for (const [what, run, ref] of ops) {
    console.log(`PHASE ${what}`);
    setKernelThreads(1);
    const a1 = run();
    const ms1 = time(run);
    setKernelThreads(null);
    const a2 = run();
    const ms2 = time(run);
    const d1 = a1.dataSync();
    const d2 = a2.dataSync();
    let same = d1.length === d2.length && d2.length === ref.length;
    let worst = 0;
    let scale = 1;
    for (let i = 0; i < d1.length; i++) {
      if (!Object.is(d1[i], d2[i])) same = false;
      worst = Math.max(worst, Math.abs(d2[i]! - ref[i]!));
      scale = Math.max(scale, Math.abs(ref[i]!));
    }
    checks.push({ label: `${V}x${C}/KK${KK}/${what}`, sameAs1: same, vsOriginal: worst, atol: 1e-4 * scale, ms1, ms2 });
    tf.dispose([a1, a2]);
  }
  tf.dispose([x, dy, w, bias, nbr]);
}
console.log('RESULT ' + JSON.stringify({ threads: kernelThreads(tf.backend()), checks }));
