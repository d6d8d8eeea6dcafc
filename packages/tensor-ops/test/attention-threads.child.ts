/**
 * Child process of attention.test.ts (run by test-utils/child.ts): the wasm backend with 2 threads, the fused
 * attention forward on 2 kernel threads vs 1 (must be equal bit for bit: o, c and z) and vs the op-by-op tfjs
 * version (max |Δ| relative to max(1, max|op graph|) reported). Shapes with many blocks (tasks over blocks), few
 * blocks and many rows (row chunks), E not a multiple of 8, window-like small blocks. Prints `RESULT <json>`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { setupBackend } from '@softbias/tensor-ops';
import { fusedAttentionForward } from '../src/kernels/attention.js';
import { kernelThreads, setKernelThreads } from '../src/kernels/runtime.js';

await setupBackend('wasm', { threads: 2 });
// Progress lines: when the child dies or hangs, the test's message shows how far it got.
console.log('PHASE backend started');
tf.dispose(tf.matMul(tf.ones([64, 64]), tf.ones([64, 64])));
await new Promise((r) => setTimeout(r, 500));

function opByOp(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, scale: number, keep?: tf.Tensor, gated?: tf.Tensor): tf.Tensor[] {
  return tf.tidy(() => {
    const c = tf.softmax(tf.mul(tf.matMul(q, k, false, true), scale));
    if (!keep || !gated) return [tf.matMul(c, v), c];
    const a = tf.add(tf.mul(c, keep), gated);
    const z = tf.sum(a, -1, true);
    return [tf.matMul(tf.div(a, z), v), c, z];
  });
}

const checks: { label: string; sameAs1: boolean; vsGraph: number; scale: number }[] = [];
let seed = 1;
for (const [B, H, M, N, D, E, mixed] of [
  [8, 4, 196, 196, 48, 48, true],
  [2, 4, 197, 197, 48, 48, false],
  [1, 1, 197, 197, 48, 48, true], // one block: row chunks
  [1, 2, 300, 300, 20, 20, false], // E % 8 ≠ 0, row chunks
  [64, 4, 16, 16, 8, 8, false], // window attention: many small blocks
] as [number, number, number, number, number, number, boolean][]) {
  const q = tf.randomNormal([B, H, M, D], 0, 1, 'float32', seed++);
  const k = tf.randomNormal([B, H, N, D], 0, 1, 'float32', seed++);
  const v = tf.randomNormal([B, H, N, E], 0, 1, 'float32', seed++);
  const g = tf.sigmoid(tf.randomNormal([H, 1, 1], 0, 1, 'float32', seed++));
  const keep = mixed ? tf.sub(1, g) : undefined;
  const gated = mixed ? tf.mul(g, tf.softmax(tf.randomNormal([H, M, N], 0, 2, 'float32', seed++))) : undefined;
  const scale = D ** -0.5;
  setKernelThreads(1);
  const one = fusedAttentionForward(q, k, v, scale, keep, gated)!;
  setKernelThreads(null);
  if (kernelThreads(tf.backend()) !== 2) throw new Error('expected 2 kernel threads');
  const two = fusedAttentionForward(q, k, v, scale, keep, gated)!;
  const graph = opByOp(q, k, v, scale, keep, gated);
  const names = ['o', 'c', 'z'] as const;
  for (let i = 0; i < graph.length; i++) {
    const a = one[names[i]!]!.dataSync();
    const b = two[names[i]!]!.dataSync();
    const r = graph[i]!.dataSync();
    let same = a.length === b.length && a.length === r.length;
    let worst = 0;
    let m = 0;
    for (let j = 0; j < a.length; j++) {
      if (!Object.is(a[j], b[j])) same = false;
      worst = Math.max(worst, Math.abs(b[j]! - r[j]!));
      m = Math.max(m, Math.abs(r[j]!));
    }
    checks.push({ label: `${names[i]} [${B},${H},${M},${N},${D},${E}]${mixed ? ' mixed' : ''}`, sameAs1: same, vsGraph: worst, scale: m });
  }
  tf.dispose([q, k, v, g, keep ?? [], gated ?? [], ...Object.values(one), ...Object.values(two), ...graph]);
}
console.log(`RESULT ${JSON.stringify({ threads: kernelThreads(tf.backend()), checks })}`);
