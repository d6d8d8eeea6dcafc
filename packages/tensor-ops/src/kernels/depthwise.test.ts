/**
 * Depth-wise convolution (forward, with and without a fused bias, and both gradients) against a float64
 * definition written here, for 7×7 and 3×3 filters, channel counts around the f32x4 blocks (1, 3, 4, 5, 40, 41),
 * odd and tiny maps (1, 2, 3, 7, 9), batch 1 and 3, and every padding form. On wasm this exercises softbias'
 * kernels (depthwise.c) and also compares them with tfjs-backend-wasm's original kernels and the legacy gradient
 * routes; on cpu and webgpu the same spec checks tfjs' own kernels against the definition. A child process runs
 * the kernels with 2 threads (results must equal 1 thread bit for bit).
 */
import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { fileURLToPath } from 'node:url';
import { describeBackend, currentBackend, expectClose, expectNoLeak } from '@softbias/test-utils';
import { runTsInChild } from '../../../../test-utils/child.js';
import { Rng } from '../rng.js';
import { originalWasmDepthwiseConv2d, originalWasmFusedDepthwiseConv2d, registerWasmDepthwiseConv2d } from './depthwise.js';
import { legacyDepthwiseBackpropFilter, legacyDepthwiseBackpropInput } from './wasm-conv-backprop.js';

type Pad = 'same' | 'valid' | number | [[0, 0], [number, number], [number, number], [0, 0]];

/** Output size and leading pad of one axis (stride 1, dilation 1), as tfjs defines them. */
function axis(n: number, k: number, pad: Pad, ax: 1 | 2): { out: number; before: number } {
  if (pad === 'valid') return { out: n - k + 1, before: 0 };
  if (pad === 'same') return { out: n, before: Math.floor((k - 1) / 2) };
  if (typeof pad === 'number') return { out: n + 2 * pad - k + 1, before: pad };
  const [b, a] = pad[ax];
  return { out: n + b + a - k + 1, before: b };
}

function randn(rng: Rng, n: number): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal();
  return Float64Array.from(Float32Array.from(a)); // the values the float32 tensors hold
}

interface Ref {
  y: Float64Array;
  yBound: Float64Array;
  dx: Float64Array;
  dxBound: Float64Array;
  dw: Float64Array;
  dwBound: Float64Array;
  outShape: number[];
}

const U = 2 ** -24;

/**
 * y = conv(x, w) + bias and the gradients of L = Σ y·r, in float64, by scattering every (output, tap) product
 * (the kernels gather); with each element's float32 rounding bound (n + 1)·u·Σ|terms| (n terms, any order).
 */
function reference(x: Float64Array, xs: number[], w: Float64Array, k: number, bias: Float64Array | null, r: Float64Array | null, pad: Pad): Ref {
  const [B, H, W, C] = xs as [number, number, number, number];
  const gy = axis(H, k, pad, 1);
  const gx = axis(W, k, pad, 2);
  const n = B * gy.out * gx.out * C;
  const y = new Float64Array(n);
  const ya = new Float64Array(n);
  const dx = new Float64Array(x.length);
  const dxa = new Float64Array(x.length);
  const dxn = new Float64Array(x.length);
  const dw = new Float64Array(w.length);
  const dwa = new Float64Array(w.length);
  let dwn = 0;
  for (let b = 0; b < B; b++)
    for (let oy = 0; oy < gy.out; oy++)
      for (let ox = 0; ox < gx.out; ox++) {
        dwn++;
        for (let ky = 0; ky < k; ky++)
          for (let kx = 0; kx < k; kx++) {
            const iy = oy - gy.before + ky;
            const ix = ox - gx.before + kx;
            if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
            for (let c = 0; c < C; c++) {
              const o = ((b * gy.out + oy) * gx.out + ox) * C + c;
              const xi = ((b * H + iy) * W + ix) * C + c;
              const wi = (ky * k + kx) * C + c;
              y[o] += x[xi]! * w[wi]!;
              ya[o] += Math.abs(x[xi]! * w[wi]!);
              if (r) {
                dx[xi] += r[o]! * w[wi]!;
                dxa[xi] += Math.abs(r[o]! * w[wi]!);
                dxn[xi]++;
                dw[wi] += r[o]! * x[xi]!;
                dwa[wi] += Math.abs(r[o]! * x[xi]!);
              }
            }
          }
      }
  const yBound = new Float64Array(n);
  for (let o = 0; o < n; o++) {
    const bv = bias ? bias[o % C]! : 0;
    y[o] += bv;
    yBound[o] = (k * k + 2) * U * (ya[o]! + Math.abs(bv)) + 1e-30;
  }
  const dxBound = Float64Array.from(dxa, (a, i) => (dxn[i]! + 1) * U * a + 1e-30);
  const dwBound = Float64Array.from(dwa, (a) => (dwn + 1) * U * a + 1e-30);
  return { y, yBound, dx, dxBound, dw, dwBound, outShape: [B, gy.out, gx.out, C] };
}

/** Every element within the float32 rounding bound of the float64 value (the kernels' exactness claim). */
function expectWithinRounding(got: ArrayLike<number>, want: Float64Array, bound: Float64Array, label: string): void {
  let worst = 0;
  let at = -1;
  for (let i = 0; i < want.length; i++) {
    const ratio = Math.abs(got[i]! - want[i]!) / bound[i]!;
    if (!(ratio <= worst)) {
      worst = Number.isNaN(ratio) ? Infinity : ratio;
      at = i;
    }
  }
  expect(worst, `${label}: worst |error| / float32 rounding bound (at ${at})`).toBeLessThanOrEqual(1);
}

const tol = (e: Float64Array) => 1e-4 * Math.max(1, ...Array.from(e, Math.abs));
const prod = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

interface Case {
  xs: [number, number, number, number];
  k: number;
  pad: Pad;
}

/** Kernel sizes × channel counts × maps, batch 1 and 3, padding forms cycled (valid only where it fits). */
function cases(): Case[] {
  const out: Case[] = [];
  const maps: [number, number][] = [
    [1, 1],
    [2, 3],
    [3, 2],
    [7, 9],
    [9, 7],
  ];
  let i = 0;
  for (const k of [7, 3])
    for (const C of [1, 3, 4, 5, 40, 41])
      for (const [H, W] of maps) {
        const B = i % 2 === 0 ? 1 : 3;
        // 'same'; a number past 'same' (output larger than the input); explicit asymmetric pads; pads of k or more
        // (the input gradient then crops dy); 'valid' where it fits.
        const pads: Pad[] = [
          'same',
          (k - 1) / 2 + 1,
          [[0, 0], [k - 1, 0], [1, k - 2], [0, 0]],
          [[0, 0], [k, 0], [0, k + 1], [0, 0]],
        ];
        if (H >= k && W >= k) pads.push('valid');
        out.push({ xs: [B, H, W, C], k, pad: pads[i % pads.length]! });
        i++;
      }
  return out;
}

const padName = (p: Pad) => (typeof p === 'string' || typeof p === 'number' ? String(p) : JSON.stringify(p.slice(1, 3)));

describeBackend('depth-wise convolution vs a float64 definition', () => {
  it.runIf(currentBackend === 'wasm')('wasm: the forward kernels are softbias\' (registering again is a no-op), the originals reachable', () => {
    for (const k of [tf.DepthwiseConv2dNative, tf.FusedDepthwiseConv2D]) {
      expect((tf.getKernel(k, 'wasm')!.kernelFunc as { softbias?: boolean }).softbias, k).toBe(true);
    }
    expect(registerWasmDepthwiseConv2d()).toBe(false);
    expect(originalWasmDepthwiseConv2d()).toBeTypeOf('function');
    expect(originalWasmFusedDepthwiseConv2d()).toBeTypeOf('function');
  });

  for (const c of cases()) {
    const label = `depthwise/${c.xs.join('x')}/k${c.k}/${padName(c.pad)}`;
    it(`${c.xs.join('×')} k${c.k} pad ${padName(c.pad)}: forward (+ bias), dx, dW`, async () => {
      const rng = new Rng(prod(c.xs) + c.k);
      const C = c.xs[3];
      const ws = [c.k, c.k, C, 1] as [number, number, number, number];
      const x = randn(rng, prod(c.xs));
      const w = randn(rng, prod(ws));
      const bias = randn(rng, C);
      const probe = reference(x, c.xs, w, c.k, null, null, c.pad);
      const r = randn(rng, prod(probe.outShape));
      const ref = reference(x, c.xs, w, c.k, null, r, c.pad);
      const refB = reference(x, c.xs, w, c.k, bias, null, c.pad);
      await expectNoLeak(async () => {
        const xt = tf.tensor4d(Float32Array.from(x), c.xs);
        const wt = tf.tensor4d(Float32Array.from(w), ws);
        const bt = tf.tensor1d(Float32Array.from(bias));
        const rt = tf.tensor(Float32Array.from(r), probe.outShape);
        const y = tf.depthwiseConv2d(xt, wt, 1, c.pad);
        const yb = tf.fused.depthwiseConv2d({ x: xt, filter: wt, strides: 1, pad: c.pad as 'same' /* tfjs' type omits explicit padding, which its kernels take */, bias: bt });
        const [gx, gw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.depthwiseConv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, c.pad), rt)))([xt, wt]);
        await expectClose(y, ref.y, tol(ref.y), `${label}/y`, ref.outShape);
        await expectClose(yb, refB.y, tol(refB.y), `${label}/y+bias`, ref.outShape);
        await expectClose(gx!, ref.dx, tol(ref.dx), `${label}/dx`, c.xs);
        await expectClose(gw!, ref.dw, tol(ref.dw), `${label}/dw`, ws);
        if (currentBackend === 'wasm') {
          expectWithinRounding(await y.data(), ref.y, ref.yBound, `${label}/y`);
          expectWithinRounding(await yb.data(), refB.y, refB.yBound, `${label}/y+bias`);
          expectWithinRounding(await gx!.data(), ref.dx, ref.dxBound, `${label}/dx`);
          expectWithinRounding(await gw!.data(), ref.dw, ref.dwBound, `${label}/dw`);
        }
        tf.dispose([xt, wt, bt, rt, y, yb, gx!, gw!]);
      });
    });
  }

  it.runIf(currentBackend === 'wasm')('wasm: agrees with the original XNNPACK forward and the legacy gradient routes', async () => {
    const be = tf.backend() as unknown as tf.KernelBackend;
    const eng = tf.engine() as unknown as { makeTensorFromTensorInfo(i: tf.TensorInfo): tf.Tensor };
    for (const [xs, k] of [
      [[3, 9, 7, 41], 7],
      [[2, 14, 14, 40], 7],
      [[1, 7, 9, 5], 3],
      [[3, 8, 8, 64], 3],
    ] as [[number, number, number, number], number][]) {
      const x = tf.randomNormal(xs, 0, 1, 'float32', 1);
      const w = tf.randomNormal([k, k, xs[3], 1], 0, 1, 'float32', 2);
      const dy = tf.randomNormal(xs, 0, 1, 'float32', 3);
      const attrs = { strides: [1, 1], pad: 'same', dilations: [1, 1] } as unknown as tf.NamedAttrMap;
      const y0 = eng.makeTensorFromTensorInfo(originalWasmDepthwiseConv2d()!({ inputs: { x, filter: w }, backend: be, attrs }) as tf.TensorInfo);
      const y1 = tf.depthwiseConv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'same');
      const dx0 = eng.makeTensorFromTensorInfo(legacyDepthwiseBackpropInput({ inputs: { dy, filter: w }, backend: be, attrs: { ...attrs, inputShape: xs } }));
      const dx1 = tf.engine().runKernel(tf.DepthwiseConv2dNativeBackpropInput, { dy, filter: w }, { ...attrs, inputShape: xs }) as tf.Tensor;
      const dw0 = eng.makeTensorFromTensorInfo(legacyDepthwiseBackpropFilter({ inputs: { x, dy }, backend: be, attrs: { ...attrs, filterShape: [k, k, xs[3], 1] } }));
      const dw1 = tf.engine().runKernel(tf.DepthwiseConv2dNativeBackpropFilter, { x, dy }, { ...attrs, filterShape: [k, k, xs[3], 1] }) as tf.Tensor;
      for (const [a, b, what] of [
        [y0, y1, 'y'],
        [dx0, dx1, 'dx'],
        [dw0, dw1, 'dw'],
      ] as const) {
        const want = Float64Array.from(await a.data());
        await expectClose(b, want, tol(want), `depthwise/vs-original/${xs.join('x')}/k${k}/${what}`, a.shape);
      }
      tf.dispose([x, w, dy, y0, y1, dx0, dx1, dw0, dw1]);
    }
  });

  it.runIf(currentBackend === 'wasm')('wasm: unsupported cases (stride 2, dilation 2, multiplier 2, activation) give the original kernel\'s result', async () => {
    const be = tf.backend() as unknown as tf.KernelBackend;
    const eng = tf.engine() as unknown as { makeTensorFromTensorInfo(i: tf.TensorInfo): tf.Tensor };
    const x = tf.randomNormal([2, 9, 8, 6], 0, 1, 'float32', 4);
    const w1 = tf.randomNormal([3, 3, 6, 1], 0, 1, 'float32', 5);
    const w2 = tf.randomNormal([3, 3, 6, 2], 0, 1, 'float32', 6);
    const bias = tf.randomNormal([6], 0, 1, 'float32', 7);
    for (const [w, strides, dilations] of [
      [w1, [2, 2], [1, 1]],
      [w1, [1, 1], [2, 2]],
      [w2, [1, 1], [1, 1]],
    ] as const) {
      const attrs = { strides, pad: 'same', dilations } as unknown as tf.NamedAttrMap;
      const y0 = eng.makeTensorFromTensorInfo(originalWasmDepthwiseConv2d()!({ inputs: { x, filter: w }, backend: be, attrs }) as tf.TensorInfo);
      const y1 = tf.engine().runKernel(tf.DepthwiseConv2dNative, { x, filter: w }, attrs) as tf.Tensor;
      expect(Array.from(await y1.data())).toEqual(Array.from(await y0.data()));
      tf.dispose([y0, y1]);
    }
    const attrs = { strides: [1, 1], pad: 'same', dilations: [1, 1], dataFormat: 'NHWC', activation: 'relu' } as unknown as tf.NamedAttrMap;
    const f0 = eng.makeTensorFromTensorInfo(originalWasmFusedDepthwiseConv2d()!({ inputs: { x, filter: w1, bias }, backend: be, attrs }) as tf.TensorInfo);
    const f1 = tf.fused.depthwiseConv2d({ x: x as tf.Tensor4D, filter: w1 as tf.Tensor4D, strides: 1, pad: 'same', bias, activation: 'relu' });
    expect(Array.from(await f1.data())).toEqual(Array.from(await f0.data()));
    tf.dispose([x, w1, w2, bias, f0, f1]);
  });

  it.runIf(currentBackend === 'wasm')('wasm: forward and gradients leave no backend data behind', () => {
    const backend = tf.backend() as unknown as { numDataIds(): number };
    const x = tf.randomNormal([2, 12, 10, 6]);
    const w7 = tf.randomNormal([7, 7, 6, 1]);
    const w3 = tf.randomNormal([3, 3, 6, 1]);
    const b = tf.randomNormal([6]);
    const run = () =>
      tf.tidy(() =>
        tf.grads((a: tf.Tensor, p: tf.Tensor, q: tf.Tensor) =>
          tf.add(
            tf.sum(tf.fused.depthwiseConv2d({ x: a as tf.Tensor4D, filter: p as tf.Tensor4D, strides: 1, pad: 'same', bias: b })),
            tf.sum(tf.depthwiseConv2d(a as tf.Tensor4D, q as tf.Tensor4D, 1, 'valid')),
          ),
        )([x, w7, w3]),
      );
    tf.dispose(run());
    const before = backend.numDataIds();
    for (let i = 0; i < 3; i++) tf.dispose(run());
    expect(backend.numDataIds()).toBe(before);
    tf.dispose([x, w7, w3, b]);
  });

  it.runIf(currentBackend === 'wasm')('wasm, 2 threads (child process): equal to 1 thread bit for bit, and to the originals (row form: to float64)', () => {
    const entry = fileURLToPath(new URL('../../test/depthwise-threads.child.ts', import.meta.url));
    const r = runTsInChild<{ threads: number; checks: { label: string; sameAs1: boolean; vsOriginal: number; atol: number }[] }>(entry, {
      timeoutMs: 120_000,
    });
    expect(r.result, r.how).toBeDefined();
    const res = r.result!;
    expect(res.threads).toBe(2);
    for (const c of res.checks) {
      expect(c.sameAs1, `${c.label}: 2 threads = 1 thread`).toBe(true);
      expect(c.vsOriginal, `${c.label}: vs original`).toBeLessThanOrEqual(c.atol);
    }
    expect(res.checks.length).toBe(18);
  });
});
