import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { Rng } from '@softbias/tensor-ops';
import { describeBackend, currentBackend, expectClose, expectNoLeak } from '@softbias/test-utils';
import { SiteIndex } from './sites.js';
import { toRows, toDense, pickRows, invertPick } from './rows.js';
import { sparseDepthwiseConv } from './dwconv.js';

function randn(n: number, rng: Rng): Float32Array {
  const d = new Float32Array(n);
  for (let i = 0; i < n; i++) d[i] = rng.normal();
  return d;
}

function randomSites(B: number, H: number, W: number, p: number, seed: number): SiteIndex {
  const rng = new Rng(seed);
  return SiteIndex.fromMask(Array.from({ length: B * H * W }, () => (rng.random() < p ? 1 : 0)), B, H, W);
}

describeBackend('rows ⇄ dense', () => {
  it('toRows / toDense follow the site tables and round-trip; gradients are the inverse picks', async () => {
    const [B, H, W, C] = [2, 5, 6, 3];
    const sites = randomSites(B, H, W, 0.5, 1);
    const rng = new Rng(2);
    const xd = randn(B * H * W * C, rng);
    const x = tf.tensor4d(xd, [B, H, W, C]);
    await expectNoLeak(async () => {
      const rows = toRows(x, sites);
      expect(rows.shape).toEqual([sites.numRows, C]);
      const want = new Float32Array(sites.numRows * C);
      for (let r = 0; r < sites.numRows; r++) for (let c = 0; c < C; c++) want[r * C + c] = xd[sites.siteOfRow[r]! * C + c]!;
      await expectClose(rows, want, 0, 'toRows');
      const dense = toDense(rows, sites);
      const wantDense = new Float32Array(B * H * W * C);
      for (let s = 0; s < B * H * W; s++) if (sites.rowOfSite[s]! >= 0) for (let c = 0; c < C; c++) wantDense[s * C + c] = xd[s * C + c]!;
      await expectClose(dense, wantDense, 0, 'toDense', [B, H, W, C]);
      rows.dispose();
      dense.dispose();
    }, 'toRows/toDense');

    // d/dx Σ toRows(x) ⊙ R = R scattered to the visible sites; d/drows Σ toDense(rows) ⊙ S = S at the visible sites.
    const R = tf.tensor2d(randn(sites.numRows * C, rng), [sites.numRows, C]);
    const S = tf.tensor4d(randn(B * H * W * C, rng), [B, H, W, C]);
    const gx = tf.grad((xi: tf.Tensor) => tf.sum(tf.mul(toRows(xi, sites), R)))(x);
    const Rd = await R.data();
    const wantGx = new Float32Array(B * H * W * C);
    for (let r = 0; r < sites.numRows; r++) for (let c = 0; c < C; c++) wantGx[sites.siteOfRow[r]! * C + c] = Rd[r * C + c]!;
    await expectClose(gx, wantGx, 0, 'toRows grad');
    const rowsIn = toRows(x, sites);
    const gr = tf.grad((ri: tf.Tensor) => tf.sum(tf.mul(toDense(ri, sites), S)))(rowsIn);
    const Sd = await S.data();
    const wantGr = new Float32Array(sites.numRows * C);
    for (let r = 0; r < sites.numRows; r++) for (let c = 0; c < C; c++) wantGr[r * C + c] = Sd[sites.siteOfRow[r]! * C + c]!;
    await expectClose(gr, wantGr, 0, 'toDense grad');
    tf.dispose([x, R, S, gx, gr, rowsIn]);
  });

  it('pickRows with zero rows; repeated picks are rejected', async () => {
    const x = tf.tensor2d([1, 2, 3, 4, 5, 6], [3, 2]);
    const y = pickRows(x, Int32Array.from([2, -1, 0]));
    await expectClose(y, [5, 6, 0, 0, 1, 2], 0, 'pickRows');
    expect(Array.from(invertPick(Int32Array.from([2, -1, 0]), 3))).toEqual([2, -1, 0]);
    expect(() => pickRows(x, Int32Array.from([1, 1]))).toThrow(/picked twice/);
    tf.dispose([x, y]);
  });
});

describeBackend('sparse depth-wise conv', () => {
  /** Float64 reference: the dense zero-filled conv read at visible sites, and its gradients for L = Σ y ⊙ R. */
  function reference(sites: SiteIndex, C: number, k: number, x: Float32Array, w: Float32Array, b: Float32Array, R: Float32Array) {
    const V = sites.numRows;
    const nbr = sites.neighbours(k);
    const kk = k * k;
    const y = new Float64Array(V * C);
    const dx = new Float64Array(V * C);
    const dw = new Float64Array(kk * C);
    for (let v = 0; v < V; v++)
      for (let c = 0; c < C; c++) {
        let s = b[c]!;
        for (let j = 0; j < kk; j++) {
          const u = nbr[v * kk + j]!;
          if (u === V) continue;
          s += x[u * C + c]! * w[j * C + c]!;
          dx[u * C + c] += R[v * C + c]! * w[j * C + c]!;
          dw[j * C + c] += R[v * C + c]! * x[u * C + c]!;
        }
        y[v * C + c] = s;
      }
    const db = new Float64Array(C);
    for (let v = 0; v < V; v++) for (let c = 0; c < C; c++) db[c] += R[v * C + c]!;
    return { y, dx, dw, db };
  }

  // softbias' row-form kernels (wasm): channel counts through the 16-wide, 4-wide and scalar paths.
  const kernelCases = [[7, 9, 8, 'kernel', 5], [3, 4, 5, 'kernel', 37], [7, 3, 2, 'kernel', 40], [7, 6, 7, 'kernel', 16]] as const;
  for (const [k, H, W, strategy, Cn] of [[7, 9, 8, 'offsets', 5], [7, 9, 8, 'single', 5], [3, 4, 5, 'offsets', 5], [7, 3, 2, 'single', 5], ...kernelCases] as const) {
    it.runIf(strategy !== 'kernel' || currentBackend === 'wasm')(`k=${k} on a ${H}×${W} grid, C=${Cn}, ${strategy} picks: values and gradients match the float64 definition`, async () => {
      const [B, C] = [2, Cn];
      const sites = randomSites(B, H, W, 0.45, 10 + k);
      const rng = new Rng(20 + k);
      const V = sites.numRows;
      const xd = randn(V * C, rng);
      const wd = randn(k * k * C, rng).map((v) => v / k);
      const bd = randn(C, rng);
      const Rd = randn(V * C, rng);
      const ref = reference(sites, C, k, xd, wd, bd, Rd);
      const x = tf.tensor2d(xd, [V, C]);
      const w = tf.tensor4d(wd, [k, k, C, 1]);
      const b = tf.tensor1d(bd);
      const R = tf.tensor2d(Rd, [V, C]);
      await expectNoLeak(async () => {
        const y = sparseDepthwiseConv(x, sites, w, b, { strategy });
        await expectClose(y, ref.y, 1e-5, `sparse dwconv k=${k} forward`, [V, C]);
        y.dispose();
        const [gx, gw, gb] = tf.grads((xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) =>
          tf.sum(tf.mul(sparseDepthwiseConv(xi, sites, wi, bi, { strategy }), R)),
        )([x, w, b]);
        await expectClose(gx!, ref.dx, 1e-5, `sparse dwconv k=${k} dx`, [V, C]);
        await expectClose(gw!, ref.dw, 1e-4, `sparse dwconv k=${k} dw`, [k, k, C, 1]);
        await expectClose(gb!, ref.db, 1e-5, `sparse dwconv k=${k} db`, [C]);
        tf.dispose([gx!, gw!, gb!]);
      }, 'sparse dwconv');
      tf.dispose([x, w, b, R]);
    });
  }

  it('rejects mismatched rows and kernels with the expected shapes', () => {
    const sites = randomSites(1, 4, 4, 0.3, 3);
    const x = tf.zeros([sites.numRows, 4]);
    expect(() => sparseDepthwiseConv(tf.zeros([sites.numRows + 1, 4]), sites, tf.zeros([7, 7, 4, 1]), null)).toThrow(/expected \[\d+, C\] rows/);
    expect(() => sparseDepthwiseConv(x, sites, tf.zeros([7, 7, 3, 1]), null)).toThrow(/\[k, k, 4, 1\]/);
    expect(() => sparseDepthwiseConv(x, sites, tf.zeros([4, 4, 4, 1]), null)).toThrow(/odd k/);
    x.dispose();
  });
});
