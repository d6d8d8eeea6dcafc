/**
 * The fused element-wise kernels (eltwise.c / eltwise.ts): exact GELU and LayerNorm over the last axis, forward
 * and gradients. On wasm: GELU against a float64 Φ (series / continued fraction written here) over a dense grid
 * of float32 inputs and special values; both ops against a float64 definition and against tfjs' op graph
 * (`geluOps`, `layerNormOps`, gradients by tf.grad on both) for last dimensions 1, 3, 5, 40, 192, 768 and odd row
 * counts; no tensor leaks; a child process with 2 threads (equal to 1 thread bit for bit). On cpu and webgpu:
 * `gelu`/`layerNorm` are tfjs' op graph unchanged (the fused kernels are wasm-only).
 */
import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { fileURLToPath } from 'node:url';
import { describeBackend, currentBackend, expectNoLeak } from '@softbias/test-utils';
import { runTsInChild } from '../../../../test-utils/child.js';
import { Rng } from '../rng.js';
import { gelu, geluOps } from '../layers/activation.js';
import { layerNorm, layerNormOps } from '../layers/norm.js';
import {
  GELU_KERNEL,
  LAYER_NORM_KERNEL,
  fusedEltwiseActive,
  layerNormGradParts,
  registerWasmEltwiseKernels,
  setFusedEltwise,
} from './eltwise.js';

// ---------------------------------------------------------------------------------------------------------
// float64 references
// ---------------------------------------------------------------------------------------------------------

const SQRTPI = Math.sqrt(Math.PI);
/** erf(z), z ≥ 0: 2/√π·e^{−z²}·Σ (2z²)ⁿ z/(2n+1)!! (positive terms, no cancellation). */
function erfSeries(z: number): number {
  let t = z;
  let s = z;
  const z2 = 2 * z * z;
  for (let n = 1; n < 1000; n++) {
    t *= z2 / (2 * n + 1);
    s += t;
    if (t < s * 1e-17) break;
  }
  return (2 / SQRTPI) * Math.exp(-z * z) * s;
}
/** erfc(z), z ≥ 3, by its continued fraction (200 terms, evaluated backwards). */
function erfcCF(z: number): number {
  let k = z;
  for (let n = 200; n >= 1; n--) k = z + n / 2 / k;
  return Math.exp(-z * z) / (SQRTPI * k);
}
/** Φ(x), the standard normal CDF, to ~1e-14 relative (checked against mpmath while writing this). */
export function normalCdf(x: number): number {
  if (x > 40) return 1;
  if (x < -40) return 0;
  if (x >= 0) return 0.5 + 0.5 * erfSeries(x / Math.SQRT2);
  const z = -x / Math.SQRT2;
  return z < 3 ? 0.5 * (1 - erfSeries(z)) : 0.5 * erfcCF(z);
}
const geluRef = (x: number) => (Number.isFinite(x) ? x * normalCdf(x) : x > 0 ? x : x < 0 ? 0 : NaN);
const geluGradRef = (x: number) => (x > 40 ? 1 : x < -40 ? 0 : normalCdf(x) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI));

/** The spacing of float32 values at |v| (2⁻¹⁴⁹ below the normal range). */
function ulp32(v: number): number {
  const a = Math.abs(v);
  if (a < 2 ** -126) return 2 ** -149;
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  if (2 ** (e + 1) <= a) e++;
  return 2 ** (e - 23);
}

function randn(rng: Rng, n: number, scale = 1, shift = 0): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = shift + scale * rng.normal();
  return a;
}

/** y = LayerNorm(x) (rows × c, float64), and the gradients of L = Σ y·r w.r.t. x, w, b. */
function layerNormRef(x: Float32Array, c: number, w: Float32Array, b: Float32Array, eps: number, r: Float32Array) {
  const rows = x.length / c;
  const y = new Float64Array(x.length);
  const dx = new Float64Array(x.length);
  const dw = new Float64Array(c);
  const db = new Float64Array(c);
  for (let i = 0; i < rows; i++) {
    let m = 0;
    for (let j = 0; j < c; j++) m += x[i * c + j]!;
    m /= c;
    let v = 0;
    for (let j = 0; j < c; j++) v += (x[i * c + j]! - m) ** 2;
    v /= c;
    const rs = 1 / Math.sqrt(v + eps);
    let sg = 0;
    let sgx = 0;
    for (let j = 0; j < c; j++) {
      const xh = (x[i * c + j]! - m) * rs;
      y[i * c + j] = xh * w[j]! + b[j]!;
      const g = r[i * c + j]! * w[j]!;
      sg += g;
      sgx += g * xh;
      dw[j] += r[i * c + j]! * xh;
      db[j] += r[i * c + j]!;
    }
    for (let j = 0; j < c; j++) {
      const xh = (x[i * c + j]! - m) * rs;
      dx[i * c + j] = rs * (r[i * c + j]! * w[j]! - sg / c - (xh * sgx) / c);
    }
  }
  return { y, dx, dw, db };
}

function maxErr(a: ArrayLike<number>, ref: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < ref.length; i++) m = Math.max(m, Math.abs(a[i]! - ref[i]!));
  return m;
}
function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

const LAST_DIMS = [1, 3, 5, 40, 192, 768];

describeBackend('fused element-wise kernels (GELU, LayerNorm)', () => {
  it.runIf(currentBackend !== 'wasm')('off wasm: gelu and layerNorm are tfjs op graph, unchanged', async () => {
    expect(fusedEltwiseActive(GELU_KERNEL)).toBe(false);
    expect(fusedEltwiseActive(LAYER_NORM_KERNEL)).toBe(false);
    const rng = new Rng(1);
    const x = tf.tensor(randn(rng, 3 * 5), [3, 5]);
    const w = tf.tensor(randn(rng, 5));
    const b = tf.tensor(randn(rng, 5));
    // Async reads: WebGPU in Node has no dataSync (it would need an OffscreenCanvas).
    const same = async (p: tf.Tensor, q: tf.Tensor) => expect(Array.from(await p.data())).toEqual(Array.from(await q.data()));
    await expectNoLeak(async () => {
      const pairs = tf.tidy(() => [
        [gelu(x), geluOps(x)],
        [layerNorm(x, w, b, 1e-6), layerNormOps(x, w, b, 1e-6)],
        [tf.grads((a: tf.Tensor) => tf.sum(gelu(a)))([x])[0]!, tf.grads((a: tf.Tensor) => tf.sum(geluOps(a)))([x])[0]!],
      ]);
      for (const [p, q] of pairs) await same(p!, q!);
      tf.dispose(pairs.flat());
    });
    tf.dispose([x, w, b]);
  });

  it.runIf(currentBackend === 'wasm')('wasm: registered, used by gelu/layerNorm, idempotent, op graph reachable', async () => {
    expect(registerWasmEltwiseKernels()).toEqual([]);
    expect(fusedEltwiseActive(GELU_KERNEL)).toBe(true);
    expect(fusedEltwiseActive(LAYER_NORM_KERNEL)).toBe(true);
    const x = tf.tensor([-1, 0.5, 2], [3]);
    const names = async (f: () => tf.Tensor) => {
      const p = await tf.profile(() => f());
      tf.dispose(p.result as tf.Tensor);
      return p.kernels.map((k) => k.name);
    };
    expect(await names(() => gelu(x))).toEqual([GELU_KERNEL]);
    expect(await names(() => layerNorm(x, null, null))).toContain(LAYER_NORM_KERNEL);
    setFusedEltwise(false);
    try {
      expect(fusedEltwiseActive()).toBe(false);
      expect(await names(() => gelu(x))).toContain('Erf');
      expect(await names(() => layerNorm(x, null, null))).not.toContain(LAYER_NORM_KERNEL);
    } finally {
      setFusedEltwise(true);
    }
    // Not float32: the op graph.
    const xi = tf.tensor([1, 2], [2], 'int32');
    expect(await names(() => gelu(xi))).not.toContain(GELU_KERNEL);
    tf.dispose([x, xi]);
  });

  it.runIf(currentBackend === 'wasm')('wasm GELU: dense float32 grid vs float64 (≤ 2.5e-7·max(1,|x|); ulp bounds for x > −1)', () => {
    // Every 997th float32 in [−16, 16], every 3rd in ±[0.9, 1.1] (the region boundary), and special values.
    const bits: number[] = [];
    const u32 = new Uint32Array(1);
    const f32 = new Float32Array(u32.buffer);
    f32[0] = 16;
    const top = u32[0]!;
    for (const sign of [0, 0x80000000]) {
      for (let k = 0; k <= top; k += 997) bits.push((k | sign) >>> 0);
      f32[0] = 0.9;
      const lo = u32[0]!;
      f32[0] = 1.1;
      const hi = u32[0]!;
      for (let k = lo; k <= hi; k += 3) bits.push((k | sign) >>> 0);
    }
    const xs = new Float32Array(new Uint32Array(bits).buffer);
    const x = tf.tensor(xs, [xs.length]);
    const [y, dx] = tf.tidy(() => {
      const y = gelu(x);
      const dx = tf.grad((a: tf.Tensor) => gelu(a))(x);
      return [y.dataSync(), dx.dataSync()];
    });
    const yOps = tf.tidy(() => geluOps(x).dataSync());
    x.dispose();
    let absN = 0;
    let opsAbsN = 0;
    let gradN = 0;
    const ulpMax = { negTail: 0, negSmall: 0, pos: 0 };
    for (let i = 0; i < xs.length; i++) {
      const v = xs[i]!;
      const r = geluRef(v);
      const e = Math.abs(y[i]! - r);
      absN = Math.max(absN, e / Math.max(1, Math.abs(v)));
      opsAbsN = Math.max(opsAbsN, Math.abs(yOps[i]! - r) / Math.max(1, Math.abs(v)));
      gradN = Math.max(gradN, Math.abs(dx[i]! - geluGradRef(v)) / Math.max(1, Math.abs(v)));
      if (Math.abs(r) >= 2 ** -126) {
        const eu = e / ulp32(r);
        const k = v >= 0 ? 'pos' : v > -1 ? 'negSmall' : 'negTail';
        ulpMax[k] = Math.max(ulpMax[k], eu);
      }
    }
    // The forward is PyTorch's float32 formula (x/2)·(1 + erf(x/√2)) with a rational erf (gelu.h): a few ulps of x
    // in absolute terms, traded for speed (a third of the operations of a relatively accurate Φ). Measured while
    // writing (this grid): |err|/max(1,|x|) 1.84e-7 (tfjs' op graph, Abramowitz–Stegun erf: 9.8e-8; the tanh
    // approximation: ~2e-4); ulps 2.5 (x ≥ 0), 5.3 (−1 < x < 0). For x ≤ −1, 1 + erf cancels (as in PyTorch's float32
    // GELU): no ulp bound there, only the absolute one. The gradient keeps the two-region Φ with relative accuracy
    // in the tail: 1.6e-7·max(1,|x|).
    expect(absN, 'GELU |err|/max(1,|x|)').toBeLessThanOrEqual(2.5e-7);
    expect(ulpMax.pos, 'GELU ulps, x ≥ 0').toBeLessThanOrEqual(4);
    expect(ulpMax.negSmall, 'GELU ulps, −1 < x < 0').toBeLessThanOrEqual(6);
    expect(gradN, "GELU' |err|/max(1,|x|)").toBeLessThanOrEqual(2e-7);
    // Within 2.5× of tfjs' op graph, and three orders of magnitude below the tanh approximation's error.
    expect(absN).toBeLessThanOrEqual(2.5 * opsAbsN);

    const special = Array.from(
      new Float32Array([0, -0, Infinity, -Infinity, NaN, 1e-30, -1e-30, 1e-45, -1e-45, 14.5, -14.5, 14.6, -14.6, 20, -20, 3e38, -3e38])
    );
    const s = tf.tensor(special);
    const [ys, gs] = tf.tidy(() => [
      gelu(s).dataSync(),
      tf
        .grad((a: tf.Tensor) => gelu(a))(s)
        .dataSync(),
    ]);
    s.dispose();
    const want = special.map(geluRef);
    for (let i = 0; i < special.length; i++) {
      if (Number.isNaN(want[i]!)) expect(ys[i], `gelu(${special[i]})`).toBeNaN();
      else if (!Number.isFinite(want[i]!)) expect(ys[i], `gelu(${special[i]})`).toBe(want[i]);
      else expect(Math.abs(ys[i]! - want[i]!), `gelu(${special[i]}) = ${ys[i]}`).toBeLessThanOrEqual(ulp32(want[i]!) * 1.01);
    }
    const wantG = special.map((v) => (Number.isNaN(v) ? NaN : geluGradRef(v)));
    for (let i = 0; i < special.length; i++) {
      if (Number.isNaN(wantG[i]!)) expect(gs[i]).toBeNaN();
      else expect(Math.abs(gs[i]! - wantG[i]!), `gelu'(${special[i]}) = ${gs[i]}`).toBeLessThanOrEqual(2e-7);
    }
  });

  it.runIf(currentBackend === 'wasm')(
    'wasm GELU: shapes with last dim 1…768, odd rows: forward and tf.grad vs op graph and float64',
    async () => {
      const rng = new Rng(7);
      for (const c of LAST_DIMS) {
        for (const rows of [1, 3, 7]) {
          const n = rows * c;
          const xs = randn(rng, n, 2);
          const rs = randn(rng, n);
          const x = tf.tensor(xs, [rows, c]);
          const r = tf.tensor(rs, [rows, c]);
          await expectNoLeak(() => {
            tf.tidy(() => {
              const loss = (f: (t: tf.Tensor) => tf.Tensor) => (a: tf.Tensor) => tf.sum(tf.mul(f(a), r));
              const y = gelu(x).dataSync();
              const yo = geluOps(x).dataSync();
              const g = tf.grad(loss(gelu))(x).dataSync();
              const go = tf.grad(loss(geluOps))(x).dataSync();
              const yRef = Array.from(xs, geluRef);
              const gRef = Array.from(xs, (v, i) => rs[i]! * geluGradRef(v));
              const label = `[${rows}, ${c}]`;
              expect(maxErr(y, yRef), `${label} y vs float64`).toBeLessThanOrEqual(2.5e-7 * Math.max(1, maxAbs(xs)));
              expect(maxErr(y, yo), `${label} y vs op graph`).toBeLessThanOrEqual(5e-7 * Math.max(1, maxAbs(xs)));
              expect(maxErr(g, gRef), `${label} dx vs float64`).toBeLessThanOrEqual(2e-7 * Math.max(1, maxAbs(xs)) * maxAbs(rs));
              expect(maxErr(g, go), `${label} dx vs op graph`).toBeLessThanOrEqual(1e-6 * Math.max(1, maxAbs(xs)) * maxAbs(rs));
            });
          }, `gelu [${rows}, ${c}]`);
          tf.dispose([x, r]);
        }
      }
      // Rank 4 and an empty tensor.
      const x4 = tf.tensor(randn(rng, 2 * 5 * 7 * 3), [2, 5, 7, 3]);
      await expectNoLeak(() =>
        tf.tidy(() => {
          expect(maxErr(gelu(x4).dataSync(), geluOps(x4).dataSync())).toBeLessThan(1e-6);
        })
      );
      x4.dispose();
      const e = tf.zeros([0, 4]);
      await expectNoLeak(() =>
        tf.tidy(() => {
          expect(gelu(e).shape).toEqual([0, 4]);
        })
      );
      e.dispose();
    }
  );

  it.runIf(currentBackend === 'wasm')(
    'wasm LayerNorm: last dim 1…768, odd rows, with/without weight and bias: forward and tf.grads vs op graph and float64',
    async () => {
      const rng = new Rng(11);
      const shapes: number[][] = [];
      for (const c of LAST_DIMS) for (const rows of [1, 3, 197]) shapes.push([rows, c]);
      shapes.push([2, 5, 7, 40], [3, 1, 1, 5], [1, 129, 192], [67, 40]); // 129·… rows: > 1 partial-sum block
      for (const shape of shapes) {
        const c = shape[shape.length - 1]!;
        const n = shape.reduce((p, q) => p * q, 1);
        const xs = randn(rng, n, 1.5, 0.7);
        const rs = randn(rng, n);
        const ws = randn(rng, c, 0.5, 1);
        const bs = randn(rng, c, 0.3);
        const x = tf.tensor(xs, shape);
        const r = tf.tensor(rs, shape);
        const w = tf.tensor(ws);
        const b = tf.tensor(bs);
        for (const eps of [1e-6, 1e-5]) {
          const ref = layerNormRef(xs, c, ws, bs, eps, rs);
          const label = `[${shape}] eps ${eps}`;
          await expectNoLeak(() => {
            tf.tidy(() => {
              const f = (ln: typeof layerNorm) => (a: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) => tf.sum(tf.mul(ln(a, ww, bb, eps), r));
              const y = layerNorm(x, w, b, eps).dataSync();
              const yo = layerNormOps(x, w, b, eps).dataSync();
              const [gx, gw, gb] = tf
                .grads(f(layerNorm))([x, w, b])
                .map((t) => t.dataSync());
              const [ox, ow, ob] = tf
                .grads(f(layerNormOps))([x, w, b])
                .map((t) => t.dataSync());
              const ya = Math.max(1, maxAbs(ref.y));
              expect(maxErr(y, ref.y), `${label} y vs float64`).toBeLessThanOrEqual(2e-6 * ya);
              expect(maxErr(y, yo), `${label} y vs op graph`).toBeLessThanOrEqual(4e-6 * ya);
              for (const [name, got, ops, want] of [
                ['dx', gx, ox, ref.dx],
                ['dw', gw, ow, ref.dw],
                ['db', gb, ob, ref.db],
              ] as const) {
                const s = Math.max(1, maxAbs(want));
                // C = 1: the row is constant, x̂ = 0, dx = 0 up to rounding of rstd·(g − g) (1000× with eps 1e-6).
                const tol = c === 1 && name === 'dx' ? 1e-3 : name === 'dx' ? 1e-5 : 1e-5;
                expect(maxErr(got!, want), `${label} ${name} vs float64`).toBeLessThanOrEqual(tol * s);
                expect(maxErr(got!, ops!), `${label} ${name} vs op graph`).toBeLessThanOrEqual(2 * tol * s);
              }
            });
          }, label);
        }
        // No weight / bias: ones and zeros.
        await expectNoLeak(() => {
          tf.tidy(() => {
            const y = layerNorm(x, null, null, 1e-6).dataSync();
            const yo = layerNormOps(x, null, null, 1e-6).dataSync();
            expect(maxErr(y, yo), `[${shape}] no affine`).toBeLessThanOrEqual(4e-6 * Math.max(1, maxAbs(yo)));
            const gx = tf
              .grad((a: tf.Tensor) => tf.sum(tf.mul(layerNorm(a, null, null, 1e-6), r)))(x)
              .dataSync();
            const ox = tf
              .grad((a: tf.Tensor) => tf.sum(tf.mul(layerNormOps(a, null, null, 1e-6), r)))(x)
              .dataSync();
            expect(maxErr(gx, ox), `[${shape}] no affine dx`).toBeLessThanOrEqual((c === 1 ? 2e-3 : 2e-5) * Math.max(1, maxAbs(ox)));
          });
        }, `[${shape}] no affine`);
        tf.dispose([x, r, w, b]);
      }
      expect(layerNormGradParts(1)).toBe(1);
      expect(layerNormGradParts(25088)).toBe(256);
    }
  );

  it.runIf(currentBackend === 'wasm')('wasm, 2 threads (child process): equal to 1 thread bit for bit, and close to the op graph', () => {
    const entry = fileURLToPath(new URL('../../test/eltwise-threads.child.ts', import.meta.url));
    const r = runTsInChild<{
      threads: number;
      checks: {
        label: string;
        sameAs1: boolean;
        vsOps: number;
        atol: number;
      }[];
    }>(entry, {
      timeoutMs: 120_000,
    });
    expect(r.result, r.how).toBeDefined();
    const res = r.result!;
    expect(res.threads).toBe(2);
    for (const c of res.checks) {
      expect(c.sameAs1, `${c.label}: 2 threads = 1 thread`).toBe(true);
      expect(c.vsOps, `${c.label}: vs op graph`).toBeLessThanOrEqual(c.atol);
    }
    expect(res.checks.length).toBe(12);
  });
});
