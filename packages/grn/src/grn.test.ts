/**
 * GRN against float64 plain-loop definitions written here (forward) and central finite differences of those
 * definitions (gradients), on every backend.
 */
import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend, expectClose, expectNoLeak, defaultAtol } from '@softbias/test-utils';
import { Rng } from '@softbias/tensor-ops';
import { grn, grnMasked, grnRows, safeSqrt, Grn } from './index.js';

// ---------- float64 definitions ----------

/**
 * GRN of x [B, P, C] (P = all positions) where `vis[b·P + p]` ∈ {0, 1} selects the sites that count and
 * survive (all 1 = the dense GRN). `pooled`: statistics over every image together.
 */
function grnF64(
  x: Float64Array,
  B: number,
  P: number,
  C: number,
  gamma: Float64Array,
  beta: Float64Array,
  vis: Float64Array | null,
  pooled: boolean,
): Float64Array {
  const out = new Float64Array(x.length);
  const groups = pooled ? 1 : B;
  const per = pooled ? B : 1;
  for (let g = 0; g < groups; g++) {
    const gx = new Float64Array(C);
    for (let bb = 0; bb < per; bb++) {
      const b = g * per + bb;
      for (let p = 0; p < P; p++) {
        const v = vis ? vis[b * P + p]! : 1;
        for (let c = 0; c < C; c++) gx[c] += (x[(b * P + p) * C + c]! * v) ** 2;
      }
    }
    let mean = 0;
    for (let c = 0; c < C; c++) {
      gx[c] = Math.sqrt(gx[c]!);
      mean += gx[c]! / C;
    }
    for (let bb = 0; bb < per; bb++) {
      const b = g * per + bb;
      for (let p = 0; p < P; p++) {
        const v = vis ? vis[b * P + p]! : 1;
        for (let c = 0; c < C; c++) {
          const i = (b * P + p) * C + c;
          const xv = x[i]! * v;
          out[i] = (xv + gamma[c]! * (xv * (gx[c]! / (mean + 1e-6))) + beta[c]!) * v;
        }
      }
    }
  }
  return out;
}

/** d/dθ Σ f(θ)·R by central differences in float64, for every element of θ. */
function fdGrad(theta: Float64Array, f: (t: Float64Array) => Float64Array, r: Float64Array, h = 1e-6): Float64Array {
  const g = new Float64Array(theta.length);
  const t = Float64Array.from(theta);
  const dot = (a: Float64Array) => a.reduce((s, v, i) => s + v * r[i]!, 0);
  for (let i = 0; i < t.length; i++) {
    const v = t[i]!;
    t[i] = v + h;
    const up = dot(f(t));
    t[i] = v - h;
    const down = dot(f(t));
    t[i] = v;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}

function randn(rng: Rng, n: number, scale = 1): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = scale * rng.normal();
  return a;
}

const f32 = (a: Float64Array) => Float32Array.from(a);

const B = 2;
const H = 3;
const W = 4;
const C = 5;
const P = H * W;

function setup(seed: number) {
  const rng = new Rng(seed);
  return {
    x: randn(rng, B * P * C),
    gamma: randn(rng, C, 0.5),
    beta: randn(rng, C, 0.2),
    r: randn(rng, B * P * C),
  };
}

/** Zero channel 1 of image 0 everywhere, and every channel of image 1 at one site. */
function withZeroChannel(x: Float64Array): Float64Array {
  const z = Float64Array.from(x);
  for (let p = 0; p < P; p++) z[p * C + 1] = 0;
  for (let c = 0; c < C; c++) z[(P + 5) * C + c] = 0;
  return z;
}

function allFinite(a: ArrayLike<number>): boolean {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i]!)) return false;
  return true;
}

describeBackend('@softbias/grn', () => {
  it('grn forward matches the float64 definition ([B, H, W, C] and [B, N, C], γ as (C) or (1,1,1,C))', async () => {
    const { x, gamma, beta } = setup(1);
    const ref = grnF64(x, B, P, C, gamma, beta, null, false);
    await expectNoLeak(async () => {
      const xt = tf.tensor4d(f32(x), [B, H, W, C]);
      const g1 = tf.tensor1d(f32(gamma));
      const b1 = tf.tensor1d(f32(beta));
      const g4 = tf.reshape(g1, [1, 1, 1, C]);
      const b4 = tf.reshape(b1, [1, 1, 1, C]);
      const y = grn(xt, g1, b1);
      await expectClose(y, ref, defaultAtol(ref), 'grn/forward', [B, H, W, C]);
      const y4 = grn(xt, g4, b4);
      await expectClose(y4, ref, defaultAtol(ref), 'grn/forward-official-shapes', [B, H, W, C]);
      const x3 = tf.reshape(xt, [B, P, C]);
      const y3 = grn(x3, g1, b1);
      await expectClose(y3, ref, defaultAtol(ref), 'grn/forward-tokens', [B, P, C]);
      tf.dispose([xt, g1, b1, g4, b4, y, y4, x3, y3]);
    });
  });

  it('eps 1e-6 sits where timm puts it (Gx / (mean_c Gx + eps)): seen at activations of scale 1e-7, where a GRN without eps fails', async () => {
    // At this scale mean_c Gx ≈ 3e-7 is comparable with eps, so the eps changes Nx by ~4× (at O(1) activations,
    // as in the convnextv2_micro fixture, it changes the output by ~1e-7 relative: below float32 drift there).
    const { x, gamma } = setup(7);
    const tiny = x.map((v) => v * 1e-7);
    const beta = new Float64Array(C); // β = 0 so the γ·x·Nx term is not swamped
    const ref = grnF64(tiny, B, P, C, gamma, beta, null, false);
    let maxRef = 0;
    for (const v of ref) maxRef = Math.max(maxRef, Math.abs(v));
    const atol = 1e-5 * maxRef; // float32 relative rounding is ~1e-7
    const sd = { weight: { data: f32(gamma), shape: [C] }, bias: { data: f32(beta), shape: [C] } };
    const xt = tf.tensor4d(f32(tiny), [B, H, W, C]);
    for (const eps of [1e-6, 0]) {
      const m = new Grn(C, eps);
      m.loadStateDict(sd);
      const y = m.forward(xt);
      const d = await y.data();
      let worst = 0;
      for (let i = 0; i < d.length; i++) worst = Math.max(worst, Math.abs(d[i]! - ref[i]!));
      if (eps === 1e-6) await expectClose(d, ref, atol, 'grn/tiny-activations');
      else expect(worst, 'a GRN without eps must fail this comparison').toBeGreaterThan(100 * atol);
      y.dispose();
      m.dispose();
    }
    xt.dispose();
  });

  it('grn gradients (x, γ, β) match finite differences of the float64 definition', async () => {
    const { x, gamma, beta, r } = setup(2);
    const dx = fdGrad(x, (t) => grnF64(t, B, P, C, gamma, beta, null, false), r);
    const dg = fdGrad(gamma, (t) => grnF64(x, B, P, C, t, beta, null, false), r);
    const db = fdGrad(beta, (t) => grnF64(x, B, P, C, gamma, t, null, false), r);
    await expectNoLeak(async () => {
      const rt = tf.tensor4d(f32(r), [B, H, W, C]);
      const ins = [tf.tensor4d(f32(x), [B, H, W, C]), tf.tensor1d(f32(gamma)), tf.tensor1d(f32(beta))];
      const grads = tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(grn(a, g, b), rt)))(ins);
      await expectClose(grads[0]!, dx, defaultAtol(dx), 'grn/grad-x');
      await expectClose(grads[1]!, dg, defaultAtol(dg), 'grn/grad-gamma');
      await expectClose(grads[2]!, db, defaultAtol(db), 'grn/grad-beta');
      tf.dispose([rt, ...ins, ...grads]);
    });
  });

  it('an all-zero channel: forward identical to the plain sqrt, gradient finite and equal to the symmetric difference', async () => {
    const { x: x0, gamma, beta, r } = setup(3);
    const x = withZeroChannel(x0);
    const dx = fdGrad(x, (t) => grnF64(t, B, P, C, gamma, beta, null, false), r);
    await expectNoLeak(async () => {
      const xt = tf.tensor4d(f32(x), [B, H, W, C]);
      const g = tf.tensor1d(f32(gamma));
      const b = tf.tensor1d(f32(beta));
      const rt = tf.tensor4d(f32(r), [B, H, W, C]);
      // The same evaluation with the plain tf.sqrt: what the safe norm replaces.
      const naive = (a: tf.Tensor) =>
        tf.tidy(() => {
          const gx = tf.sqrt(tf.sum(tf.square(a), [1, 2], true));
          const nx = tf.div(gx, tf.add(tf.mean(gx, -1, true), 1e-6));
          return tf.add(tf.mul(a, tf.add(tf.mul(g, nx), 1)), b);
        });
      const yNaive = naive(xt);
      const ySafe = grn(xt, g, b);
      expect(Array.from(await ySafe.data())).toEqual(Array.from(await yNaive.data()));
      const gNaive = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(naive(a), rt)))(xt);
      expect(allFinite(await gNaive.data()), 'the plain sqrt gives a non-finite gradient here').toBe(false);
      const gSafe = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(grn(a, g, b), rt)))(xt);
      const gs = await gSafe.data();
      expect(allFinite(gs)).toBe(true);
      await expectClose(gSafe, dx, defaultAtol(dx), 'grn/grad-x-zero-channel');
      tf.dispose([xt, g, b, rt, yNaive, ySafe, gNaive, gSafe]);
    });
  });

  it('safeSqrt: forward equals tf.sqrt, gradient 1/(2√s) for s > 0 and 0 at s = 0', async () => {
    const s = tf.tensor1d([0, 0.25, 4, 9]);
    const y = safeSqrt(s);
    expect(Array.from(await y.data())).toEqual(Array.from(await tf.sqrt(s).data()));
    const gr = tf.grad((t: tf.Tensor) => tf.sum(safeSqrt(t)))(s);
    await expectClose(gr, [0, 1, 0.25, 1 / 6], 1e-6, 'grn/safe-sqrt-grad');
    tf.dispose([s, y, gr]);
  });

  for (const stats of ['batch', 'sample'] as const) {
    it(`grnMasked (stats: ${stats}) forward and gradients vs the float64 definition, incl. a channel empty over visible sites`, async () => {
      const { x: x0, gamma, beta, r } = setup(stats === 'batch' ? 4 : 5);
      const vis = new Float64Array(B * P);
      const rng = new Rng(9);
      for (let i = 0; i < vis.length; i++) vis[i] = rng.random() < 0.5 ? 1 : 0;
      vis[0] = 1;
      vis[P] = 1;
      // Channel 2 of image 0 is zero on every visible site (but not on masked ones).
      const x = Float64Array.from(x0);
      for (let p = 0; p < P; p++) if (vis[p]) x[p * C + 2] = 0;
      const pooled = stats === 'batch';
      const ref = grnF64(x, B, P, C, gamma, beta, vis, pooled);
      const dx = fdGrad(x, (t) => grnF64(t, B, P, C, gamma, beta, vis, pooled), r);
      const dg = fdGrad(gamma, (t) => grnF64(x, B, P, C, t, beta, vis, pooled), r);
      const db = fdGrad(beta, (t) => grnF64(x, B, P, C, gamma, t, vis, pooled), r);
      await expectNoLeak(async () => {
        const xt = tf.tensor4d(f32(x), [B, H, W, C]);
        const mt = tf.tensor3d(f32(vis), [B, H, W]);
        const m4 = tf.reshape(mt, [B, H, W, 1]);
        const rt = tf.tensor4d(f32(r), [B, H, W, C]);
        const ins = [xt, tf.tensor1d(f32(gamma)), tf.tensor1d(f32(beta))];
        const y = grnMasked(xt, mt, ins[1]!, ins[2]!, { stats });
        await expectClose(y, ref, defaultAtol(ref), `grn/masked-${stats}/forward`, [B, H, W, C]);
        const y4 = grnMasked(xt, m4, ins[1]!, ins[2]!, { stats });
        await expectClose(y4, ref, defaultAtol(ref), `grn/masked-${stats}/forward-mask4d`);
        const grads = tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
          tf.sum(tf.mul(grnMasked(a, mt, g, b, { stats }), rt)),
        )(ins);
        expect(allFinite(await grads[0]!.data())).toBe(true);
        await expectClose(grads[0]!, dx, defaultAtol(dx), `grn/masked-${stats}/grad-x`);
        await expectClose(grads[1]!, dg, defaultAtol(dg), `grn/masked-${stats}/grad-gamma`);
        await expectClose(grads[2]!, db, defaultAtol(db), `grn/masked-${stats}/grad-beta`);
        tf.dispose([mt, m4, rt, ...ins, y, y4, ...grads]);
      });
    });
  }

  it('grnMasked: batch statistics differ from per-sample ones for B > 1 and agree for B = 1', async () => {
    const { x, gamma, beta } = setup(6);
    const xt = tf.tensor4d(f32(x), [B, H, W, C]);
    const m = tf.ones([B, H, W]);
    const g = tf.tensor1d(f32(gamma));
    const b = tf.tensor1d(f32(beta));
    const d = tf.tidy(() => tf.max(tf.abs(tf.sub(grnMasked(xt, m, g, b), grnMasked(xt, m, g, b, { stats: 'sample' })))));
    expect((await d.data())[0]).toBeGreaterThan(1e-3);
    // With everything visible, per-sample statistics are exactly the dense GRN.
    const ref = grnF64(x, B, P, C, gamma, beta, null, false);
    const ys = grnMasked(xt, m, g, b, { stats: 'sample' });
    await expectClose(ys, ref, defaultAtol(ref), 'grn/masked-sample-all-visible');
    const x1 = tf.slice(xt, [0, 0, 0, 0], [1, H, W, C]);
    const m1 = tf.ones([1, H, W]);
    const e = tf.tidy(() => tf.max(tf.abs(tf.sub(grnMasked(x1, m1, g, b), grnMasked(x1, m1, g, b, { stats: 'sample' })))));
    expect((await e.data())[0]).toBeLessThan(1e-6);
    tf.dispose([xt, m, g, b, d, ys, x1, m1, e]);
  });

  it('grnRows on the visible rows equals grnMasked on the dense grid (pooled and per sample)', async () => {
    const { x, gamma, beta, r } = setup(7);
    const vis = new Float64Array(B * P);
    const rng = new Rng(13);
    for (let i = 0; i < vis.length; i++) vis[i] = rng.random() < 0.4 ? 1 : 0;
    vis[1] = 1;
    vis[P + 2] = 1;
    const idx: number[] = [];
    const segments = [0, 0];
    for (let i = 0; i < B * P; i++) if (vis[i]) {
      idx.push(i);
      segments[Math.floor(i / P)]!++;
    }
    for (const pooled of [true, false]) {
      const dense = grnF64(x, B, P, C, gamma, beta, vis, pooled);
      const want = new Float64Array(idx.length * C);
      idx.forEach((site, j) => {
        for (let c = 0; c < C; c++) want[j * C + c] = dense[site * C + c]!;
      });
      const rowsRef = new Float64Array(idx.length * C);
      idx.forEach((site, j) => {
        for (let c = 0; c < C; c++) rowsRef[j * C + c] = x[site * C + c]!;
      });
      const rr = new Float64Array(idx.length * C).map((_, i) => r[i]!);
      const rowsF = (t: Float64Array) => {
        // The dense definition, evaluated on a grid holding `t` at the visible sites.
        const grid = new Float64Array(B * P * C);
        idx.forEach((site, j) => {
          for (let c = 0; c < C; c++) grid[site * C + c] = t[j * C + c]!;
        });
        const o = grnF64(grid, B, P, C, gamma, beta, vis, pooled);
        const res = new Float64Array(t.length);
        idx.forEach((site, j) => {
          for (let c = 0; c < C; c++) res[j * C + c] = o[site * C + c]!;
        });
        return res;
      };
      const dRows = fdGrad(rowsRef, rowsF, rr);
      await expectNoLeak(async () => {
        const rows = tf.tensor2d(f32(rowsRef), [idx.length, C]);
        const g = tf.tensor1d(f32(gamma));
        const b = tf.tensor1d(f32(beta));
        const opts = pooled ? {} : { segments };
        const y = grnRows(rows, g, b, opts);
        await expectClose(y, want, defaultAtol(want), `grn/rows-${pooled ? 'batch' : 'sample'}/forward`, [idx.length, C]);
        const rt = tf.tensor2d(f32(rr), [idx.length, C]);
        const gr = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(grnRows(t, g, b, opts), rt)))(rows);
        await expectClose(gr, dRows, defaultAtol(dRows), `grn/rows-${pooled ? 'batch' : 'sample'}/grad`);
        tf.dispose([rows, g, b, y, rt, gr]);
      });
    }
  });

  it('Grn module: timm names and shapes, zero init (identity), trains γ and β', async () => {
    const m = new Grn(C);
    expect(m.namedParameters().map(([n, p]) => [n, p.shape])).toEqual([
      ['weight', [C]],
      ['bias', [C]],
    ]);
    expect([...m.noWeightDecay()].sort()).toEqual(['bias', 'weight']);
    const { x, gamma, beta } = setup(8);
    const xt = tf.tensor4d(f32(x), [B, H, W, C]);
    const y0 = m.forward(xt);
    expect(Array.from(await y0.data())).toEqual(Array.from(f32(x)));
    m.loadStateDict({ weight: tf.tensor1d(f32(gamma)), bias: tf.tensor1d(f32(beta)) });
    const ref = grnF64(x, B, P, C, gamma, beta, null, false);
    const y1 = m.forward(xt);
    await expectClose(y1, ref, defaultAtol(ref), 'grn/module-forward');
    const { grads, value } = tf.variableGrads(() => tf.sum(tf.square(m.forward(xt))) as tf.Scalar);
    expect(Object.keys(grads).length).toBe(2);
    for (const gv of Object.values(grads)) expect(allFinite(await gv.data())).toBe(true);
    tf.dispose([xt, y0, y1, value, ...Object.values(grads)]);
    m.dispose();
  });

  it('bad inputs name the expected shape', () => {
    const g = tf.zeros([C]);
    const x = tf.zeros([B, H, W, C]);
    expect(() => grn(tf.zeros([4, C]), g, g)).toThrow(/\[B, H, W, C\]/);
    expect(() => grn(x, tf.zeros([C + 1]), g)).toThrow(/5 elements/);
    expect(() => grnMasked(x, tf.zeros([B, H, W + 1]), g, g)).toThrow(/\[2, 3, 4\] or \[2, 3, 4, 1\]/);
    expect(() => grnMasked(x, tf.zeros([B, H, W]), g, g, { stats: 'image' as never })).toThrow(/'batch' or 'sample'/);
    expect(() => grnRows(x, g, g)).toThrow(/\[V, C\]/);
    expect(() => grnRows(tf.zeros([3, C]), g, g, { segments: [1, 1] })).toThrow(/summing to the 3 rows/);
    expect(() => new Grn(C).forward(tf.zeros([1, 2, 2, C + 1]))).toThrow(/\[B, H, W, 5\]/);
  });
});
