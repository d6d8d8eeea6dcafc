/**
 * Moving between the dense NHWC form and the sparse row form, differentiably on every backend.
 *
 * Rows are picked by tensor-ops' threaded row-gather kernel on wasm, elsewhere with `gatherND` (on
 * tfjs-backend-wasm 15–25× faster than `gather` for row tables). Neither
 * has a gradient that works everywhere (tfjs differentiates `gather` with `UnsortedSegmentSum`, which
 * tfjs-backend-wasm lacks). Every pick here takes each source row at most once (a partial permutation), so
 * its gradient is again a pick (of the upstream gradient, through the inverse table): `pickRows` carries it.
 */
import * as tf from '@tensorflow/tfjs-core';
import { gatherRowsFused } from '@softbias/tensor-ops';
import type { SiteIndex } from './sites.js';

/** Inverse of an injective pick table: `inv[j] = i` where `pick[i] = j`, −1 for rows never picked. */
export function invertPick(pick: Int32Array, numSource: number): Int32Array {
  const inv = new Int32Array(numSource).fill(-1);
  for (let i = 0; i < pick.length; i++) {
    const j = pick[i]!;
    if (j < 0) continue;
    if (j >= numSource) throw new RangeError(`pickRows: index ${j} is out of range for ${numSource} rows`);
    if (inv[j] !== -1) throw new Error(`pickRows: row ${j} is picked twice; the table must be injective`);
    inv[j] = i;
  }
  return inv;
}

/** `[M]` row indices as the `[M, 1]` int32 tensor `gatherND` takes. */
export function rowIndexTensor(idx: Int32Array): tf.Tensor2D {
  return tf.tensor2d(idx, [idx.length, 1], 'int32');
}

/** Plain gather of rows of `x` [N, C]; entries < 0 give a zero row. Not differentiable by itself. */
export function gatherWithZeros(x: tf.Tensor, pick: Int32Array): tf.Tensor {
  const [N, C] = x.shape as [number, number];
  let hasZero = false;
  for (let i = 0; i < pick.length; i++) if (pick[i]! < 0) {
    hasZero = true;
    break;
  }
  if (pick.length > 0) {
    const fused = gatherRowsFused(x, pick); // wasm: one threaded pass, zero rows included
    if (fused) return fused;
  }
  return tf.tidy(() => {
    if (pick.length === 0) return tf.zeros([0, C]);
    let src = x;
    let idx = pick;
    if (hasZero) {
      src = tf.concat([x, tf.zeros([1, C])], 0);
      idx = new Int32Array(pick.length);
      for (let i = 0; i < pick.length; i++) idx[i] = pick[i]! < 0 ? N : pick[i]!;
    }
    return tf.gatherND(src, rowIndexTensor(idx));
  });
}

/**
 * `y[i] = x[pick[i]]` for `x` [N, C] (a zero row where `pick[i] < 0`); `pick` must not repeat a row.
 * Differentiable on every backend: the gradient is `dy` gathered through the inverse table.
 * `inverse` (from {@link invertPick}) may be passed when already known.
 */
export function pickRows(x: tf.Tensor, pick: Int32Array, inverse?: Int32Array): tf.Tensor2D {
  if (x.rank !== 2) throw new Error(`pickRows: expected [N, C] rows, got shape [${x.shape}]`);
  const N = x.shape[0]!;
  const inv = inverse ?? invertPick(pick, N);
  if (inv.length !== N) throw new Error(`pickRows: inverse table has ${inv.length} entries for ${N} rows`);
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => ({
    value: gatherWithZeros(args[0] as tf.Tensor, pick),
    gradFunc: (dy: tf.Tensor | tf.Tensor[]) => gatherWithZeros(dy as tf.Tensor, inv),
  }));
  return f(x) as tf.Tensor2D;
}

/** Dense `[B, H, W, C]` → visible rows `[V, C]` (image by image, row-major within an image). */
export function toRows(x: tf.Tensor, sites: SiteIndex): tf.Tensor2D {
  const { batch: B, height: H, width: W } = sites;
  if (x.rank !== 4 || x.shape[0] !== B || x.shape[1] !== H || x.shape[2] !== W) {
    throw new Error(`toRows: expected a [${B}, ${H}, ${W}, C] map, got shape [${x.shape}]`);
  }
  const C = x.shape[3]!;
  return tf.tidy(() => pickRows(tf.reshape(x, [B * H * W, C]), sites.siteOfRow, sites.rowOfSite));
}

/** Visible rows `[V, C]` → dense `[B, H, W, C]` with zeros on masked sites. */
export function toDense(rows: tf.Tensor, sites: SiteIndex): tf.Tensor4D {
  if (rows.rank !== 2 || rows.shape[0] !== sites.numRows) {
    throw new Error(`toDense: expected [${sites.numRows}, C] rows, got shape [${rows.shape}]`);
  }
  const C = rows.shape[1]!;
  return tf.tidy(
    () => tf.reshape(pickRows(rows, sites.rowOfSite, sites.siteOfRow), [sites.batch, sites.height, sites.width, C]) as tf.Tensor4D,
  );
}
