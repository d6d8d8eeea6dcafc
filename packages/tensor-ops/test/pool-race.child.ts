/**
 * Child process of register.test.ts: ConViT-Ti forwards on the 2-thread pool with the GEMM cut into 24 units per
 * thread (48 short tasks per product, so the calling thread often runs all of a call's tasks alone and starts the
 * next call while the worker is still waking for the previous one). Before the pool closed its task counter first,
 * a late worker could run a task with a mix of two calls' arguments ("failed on a worker thread" in 4 of 8 runs of
 * 25 forwards); every forward must now succeed and equal the first. Prints `RESULT <json>`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { setupBackend } from '@softbias/tensor-ops';
import { createModel } from '@softbias/models-convit';
import { kernelThreads } from '../src/kernels/runtime.js';
import { setGemmUnitsPerThread } from '../src/kernels/wasm-batch-matmul.js';

await setupBackend('wasm', { threads: 2 });
// Progress lines: when the child dies or hangs, the test's message shows how far it got.
console.log('PHASE backend started');
setGemmUnitsPerThread(24);
const m = createModel('convit_tiny', { seed: 1 });
const x = tf.randomUniform([1, 224, 224, 3], 0, 1, 'float32', 2);
const first = tf.tidy(() => m.forward(x)).dataSync();
let errors = 0;
let bad = 0;
const forwards = 60;
for (let i = 0; i < forwards; i++) {
  try {
    const y = tf.tidy(() => m.forward(x));
    const d = y.dataSync();
    y.dispose();
    if (!d.every((v, j) => Object.is(v, first[j]))) bad++;
  } catch {
    errors++;
  }
}
console.log('RESULT ' + JSON.stringify({ threads: kernelThreads(tf.backend()), forwards, errors, bad }));
