/**
 * Child process of wasm-batch-matmul.test.ts: the wasm backend with 2 threads (tfjs fixes its thread count at the
 * first start in a process). For each product: softbias' GEMM on 1 and on 2 kernel threads (must agree bit for
 * bit: the split never changes a sum), against a float64 reference (the float32 summation bound) and against
 * tfjs-backend-wasm's original kernel. Prints `RESULT <json>`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { setupBackend } from '../src/index.js';
import { backendMemory, kernelThreads, setKernelThreads } from '../src/kernels/runtime.js';
import { originalWasmBatchMatMul } from '../src/kernels/wasm-batch-matmul.js';
import { Rng } from '../src/rng.js';

interface P {
  label: string;
  as: number[];
  bs: number[];
  ta: boolean;
  tb: boolean;
}

const PROBLEMS: P[] = [
  { label: 'linear 2-D 197x192·192x576', as: [197, 192], bs: [192, 576], ta: false, tb: false },
  { label: 'linear 3-D broadcast B [2,196,192]·[192,193]', as: [2, 196, 192], bs: [192, 193], ta: false, tb: false },
  { label: 'attention q·kᵀ [8,197,48]·[8,197,48]ᵀ', as: [8, 197, 48], bs: [8, 197, 48], ta: false, tb: true },
  { label: 'attention p·v [8,197,197]·[8,197,48]', as: [8, 197, 197], bs: [8, 197, 48], ta: false, tb: false },
  { label: 'weight grad xᵀ·dy [3000,40]ᵀ·[3000,33]', as: [3000, 40], bs: [3000, 33], ta: true, tb: false },
  { label: 'weight grad, B in place [3000,40]ᵀ·[3000,32]', as: [3000, 40], bs: [3000, 32], ta: true, tb: false },
  { label: 'long K, K split [5,4100]·[4100,7]', as: [5, 4100], bs: [4100, 7], ta: false, tb: false },
  { label: 'long K, K split, both flags [3,2300,9]ᵀ·[3,6,2300]ᵀ', as: [3, 2300, 9], bs: [3, 6, 2300], ta: true, tb: true },
  { label: 'odd 65x33x17 ta', as: [3, 33, 65], bs: [3, 33, 17], ta: true, tb: false },
  { label: 'odd [2,1]x[1,3] broadcast', as: [2, 1, 9, 5], bs: [1, 3, 5, 7], ta: false, tb: false },
  { label: 'single row 1x300x1', as: [1, 300], bs: [300, 1], ta: false, tb: false },
];

function dims(p: P) {
  const ra = p.as.length;
  const rb = p.bs.length;
  const M = p.ta ? p.as[ra - 1]! : p.as[ra - 2]!;
  const K = p.ta ? p.as[ra - 2]! : p.as[ra - 1]!;
  const N = p.tb ? p.bs[rb - 2]! : p.bs[rb - 1]!;
  return { M, K, N };
}

/** float64 reference and the float32 summation bound (K + 1)·2⁻²⁴·Σ|a·b| per element (NumPy broadcasting). */
function reference(p: P, a: Float32Array, b: Float32Array, outShape: number[]) {
  const { M, K, N } = dims(p);
  const outDims = outShape.slice(0, -2);
  const aDims = p.as.slice(0, -2);
  const bDims = p.bs.slice(0, -2);
  const idx = (o: number, ds: number[]) => {
    let r = o;
    let q = 0;
    let stride = 1;
    for (let d = outDims.length - 1; d >= 0; d--) {
      const c = r % outDims[d]!;
      r = Math.floor(r / outDims[d]!);
      const od = d - (outDims.length - ds.length);
      if (od >= 0) {
        if (ds[od] !== 1) q += c * stride;
        stride *= ds[od]!;
      }
    }
    return q;
  };
  const batch = outDims.reduce((x, y) => x * y, 1);
  const y = new Float64Array(batch * M * N);
  const bound = new Float64Array(batch * M * N);
  for (let o = 0; o < batch; o++) {
    const qa = idx(o, aDims) * M * K;
    const qb = idx(o, bDims) * K * N;
    for (let i = 0; i < M; i++)
      for (let j = 0; j < N; j++) {
        let s = 0;
        let sa = 0;
        for (let k = 0; k < K; k++) {
          const t = a[qa + (p.ta ? k * M + i : i * K + k)]! * b[qb + (p.tb ? j * K + k : k * N + j)]!;
          s += t;
          sa += Math.abs(t);
        }
        y[(o * M + i) * N + j] = s;
        bound[(o * M + i) * N + j] = (K + 1) * 2 ** -24 * sa + 1e-30;
      }
  }
  return { y, bound };
}

await setupBackend('wasm', { threads: 2 });
// Progress lines: when the child dies or hangs, the test's message shows how far it got.
console.log('PHASE backend started');
const backend = tf.backend();
const shared = backendMemory(backend)?.buffer instanceof SharedArrayBuffer;
const threads = kernelThreads(backend);
// Warm up: the pool's workers instantiate the kernels asynchronously (parallelFor runs on this thread until then).
tf.dispose(tf.matMul(tf.ones([64, 64]), tf.ones([64, 64])));
await new Promise((r) => setTimeout(r, 300));
const rng = new Rng(11);
const checks: { label: string; sameAs1: boolean; vsRef: number; vsOriginal: number }[] = [];
for (const p of PROBLEMS) {
  console.log(`PHASE ${p.label}`);
  const a = Float32Array.from({ length: p.as.reduce((x, y) => x * y, 1) }, () => rng.normal());
  const b = Float32Array.from({ length: p.bs.reduce((x, y) => x * y, 1) }, () => rng.normal());
  const at = tf.tensor(a, p.as);
  const bt = tf.tensor(b, p.bs);
  setKernelThreads(1);
  const y1 = tf.matMul(at, bt, p.ta, p.tb);
  setKernelThreads(2);
  const y2 = tf.matMul(at, bt, p.ta, p.tb);
  setKernelThreads(null);
  const d1 = (await y1.data()) as Float32Array;
  const d2 = (await y2.data()) as Float32Array;
  const ref = reference(p, a, b, y1.shape);
  let vsRef = 0;
  for (let i = 0; i < d2.length; i++) vsRef = Math.max(vsRef, Math.abs(d2[i]! - ref.y[i]!) / ref.bound[i]!);
  // tfjs' own kernel (its flattened-batch indexing is wrong for [2,1]x[1,3]: compare where it is defined).
  let vsOriginal = 0;
  if (!p.label.includes('[2,1]x[1,3]')) {
    const o = originalWasmBatchMatMul()!({ inputs: { a: at, b: bt }, backend, attrs: { transposeA: p.ta, transposeB: p.tb } }) as tf.TensorInfo;
    const ot = tf.engine().makeTensorFromTensorInfo(o);
    const od = (await ot.data()) as Float32Array;
    for (let i = 0; i < d2.length; i++) vsOriginal = Math.max(vsOriginal, Math.abs(d2[i]! - od[i]!) / (2 * ref.bound[i]!));
    ot.dispose();
  }
  let same = d1.length === d2.length;
  const u1 = new Uint32Array(d1.buffer, d1.byteOffset, d1.length);
  const u2 = new Uint32Array(d2.buffer, d2.byteOffset, d2.length);
  for (let i = 0; same && i < u1.length; i++) same = u1[i] === u2[i];
  checks.push({ label: p.label, sameAs1: same, vsRef, vsOriginal });
  tf.dispose([at, bt, y1, y2]);
}
console.log(`RESULT ${JSON.stringify({ threads, shared, checks })}`);
