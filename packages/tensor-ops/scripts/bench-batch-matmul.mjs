/**
 * BatchMatMul on the wasm backend: tfjs-backend-wasm's own kernel vs softbias's SIMD kernel, interleaved.
 * Run after `npx tsc -p packages/tensor-ops/tsconfig.build.json`:  node packages/tensor-ops/scripts/bench-batch-matmul.mjs
 * Prints, per shape, the median ms of each kernel over interleaved rounds and the ratio (tfjs / softbias).
 */
import * as tf from '@tensorflow/tfjs-core';
import { setupBackend } from '../dist/index.js';
import { originalWasmBatchMatMul, wasmBatchMatMulRoute } from '../dist/kernels/wasm-batch-matmul.js';

await setupBackend('wasm');
const ours = tf.getKernel('BatchMatMul', 'wasm').kernelFunc;
const orig = originalWasmBatchMatMul();
if (!orig || ours === orig) throw new Error('softbias BatchMatMul is not registered');
const backend = tf.backend();

const CASES = [
  // ConViT training step (batch 64, 4 heads, 49 tokens, head dim 16)
  ['q·kᵀ scores', [64, 4, 49, 16], [64, 4, 16, 49], false, false],
  ['q·kᵀ scores, transposeB', [64, 4, 49, 16], [64, 4, 49, 16], false, true],
  ['attn·v', [64, 4, 49, 49], [64, 4, 49, 16], false, false],
  ['grad attn·v: dAttn = dY·vᵀ', [64, 4, 49, 16], [64, 4, 16, 49], false, false],
  ['grad attn·v: dV = attnᵀ·dY', [64, 4, 49, 49], [64, 4, 49, 16], false, false],
  ['grad scores: dQ = dS·k', [64, 4, 49, 49], [64, 4, 49, 16], false, false],
  ['grad scores: dK = dSᵀ·q (transposeA)', [64, 4, 49, 49], [64, 4, 49, 16], true, false],
  ['broadcast b: [256,49,16]·[16,49]', [256, 49, 16], [16, 49], false, false],
  ['batch 2: [2,197,64]·[2,64,197]', [2, 197, 64], [2, 64, 197], false, false],
  ['odd: [8,17,3]·[8,3,50]', [8, 17, 3], [8, 3, 50], false, false],
  // batch 1: where the crossover with XNNPACK lies (the kernel routes flag-free batch 1 to tfjs)
  ['batch 1: [49,16]·[16,49]', [49, 16], [16, 49], false, false],
  ['batch 1: [3136,64]·[64,64]', [3136, 64], [64, 64], false, false],
  ['batch 1: [3136,64]·[64,192]', [3136, 64], [64, 192], false, false],
  ['batch 1: [256,256]·[256,256]', [256, 256], [256, 256], false, false],
  // the ConViT step's flag-free 2-D products (linear layers and their weight gradients)
  ['batch 1: [64,3136]·[3136,128]', [64, 3136], [3136, 128], false, false],
  ['batch 1: [3136,128]·[128,64]', [3136, 128], [128, 64], false, false],
  ['batch 1 transposeB: [3136,64]·[192,64]ᵀ', [3136, 64], [192, 64], false, true],
  ['batch 1 transposeA: [64,3136]ᵀ·[3136,64]', [3136, 64], [3136, 64], true, false],
];

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
function time(fn, a, b, ta, tb, reps) {
  const t0 = performance.now();
  for (let r = 0; r < reps; r++) {
    const out = fn({ inputs: { a: a, b: b }, backend, attrs: { transposeA: ta, transposeB: tb } });
    backend.disposeData(out.dataId);
  }
  return (performance.now() - t0) / reps;
}

console.log('shape'.padEnd(44), 'route'.padStart(8), 'tfjs ms'.padStart(9), 'softbias'.padStart(9), 'ratio'.padStart(7), 'GMAC/s'.padStart(7));
for (const [label, as, bs, ta, tb] of CASES) {
  const a = tf.randomNormal(as);
  const b = tf.randomNormal(bs);
  const outShape = tf.matMul(a, b, ta, tb).shape;
  const M = outShape.at(-2), N = outShape.at(-1), K = ta ? as.at(-2) : as.at(-1);
  const macs = outShape.slice(0, -2).reduce((x, y) => x * y, 1) * M * N * K;
  // Where the route keeps tfjs' kernel (one flag-free product), time the SIMD path on the same product
  // stacked twice (batch 2, so it is not routed away) and halve: the crossover measurement.
  const route = wasmBatchMatMulRoute(as, bs, ta, tb);
  let a2 = a, b2 = b;
  if (route === 'original') { a2 = tf.stack([a, a]); b2 = tf.stack([b, b]); }
  const scale = route === 'original' ? 2 : 1;
  const t1 = time(orig, a, b, ta, tb, 1);
  const reps = Math.max(1, Math.min(50, Math.round(200 / Math.max(t1, 0.05))));
  const to = [], ts = [];
  for (let round = 0; round < 7; round++) {
    to.push(time(orig, a, b, ta, tb, reps));
    ts.push(time(ours, a2, b2, ta, tb, reps) / scale);
  }
  const mo = median(to), ms = median(ts);
  console.log(label.padEnd(44), route.padStart(8), mo.toFixed(3).padStart(9), ms.toFixed(3).padStart(9), (mo / ms).toFixed(2).padStart(7), (macs / ms / 1e6).toFixed(2).padStart(7));
  tf.dispose([a, b]);
  if (a2 !== a) tf.dispose([a2, b2]);
}
