/**
 * Convolution gradients on every backend against a plain-loop float64 definition written here. On wasm this
 * exercises softbias's kernels (tfjs-backend-wasm 4.22 has none for these three); on cpu and webgpu it checks
 * tfjs' own, so one spec proves all three backends agree with the definition.
 */
import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend, currentBackend, expectClose, expectNoLeak } from '@softbias/test-utils';
import { Rng } from '../rng.js';
import { registerWasmKernels, WASM_BACKPROP_KERNELS } from './wasm-conv-backprop.js';

type Pad = 'same' | 'valid' | [[0, 0], [number, number], [number, number], [0, 0]];

interface Geometry {
  out: number;
  before: number;
}

function geometry(n: number, k: number, s: number, d: number, pad: Pad, axis: 1 | 2): Geometry {
  const eff = (k - 1) * d + 1;
  if (pad === 'valid') return { out: Math.ceil((n - eff + 1) / s), before: 0 };
  if (pad === 'same') {
    const out = Math.ceil(n / s);
    const total = Math.max((out - 1) * s + eff - n, 0);
    return { out, before: Math.floor(total / 2) };
  }
  const [b, a] = pad[axis];
  return { out: Math.floor((n + b + a - eff) / s) + 1, before: b };
}

function randn(rng: Rng, n: number): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal();
  return a;
}

/**
 * Gradients of L = Σ conv(x, w) · R in float64 by scattering every (output, tap) product: the adjoint written
 * the other way round from the kernels (which gather).
 */
function convGradsF64(
  x: Float64Array,
  xs: number[],
  w: Float64Array,
  ws: number[],
  r: Float64Array,
  s: number,
  d: number,
  pad: Pad,
  depthwise: boolean,
): { dx: Float64Array; dw: Float64Array; outShape: number[] } {
  const [B, H, W, C] = xs as [number, number, number, number];
  const [KH, KW, , M] = ws as [number, number, number, number];
  const gy = geometry(H, KH, s, d, pad, 1);
  const gx = geometry(W, KW, s, d, pad, 2);
  const CO = depthwise ? C * M : M;
  const dx = new Float64Array(x.length);
  const dw = new Float64Array(w.length);
  for (let b = 0; b < B; b++)
    for (let oy = 0; oy < gy.out; oy++)
      for (let ox = 0; ox < gx.out; ox++)
        for (let ky = 0; ky < KH; ky++)
          for (let kx = 0; kx < KW; kx++) {
            const iy = oy * s - gy.before + ky * d;
            const ix = ox * s - gx.before + kx * d;
            if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
            for (let c = 0; c < C; c++)
              for (let m = 0; m < M; m++) {
                const co = depthwise ? c * M + m : m;
                const rv = r[((b * gy.out + oy) * gx.out + ox) * CO + co]!;
                const xi = ((b * H + iy) * W + ix) * C + c;
                const wi = ((ky * KW + kx) * C + c) * M + m;
                dx[xi] += rv * w[wi]!;
                dw[wi] += rv * x[xi]!;
              }
          }
  return { dx, dw, outShape: [B, gy.out, gx.out, CO] };
}

const f32 = (a: Float64Array) => Float32Array.from(a);

const CASES: { name: string; xs: number[]; k: number; m: number; s: number; pad: Pad }[] = [
  { name: 'ConvNeXt 7x7 same', xs: [2, 9, 8, 5], k: 7, m: 1, s: 1, pad: 'same' },
  { name: '7x7 on a map smaller than the kernel', xs: [1, 2, 3, 4], k: 7, m: 1, s: 1, pad: 'same' },
  { name: '3x3 stride 2 same, multiplier 2', xs: [2, 7, 6, 3], k: 3, m: 2, s: 2, pad: 'same' },
  { name: '3x3 valid, multiplier 3', xs: [1, 6, 7, 2], k: 3, m: 3, s: 1, pad: 'valid' },
  { name: '5x5 stride 2 explicit asymmetric', xs: [2, 9, 10, 3], k: 5, m: 1, s: 2, pad: [[0, 0], [2, 1], [0, 3], [0, 0]] },
  { name: '5x5 stride 1 explicit asymmetric, batch 3', xs: [3, 6, 8, 4], k: 5, m: 1, s: 1, pad: [[0, 0], [1, 3], [4, 0], [0, 0]] },
  { name: '3x3 stride 2 valid, multiplier 2', xs: [2, 8, 7, 3], k: 3, m: 2, s: 2, pad: 'valid' },
];

describeBackend('conv backprop kernels vs a float64 definition', () => {
  it.runIf(currentBackend === 'wasm')('wasm: the three kernels are registered; registering again is a no-op', () => {
    for (const k of WASM_BACKPROP_KERNELS) expect(tf.getKernel(k, 'wasm'), k).toBeDefined();
    expect(registerWasmKernels()).toEqual([]);
  });

  it.runIf(currentBackend === 'wasm')('wasm: the kernels free their scratch buffers (backend data ids return to baseline)', () => {
    const backend = tf.backend() as unknown as { numDataIds(): number };
    const x = tf.randomNormal([2, 12, 10, 6]);
    const w1 = tf.randomNormal([7, 7, 6, 1]);
    const w2 = tf.randomNormal([3, 3, 6, 2]);
    const w3 = tf.randomNormal([3, 3, 6, 5]);
    const run = () =>
      tf.tidy(() => {
        const f = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor, d: tf.Tensor) =>
          tf.add(
            tf.add(tf.sum(tf.depthwiseConv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, 'same')), tf.sum(tf.depthwiseConv2d(a as tf.Tensor4D, c as tf.Tensor4D, 2, 'valid'))),
            tf.sum(tf.conv2d(a as tf.Tensor4D, d as tf.Tensor4D, 1, 'same')),
          );
        return tf.grads(f)([x, w1, w2, w3]);
      });
    tf.dispose(run());
    const before = backend.numDataIds();
    for (let i = 0; i < 3; i++) tf.dispose(run());
    expect(backend.numDataIds()).toBe(before);
    tf.dispose([x, w1, w2, w3]);
  });

  for (const c of CASES) {
    it(`depthwise: ${c.name}`, async () => {
      const rng = new Rng(11);
      const ws = [c.k, c.k, c.xs[3]!, c.m];
      const x = randn(rng, c.xs.reduce((a, b) => a * b));
      const w = randn(rng, ws.reduce((a, b) => a * b));
      const probe = convGradsF64(x, c.xs, w, ws, new Float64Array(0), c.s, 1, c.pad, true);
      const r = randn(rng, probe.outShape.reduce((a, b) => a * b));
      const ref = convGradsF64(x, c.xs, w, ws, r, c.s, 1, c.pad, true);
      await expectNoLeak(async () => {
        const xt = tf.tensor4d(f32(x), c.xs as [number, number, number, number]);
        const wt = tf.tensor4d(f32(w), ws as [number, number, number, number]);
        const rt = tf.tensor(f32(r), probe.outShape);
        const [gx, gw] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
          tf.sum(tf.mul(tf.depthwiseConv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.s, c.pad), rt)),
        )([xt, wt]);
        const tol = (e: Float64Array) => 1e-4 * Math.max(1, ...Array.from(e, Math.abs));
        await expectClose(gx!, ref.dx, tol(ref.dx), `dwconv-backprop/${c.name}/dx`, c.xs);
        await expectClose(gw!, ref.dw, tol(ref.dw), `dwconv-backprop/${c.name}/dw`, ws);
        tf.dispose([xt, wt, rt, gx!, gw!]);
      });
    });
  }

  it('conv2d filter (and input) gradient: 3x3 stride 2 same and 1x1', async () => {
    for (const [k, s, pad] of [
      [3, 2, 'same'],
      [1, 1, 'valid'],
      [2, 2, 'valid'],
    ] as const) {
      const rng = new Rng(5 + k);
      const xs = [2, 7, 6, 4];
      const ws = [k, k, 4, 5];
      const x = randn(rng, xs.reduce((a, b) => a * b));
      const w = randn(rng, ws.reduce((a, b) => a * b));
      const probe = convGradsF64(x, xs, w, ws, new Float64Array(0), s, 1, pad, false);
      const r = randn(rng, probe.outShape.reduce((a, b) => a * b));
      const ref = convGradsF64(x, xs, w, ws, r, s, 1, pad, false);
      await expectNoLeak(async () => {
        const xt = tf.tensor4d(f32(x), xs as [number, number, number, number]);
        const wt = tf.tensor4d(f32(w), ws as [number, number, number, number]);
        const rt = tf.tensor(f32(r), probe.outShape);
        const [gx, gw] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
          tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, s, pad), rt)),
        )([xt, wt]);
        const tol = (e: Float64Array) => 1e-4 * Math.max(1, ...Array.from(e, Math.abs));
        await expectClose(gx!, ref.dx, tol(ref.dx), `conv2d-backprop/k${k}s${s}/dx`, xs);
        await expectClose(gw!, ref.dw, tol(ref.dw), `conv2d-backprop/k${k}s${s}/dw`, ws);
        tf.dispose([xt, wt, rt, gx!, gw!]);
      });
    }
  });

  // tfjs' depthwise gradient refuses dilation > 1, so call the kernels directly; only softbias's wasm kernels
  // are claimed to support dilation (tfjs-backend-cpu's filter kernel ignores it).
  for (const m of [1, 2]) it.runIf(currentBackend === 'wasm')(`wasm kernels with dilation 2, multiplier ${m} (called directly)`, async () => {
    const rng = new Rng(3);
    const xs = [2, 9, 8, 3];
    const ws = [3, 3, 3, m];
    const x = randn(rng, xs.reduce((a, b) => a * b));
    const w = randn(rng, ws.reduce((a, b) => a * b));
    const probe = convGradsF64(x, xs, w, ws, new Float64Array(0), 1, 2, 'same', true);
    const r = randn(rng, probe.outShape.reduce((a, b) => a * b));
    const ref = convGradsF64(x, xs, w, ws, r, 1, 2, 'same', true);
    const xt = tf.tensor4d(f32(x), xs as [number, number, number, number]);
    const wt = tf.tensor4d(f32(w), ws as [number, number, number, number]);
    const rt = tf.tensor(f32(r), probe.outShape);
    const common = { strides: [1, 1], pad: 'same', dilations: [2, 2] };
    const dx = tf.engine().runKernel(
      tf.DepthwiseConv2dNativeBackpropInput,
      { dy: rt, filter: wt },
      { ...common, inputShape: xs } as unknown as tf.NamedAttrMap,
    ) as tf.Tensor;
    const dw = tf.engine().runKernel(
      tf.DepthwiseConv2dNativeBackpropFilter,
      { x: xt, dy: rt },
      { ...common, filterShape: ws } as unknown as tf.NamedAttrMap,
    ) as tf.Tensor;
    await expectClose(dx, ref.dx, 1e-4 * Math.max(1, ...Array.from(ref.dx, Math.abs)), `dwconv-backprop/dilation2-m${m}/dx`, xs);
    await expectClose(dw, ref.dw, 1e-4 * Math.max(1, ...Array.from(ref.dw, Math.abs)), `dwconv-backprop/dilation2-m${m}/dw`, ws);
    tf.dispose([xt, wt, rt, dx, dw]);
  });
});
