/**
 * BatchMatMul (forward and gradients) against a float64 definition written here, for odd sizes (1, 3, 5, 7, 9,
 * 17, 33, 65, …), every transpose combination, broadcast batch dimensions and long K (with and without the K
 * split). On wasm this exercises softbias' GEMM (gemm.c), also against tfjs-backend-wasm's original kernel and,
 * in a child process, on 2 threads (bit for bit equal to 1 thread); on cpu and webgpu tfjs' own kernels, so one
 * spec shows every backend agrees with the definition. Checks that only make sense for the wasm kernel
 * (routing, registration, scratch buffers, NumPy broadcasting beyond what tfjs' own kernels index correctly,
 * threads) run in the wasm project only.
 */
import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend, currentBackend, excludedHere, expectClose, expectNoLeak, reducedHere } from '@softbias/test-utils';
import { fileURLToPath } from 'node:url';
import { runTsInChild } from '../../../../test-utils/child.js';
import { Rng } from '../rng.js';
import {
  gemmBlocking,
  gemmKSplit,
  originalWasmBatchMatMul,
  registerWasmBatchMatMul,
  wasmBatchMatMulRoute,
  wasmGemmAvailable,
} from './wasm-batch-matmul.js';

const prod = (s: readonly number[]) => s.reduce((x, y) => x * y, 1);

function randn(rng: Rng, n: number): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal();
  return a;
}
function maxAbs(a: Float64Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}
/** Round to float32: the reference sees exactly the values the tensors hold. */
const f32 = (a: Float64Array) => Float64Array.from(Float32Array.from(a));

interface Problem {
  as: number[];
  bs: number[];
  ta: boolean;
  tb: boolean;
}

/** Output batch coordinates → flat batch index of an operand with batch dims `dims` (NumPy broadcasting). */
function batchIndex(o: number, outDims: number[], dims: number[]): number {
  let idx = 0;
  let stride = 1;
  let rem = o;
  for (let d = outDims.length - 1; d >= 0; d--) {
    const coord = rem % outDims[d]!;
    rem = Math.floor(rem / outDims[d]!);
    const od = d - (outDims.length - dims.length);
    if (od >= 0) {
      if (dims[od] !== 1) idx += coord * stride;
      stride *= dims[od]!;
    }
  }
  return idx;
}

function broadcastDims(x: number[], y: number[]): number[] {
  const n = Math.max(x.length, y.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const p = x[x.length - n + i] ?? 1;
    const q = y[y.length - n + i] ?? 1;
    if (p !== q && p !== 1 && q !== 1) throw new Error('not broadcastable');
    out.push(Math.max(p, q));
  }
  return out;
}

/**
 * y = op(a)·op(b) per broadcast batch in float64, with the per-element bound of float32 summation error
 * ((K + 1)·2⁻²⁴·Σ|a||b|), and the gradients of L = Σ y·r w.r.t. a and b (in their stored layouts).
 */
function reference(p: Problem, a: Float64Array, b: Float64Array, r?: Float64Array) {
  const ra = p.as.length;
  const rb = p.bs.length;
  const M = p.ta ? p.as[ra - 1]! : p.as[ra - 2]!;
  const K = p.ta ? p.as[ra - 2]! : p.as[ra - 1]!;
  const N = p.tb ? p.bs[rb - 2]! : p.bs[rb - 1]!;
  const aDims = p.as.slice(0, -2);
  const bDims = p.bs.slice(0, -2);
  const outDims = broadcastDims(aDims, bDims);
  const batch = prod(outDims);
  // Index of op(a)[q, i, k] and op(b)[q, k, j] in the stored arrays.
  const ai = (q: number, i: number, k: number) => q * M * K + (p.ta ? k * M + i : i * K + k);
  const bi = (q: number, k: number, j: number) => q * K * N + (p.tb ? j * K + k : k * N + j);
  const y = new Float64Array(batch * M * N);
  const bound = new Float64Array(batch * M * N);
  const da = new Float64Array(a.length);
  const db = new Float64Array(b.length);
  for (let o = 0; o < batch; o++) {
    const qa = batchIndex(o, outDims, aDims);
    const qb = batchIndex(o, outDims, bDims);
    for (let i = 0; i < M; i++)
      for (let j = 0; j < N; j++) {
        let s = 0;
        let sa = 0;
        const rv = r ? r[(o * M + i) * N + j]! : 0;
        for (let k = 0; k < K; k++) {
          const x = a[ai(qa, i, k)]!;
          const w = b[bi(qb, k, j)]!;
          s += x * w;
          sa += Math.abs(x * w);
          if (r) {
            da[ai(qa, i, k)] += rv * w;
            db[bi(qb, k, j)] += rv * x;
          }
        }
        y[(o * M + i) * N + j] = s;
        bound[(o * M + i) * N + j] = (K + 1) * 2 ** -24 * sa + 1e-30;
      }
  }
  return { y, bound, da, db, outShape: [...outDims, M, N] };
}

/** Every element within the float32 summation bound of the float64 value (the kernel's exactness claim). */
function expectWithinRounding(got: Float32Array, want: Float64Array, bound: Float64Array, label: string): number {
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const ratio = Math.abs(got[i]! - want[i]!) / bound[i]!;
    if (!(ratio <= worst)) worst = Number.isNaN(ratio) ? Infinity : ratio;
  }
  expect(worst, `${label}: worst |error| / float32 summation bound`).toBeLessThanOrEqual(1);
  return worst;
}

async function checkForward(p: Problem, seed: number, label: string, vsOriginal = false): Promise<void> {
  const rng = new Rng(seed);
  const a = f32(randn(rng, prod(p.as)));
  const b = f32(randn(rng, prod(p.bs)));
  const ref = reference(p, a, b);
  await expectNoLeak(async () => {
    const at = tf.tensor(Float32Array.from(a), p.as);
    const bt = tf.tensor(Float32Array.from(b), p.bs);
    const y = tf.matMul(at, bt, p.ta, p.tb);
    expect(y.shape).toEqual(ref.outShape);
    const got = (await y.data()) as Float32Array;
    // The rounding bound is softbias' kernel's claim (float32 sums in order, no FMA); other backends' matmuls
    // (WebGPU shaders on SwiftShader, tfjs-cpu) are held to the tolerance rule below.
    if (currentBackend === 'wasm') expectWithinRounding(got, ref.y, ref.bound, label);
    await expectClose(got, ref.y, 1e-4 * Math.max(1, maxAbs(ref.y)), `batch-matmul/${label}`, ref.outShape);
    if (vsOriginal && currentBackend === 'wasm') {
      // tfjs-backend-wasm's own kernel: both within rounding of the definition, so within twice of each other.
      const o = originalWasmBatchMatMul()!({ inputs: { a: at, b: bt }, backend: tf.backend(), attrs: { transposeA: p.ta, transposeB: p.tb } });
      const ot = tf.engine().makeTensorFromTensorInfo(o as tf.TensorInfo);
      const od = (await ot.data()) as Float32Array;
      let worst = 0;
      for (let i = 0; i < od.length; i++) worst = Math.max(worst, Math.abs(got[i]! - od[i]!) / (2 * ref.bound[i]!));
      expect(worst, `${label}: |softbias − tfjs original| / (2 · rounding bound)`).toBeLessThanOrEqual(1);
      ot.dispose();
    }
    tf.dispose([at, bt, y]);
  });
}

async function checkGradients(p: Problem, seed: number, label: string): Promise<void> {
  const rng = new Rng(seed);
  const a = f32(randn(rng, prod(p.as)));
  const b = f32(randn(rng, prod(p.bs)));
  const probe = reference(p, new Float64Array(a.length), new Float64Array(b.length));
  const r = f32(randn(rng, prod(probe.outShape)));
  const ref = reference(p, a, b, r);
  await expectNoLeak(async () => {
    const at = tf.tensor(Float32Array.from(a), p.as);
    const bt = tf.tensor(Float32Array.from(b), p.bs);
    const rt = tf.tensor(Float32Array.from(r), ref.outShape);
    const [ga, gb] = tf.grads((x: tf.Tensor, w: tf.Tensor) => tf.sum(tf.mul(tf.matMul(x, w, p.ta, p.tb), rt)))([at, bt]);
    const tol = (e: Float64Array) => 1e-4 * Math.max(1, maxAbs(e));
    await expectClose(ga!, ref.da, tol(ref.da), `batch-matmul-grad/${label}/da`, p.as);
    await expectClose(gb!, ref.db, tol(ref.db), `batch-matmul-grad/${label}/db`, p.bs);
    tf.dispose([at, bt, rt, ga!, gb!]);
  });
}

const FLAGS: [boolean, boolean][] = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
];

/** [batch dims, M, K, N] with the odd sizes the tiles must cover (1, 3, 17, 49, 50). */
const SIZES: [number[], number, number, number][] = [
  [[2], 1, 1, 1],
  [[3], 3, 17, 50],
  [[2], 17, 3, 49],
  [[2, 2], 49, 16, 49],
  [[2], 50, 49, 3],
  [[1], 5, 7, 9],
  [[2], 4, 0, 8],
];

function shapes(batch: number[], M: number, K: number, N: number, ta: boolean, tb: boolean) {
  return { as: [...batch, ...(ta ? [K, M] : [M, K])], bs: [...batch, ...(tb ? [N, K] : [K, N])] };
}

describeBackend('BatchMatMul vs a float64 definition', () => {
  for (const [batch, M, K, N] of SIZES)
    for (const [ta, tb] of FLAGS) {
      const label = `[${batch}] ${M}x${K}x${N} ta=${ta} tb=${tb}`;
      it(`forward ${label}`, async () => {
        await checkForward({ ...shapes(batch, M, K, N, ta, tb), ta, tb }, 7 + M + 3 * N, label, true);
      });
    }

  // Odd sizes on every side (the 4 × 8 tile's edges in M and N, k steps of any count), rank 2 and batched.
  const ODD = [1, 3, 5, 7, 9, 17, 33, 65];
  for (let q = 0; q < ODD.length; q++) {
    const [M, K, N] = [ODD[q]!, ODD[(q + 3) % ODD.length]!, ODD[(q + 6) % ODD.length]!];
    for (const [ta, tb] of FLAGS) {
      const batch = q % 2 ? [2] : [];
      const label = `odd [${batch}] ${M}x${K}x${N} ta=${ta} tb=${tb}`;
      it(`forward ${label}`, async () => checkForward({ ...shapes(batch, M, K, N, ta, tb), ta, tb }, 100 + q, label, true));
    }
  }

  // Long K: k blocks of 256 continued from the stored partial sums, and (tiny outputs) the K split.
  const LONG: [number[], number, number, number][] = [
    [[], 40, 2500, 33], // 50 tiles, K ≥ 8·max(M, N): K split in 2 chunks
    [[], 400, 2500, 333], // many tiles: k blocks only
    [[], 5, 3000, 7], // 2 tiles: K split in 2 chunks
    [[3], 3, 4100, 9], // 6 tiles: 4 chunks
    [[], 1, 2049, 1],
    // B read in place (row-major, N a multiple of 8, fewer than 128 rows): k blocks, K split, a batch of B
    [[], 40, 2500, 32],
    [[2], 5, 2100, 8],
    [[3], 9, 17, 16],
  ];
  for (const [batch, M, K, N] of LONG)
    for (const [ta, tb] of [FLAGS[0]!, FLAGS[3]!]) {
      const label = `long K [${batch}] ${M}x${K}x${N} ta=${ta} tb=${tb}`;
      it.skipIf(tb && excludedHere('tensor-ops/batch-matmul/long-K-transposeB'))(`forward ${label}`, async () => checkForward({ ...shapes(batch, M, K, N, ta, tb), ta, tb }, 200 + M, label, true));
    }

  // Broadcasts every tfjs kernel indexes correctly: rank difference, and a batch of 1 on one side.
  const BROADCASTS: Problem[] = [
    { as: [4, 3, 5, 7], bs: [7, 6], ta: false, tb: false },
    { as: [5, 7], bs: [2, 3, 7, 6], ta: false, tb: false },
    { as: [1, 5, 7], bs: [3, 6, 7], ta: false, tb: true },
    { as: [2, 3, 7, 5], bs: [1, 1, 7, 6], ta: true, tb: false },
    { as: [3, 9, 4], bs: [2, 3, 4, 10], ta: false, tb: false },
  ];
  for (const p of BROADCASTS) {
    const label = `broadcast [${p.as}]x[${p.bs}] ta=${p.ta} tb=${p.tb}`;
    it(`forward ${label}`, async () => checkForward(p, 3, label));
  }

  it('forward: large batch, ConViT attention shapes (batch 64 × 4 heads on wasm and cpu, 8 × 4 on webgpu)', async () => {
    const B = reducedHere('tensor-ops/batch-matmul/attention-batch') ? 8 : 64;
    await checkForward({ as: [B, 4, 49, 16], bs: [B, 4, 16, 49], ta: false, tb: false }, 1, 'attention q·kT');
    await checkForward({ as: [B, 4, 49, 49], bs: [B, 4, 49, 16], ta: false, tb: false }, 2, 'attention p·v');
    await checkForward({ as: [B, 4, 49, 16], bs: [B, 4, 49, 16], ta: false, tb: true }, 3, 'attention q·k transposeB');
  });

  for (const [ta, tb] of FLAGS) {
    it(`gradients flow through matMul (ta=${ta}, tb=${tb}), odd sizes and a broadcast operand`, async () => {
      await checkGradients({ ...shapes([2, 3], 17, 5, 3, ta, tb), ta, tb }, 21, `[2,3] 17x5x3 ta=${ta} tb=${tb}`);
      const b = shapes([3], 9, 4, 10, ta, tb);
      await checkGradients({ as: b.as, bs: [2, ...b.bs], ta, tb }, 22, `[3]x[2,3] 9x4x10 ta=${ta} tb=${tb}`);
    });
  }

  // NumPy broadcasting with a 1 inside the batch dims of both operands: tfjs' own kernels flatten the batch and
  // index it modulo each operand's size, which is wrong here; softbias's wasm kernel broadcasts correctly.
  it.runIf(currentBackend === 'wasm')('wasm: NumPy broadcasting of interleaved 1-dims ([2,1]x[1,3])', async () => {
    await checkForward({ as: [2, 1, 5, 4], bs: [1, 3, 4, 6], ta: false, tb: false }, 4, 'broadcast [2,1]x[1,3]');
    await checkForward({ as: [3, 1, 2, 4, 5], bs: [2, 1, 9, 4], ta: true, tb: true }, 5, 'broadcast [3,1,2]x[2,1]');
  });

  it.runIf(currentBackend === 'wasm')('wasm: the GEMM is registered once, routes every float32 product, keeps the original reachable', async () => {
    const k = tf.getKernel('BatchMatMul', 'wasm')!;
    expect((k.kernelFunc as { softbias?: boolean }).softbias).toBe(true);
    expect(k.setupFunc, 'the original setup (its cwrap) is kept').toBeDefined();
    expect(registerWasmBatchMatMul()).toBe(false);
    expect(originalWasmBatchMatMul()).not.toBeNull();
    expect(wasmGemmAvailable(tf.backend()), 'bound to the backend memory').toBe(true);
    for (const threads of [1, 2]) {
      expect(wasmBatchMatMulRoute([49, 16], [16, 49], false, false, threads)).toBe('simd');
      expect(wasmBatchMatMulRoute([3136, 768], [768, 192], false, false, threads)).toBe('simd');
      expect(wasmBatchMatMulRoute([2, 49, 300], [300, 49], false, true, threads)).toBe('simd');
    }
    // A flag-free 2-D product XNNPACK used to run: agrees with it within rounding.
    await checkForward({ as: [33, 300], bs: [300, 11], ta: false, tb: false }, 9, 'vs XNNPACK 33x300x11', true);
  });

  it('blocking: units cover the products, ~8 per thread; the K split depends on the shape only', () => {
    expect(gemmBlocking(1, 3136, 576, 1)).toEqual({ mb: 3136, pb: 72, units: 1 });
    const two = gemmBlocking(1, 3136, 576, 2);
    expect(two.units).toBeGreaterThanOrEqual(16);
    expect(two.mb % 4).toBe(0);
    expect(gemmBlocking(256, 197, 197, 2)).toEqual({ mb: 200, pb: 25, units: 256 });
    const wg = gemmBlocking(1, 40, 160, 2); // wider than tall: cut the panels first
    expect(wg.units).toBeGreaterThanOrEqual(8);
    expect(wg.mb).toBe(40);
    expect(gemmKSplit(1, 40, 160, 25088)).toEqual({ chunks: 20, chunk: 1280 }); // weight gradient: K ≥ 8·max(M, N)
    expect(gemmKSplit(1, 40, 160, 1279).chunks).toBe(1);
    expect(gemmKSplit(1, 192, 576, 4000).chunks).toBe(1); // 1728 tiles, K < 8·576
    expect(gemmKSplit(1, 5, 7, 3000)).toEqual({ chunks: 2, chunk: 1536 });
    expect(gemmKSplit(1, 5, 7, 2047).chunks).toBe(1);
  });

  it.runIf(currentBackend === 'wasm')('wasm, 2 threads (child process): bit for bit equal to 1 thread, within rounding of float64 and of the original', () => {
    const entry = fileURLToPath(new URL('../../test/batch-matmul-threads.child.ts', import.meta.url));
    const r = runTsInChild<{ threads: number; shared: boolean; checks: { label: string; sameAs1: boolean; vsRef: number; vsOriginal: number }[] }>(
      entry,
      { timeoutMs: 120_000 },
    );
    expect(r.result, r.how).toBeDefined();
    const res = r.result!;
    expect(res.threads).toBe(2);
    expect(res.shared, 'shared memory (threaded build)').toBe(true);
    for (const c of res.checks) {
      expect(c.sameAs1, `${c.label}: 2 threads = 1 thread bit for bit`).toBe(true);
      expect(c.vsRef, `${c.label}: |error| / float32 summation bound`).toBeLessThanOrEqual(1);
      expect(c.vsOriginal, `${c.label}: |softbias − original| / (2 · bound)`).toBeLessThanOrEqual(1);
    }
    expect(res.checks.length).toBe(11);
  }, 250_000);

  it.runIf(currentBackend === 'wasm')('wasm: no scratch buffers left (backend data ids return to baseline)', () => {
    const backend = tf.backend() as unknown as { numDataIds(): number };
    const a = tf.randomNormal([3, 17, 5]);
    const b = tf.randomNormal([3, 9, 5]);
    const run = () => tf.tidy(() => tf.grads((x: tf.Tensor, w: tf.Tensor) => tf.sum(tf.matMul(x, w, false, true)))([a, b]));
    tf.dispose(run());
    const before = backend.numDataIds();
    for (let i = 0; i < 3; i++) tf.dispose(run());
    expect(backend.numDataIds()).toBe(before);
    tf.dispose([a, b]);
  });

  it.runIf(currentBackend === 'wasm')('wasm: non-float32 inputs go to the original kernel (which refuses them)', () => {
    const a = tf.ones([2, 3, 4], 'int32');
    const b = tf.ones([2, 4, 5], 'int32');
    expect(() => tf.matMul(a, b)).toThrow(/float32/);
    tf.dispose([a, b]);
  });
});

describeBackend('linear / linearGelu (SoftbiasLinear on wasm: bias and GELU in the GEMM epilogue)', () => {
  // (rows, in, out): a full-tile case, edge rows, edge columns (N < 8, N % 8 ≠ 0), ConvNeXt's K = 40 and ConViT's 192.
  const shapes: [number, number, number][] = [
    [1, 3, 1],
    [5, 7, 13],
    [8, 16, 8],
    [197, 192, 768],
    [49, 40, 160],
    [33, 65, 7],
  ];
  // Host copies read asynchronously (webgpu in Node has no synchronous reads).
  const run = async (fn: () => tf.Tensor) => {
    const t = tf.tidy(fn);
    const d = (await t.data()) as Float32Array;
    t.dispose();
    return d;
  };
  const runAll = async (fn: () => tf.Tensor[]) => {
    const ts = tf.tidy(fn);
    const ds = await Promise.all(ts.map(async (t) => (await t.data()) as Float32Array));
    tf.dispose(ts);
    return ds;
  };
  it('equals matMul + add (+ gelu) bit for bit, forward and gradients, leaving no tensors', async () => {
    const { gelu } = await import('../layers/activation.js');
    const { linear, linearGelu } = await import('../layers/linear.js');
    const rng = new Rng(5);
    for (const [m, k, n] of shapes) {
      const x = tf.tensor(Float32Array.from(randn(rng, m * k)), [m, k]);
      const w = tf.tensor(Float32Array.from(randn(rng, k * n)), [k, n]);
      const b = tf.tensor(Float32Array.from(randn(rng, n)), [n]);
      const x3 = tf.reshape(x, [1, m, k]);
      const sep = await run(() => tf.add(tf.matMul(x, w), b));
      const sepG = await run(() => gelu(tf.add(tf.matMul(x, w), b)));
      await expectNoLeak(async () => {
        expect(await run(() => linear(x, w, b)), `linear [${m},${k}]x[${k},${n}]`).toEqual(sep);
        expect(await run(() => linear(x3, w, b)), 'linear rank 3').toEqual(sep);
        expect(await run(() => linearGelu(x, w, b)), `linearGelu [${m},${k}]x[${k},${n}]`).toEqual(sepG);
        expect(await run(() => linearGelu(x, w, null)), 'linearGelu without bias').toEqual(await run(() => gelu(tf.matMul(x, w))));
      });
      // Gradients: linearGelu records the GELU as its own kernel; both equal the separate ops' gradients.
      const loss = (f: (a: tf.Tensor, c: tf.Tensor, d: tf.Tensor) => tf.Tensor) => (a: tf.Tensor, c: tf.Tensor, d: tf.Tensor) => tf.sum(tf.mul(f(a, c, d), f(a, c, d)));
      const gFused = await runAll(() => tf.grads(loss((a, c, d) => linearGelu(a, c, d)))([x, w, b]));
      const gSep = await runAll(() => tf.grads(loss((a, c, d) => gelu(tf.add(tf.matMul(a, c), d))))([x, w, b]));
      for (let i = 0; i < 3; i++) expect(gFused[i], `gradient ${i} of [${m},${k}]x[${k},${n}]`).toEqual(gSep[i]);
      // Without a bias (ConViT's q, k, v).
      const gNb = await runAll(() => tf.grads((a: tf.Tensor, c: tf.Tensor) => tf.sum(tf.square(linear(a, c, null))))([x3, w]));
      const gNbSep = await runAll(() => tf.grads((a: tf.Tensor, c: tf.Tensor) => tf.sum(tf.square(tf.matMul(a, c))))([x, w]));
      for (let i = 0; i < 2; i++) expect(gNb[i], `no-bias gradient ${i}`).toEqual(gNbSep[i]);
      // Rank 3 (the kernel takes the leading dimensions as rows; its gradient reshapes back).
      const g3 = await runAll(() => tf.grads(loss((a, c, d) => linearGelu(a, c, d)))([x3, w, b]));
      for (let i = 0; i < 3; i++) expect(g3[i], `rank-3 gradient ${i} of [${m},${k}]x[${k},${n}]`).toEqual(gSep[i]);
      tf.dispose([x, w, b, x3]);
    }
  });
  it.runIf(currentBackend === 'wasm')('wasm: one SoftbiasLinear call at inference; under a gradient the GELU stays its own kernel', async () => {
    const { linear, linearGelu } = await import('../layers/linear.js');
    const { setFusedLinear } = await import('./wasm-batch-matmul.js');
    const x = tf.randomNormal([10, 24]);
    const w = tf.randomNormal([24, 16]);
    const b = tf.randomNormal([16]);
    const names = async (f: () => tf.Tensor) => (await tf.profile(() => tf.tidy(f))).kernelNames;
    expect(await names(() => linearGelu(x, w, b))).toEqual(['SoftbiasLinear']);
    expect(await names(() => linear(x, w, b))).toEqual(['SoftbiasLinear']);
    const underGrad = await tf.profile(() => tf.tidy(() => tf.grad((a: tf.Tensor) => tf.sum(linearGelu(a, w, b)))(x)));
    expect(underGrad.kernelNames).toContain('SoftbiasGelu');
    setFusedLinear(false);
    try {
      expect(await names(() => linearGelu(x, w, b))).toEqual(['BatchMatMul', 'Add', 'SoftbiasGelu']);
    } finally {
      setFusedLinear(true);
    }
    tf.dispose([x, w, b]);
  });
});
