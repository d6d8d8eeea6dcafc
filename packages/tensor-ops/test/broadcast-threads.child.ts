/**
 * Child process of broadcast.test.ts (run by test-utils/child.ts): the wasm backend with 2 threads; the
 * row-broadcast Add/Multiply and the leading-axes Sum on the pool must equal tfjs' own kernels bit for bit. Prints `RESULT <json>`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { setupBackend } from '@softbias/tensor-ops';
import { kernelThreads } from '../src/kernels/runtime.js';
import { originalWasmBinary } from '../src/kernels/broadcast.js';

await setupBackend('wasm', { threads: 2 });
// Progress lines: when the child dies or hangs, the test's message shows how far it got.
console.log('PHASE backend started');
tf.dispose(tf.add(tf.ones([512, 768]), tf.ones([768])));
await new Promise((r) => setTimeout(r, 300));
const results: { label: string; equal: boolean }[] = [];
for (const [rows, C] of [[1568, 768], [333, 37], [4096, 3]] as const) {
  const x = tf.randomNormal([rows, C], 0, 1, 'float32', rows);
  const v = tf.randomNormal([C], 0, 1, 'float32', C);
  for (const name of ['Add', 'Multiply'] as const) {
    const got = (name === 'Add' ? tf.add(x, v) : tf.mul(v, x)).dataSync();
    const info = originalWasmBinary(name)!({ inputs: { a: x, b: v }, backend: tf.backend(), attrs: {} }) as tf.TensorInfo;
    const want = tf.engine().makeTensorFromTensorInfo(info).dataSync();
    results.push({ label: `${name} [${rows},${C}]`, equal: got.length === want.length && got.every((g, i) => Object.is(g, want[i])) });
  }
  tf.dispose([x, v]);
}
// Same shapes (residual adds) run on the pool at 2 threads: sizes with a tail of 1–3 floats too.
for (const size of [1 << 16, (1 << 17) + 3, 300001]) {
  const x = tf.randomNormal([size], 0, 1, 'float32', 7);
  const y = tf.randomNormal([size], 0, 1, 'float32', 8);
  for (const name of ['Add', 'Multiply'] as const) {
    const got = (name === 'Add' ? tf.add(x, y) : tf.mul(x, y)).dataSync();
    const info = originalWasmBinary(name)!({ inputs: { a: x, b: y }, backend: tf.backend(), attrs: {} }) as tf.TensorInfo;
    const want = tf.engine().makeTensorFromTensorInfo(info).dataSync();
    results.push({ label: `${name} same shape [${size}]`, equal: got.length === want.length && got.every((g, i) => Object.is(g, want[i])) });
  }
  tf.dispose([x, y]);
}
// Sums over leading axes (bias gradients) split over the pool.
for (const shape of [[1568, 768], [8, 196, 37], [50000, 3]]) {
  const x = tf.randomNormal(shape, 0, 1, 'float32', 9);
  const axis = shape.length === 3 ? [0, 1] : [0];
  const got = tf.sum(x, axis).dataSync();
  const info = originalWasmBinary('Sum')!({ inputs: { x }, backend: tf.backend(), attrs: { axis, keepDims: false } }) as tf.TensorInfo;
  const want = tf.engine().makeTensorFromTensorInfo(info).dataSync();
  results.push({ label: `Sum [${shape}] over [${axis}]`, equal: got.length === want.length && got.every((g, i) => Object.is(g, want[i])) });
  x.dispose();
}
console.log('RESULT ' + JSON.stringify({ threads: kernelThreads(tf.backend()), results }));
