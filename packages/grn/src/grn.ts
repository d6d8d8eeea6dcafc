/**
 * Global Response Normalisation (ConvNeXt V2), channels-last:
 *
 *   Gx[b, c] = ‖x[b, :, :, c]‖₂          (L2 norm over the spatial positions of each image and channel)
 *   Nx[b, c] = Gx[b, c] / (mean_c Gx[b, c] + eps)            eps = 1e-6, outside the sqrt
 *   GRN(x)   = x + γ · (x · Nx) + β
 *
 * The norm uses a square root whose gradient is defined as 0 where its argument is 0 (an all-zero channel,
 * which masked FCMAE inputs produce): the plain `sqrt` gives 0 · ∞ = NaN there. The forward value is exactly
 * `tf.sqrt` of the sum of squares; elsewhere the gradient is exactly sqrt's.
 */
import * as tf from '@tensorflow/tfjs-core';
import { sumOfSquaresOverPositions } from '@softbias/tensor-ops';

export const GRN_EPS = 1e-6;

export interface GrnOptions {
  /** Added to the channel mean of the norms (not inside the sqrt). Default 1e-6 as the reference. */
  eps?: number;
}

export type GrnStats = 'batch' | 'sample';

export interface GrnMaskedOptions extends GrnOptions {
  /**
   * `batch` (default): one set of statistics from the visible sites of every image in the batch, as the
   * reference sparse encoder (`MinkowskiGRN`) computes them. `sample`: per image, over its visible sites.
   */
  stats?: GrnStats;
}

export interface GrnRowsOptions extends GrnOptions {
  /**
   * Rows per sample, in order (they must sum to the number of rows): statistics per sample. Without it,
   * one set of statistics over all rows (the reference sparse encoder's batch pooling).
   */
  segments?: readonly number[];
}

/**
 * `sqrt(s)` with gradient `dy / (2·sqrt(s))` where s > 0 and 0 where s = 0 (instead of ∞, which the chain
 * rule turns into NaN for an all-zero channel). Forward identical to `tf.sqrt`.
 */
export const safeSqrt: (s: tf.Tensor) => tf.Tensor = tf.customGrad(((s: tf.Tensor, save: tf.GradSaveFunc) => {
  const value = tf.sqrt(s);
  save([value]);
  return {
    value,
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.divNoNan(tf.mul(dy, 0.5), saved[0]!),
  };
}) as unknown as (...args: (tf.Tensor | tf.GradSaveFunc)[]) => { value: tf.Tensor; gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor }) as (
  s: tf.Tensor,
) => tf.Tensor;

function checkParams(what: string, x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, expected: string): number {
  const C = x.shape[x.rank - 1]!;
  if (gamma.size !== C || beta.size !== C) {
    throw new Error(
      `${what}: gamma and beta must have ${C} elements (shape [${C}] or [1, 1, 1, ${C}]) for input ${expected}, ` +
        `got gamma [${gamma.shape}] and beta [${beta.shape}]`,
    );
  }
  return C;
}

/**
 * `x + γ·(x·Nx) + β` given Nx (broadcastable to x); γ, β reshaped to [C]. Evaluated as `x·(1 + γ·Nx) + β`:
 * the same expression, with the per-channel factor computed on the small statistics tensor, so only two
 * element-wise passes run over x (instead of four); it differs from the literal order by float rounding only.
 */
function applyGrn(x: tf.Tensor, nx: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, C: number): tf.Tensor {
  const g = gamma.rank === 1 ? gamma : tf.reshape(gamma, [C]);
  const b = beta.rank === 1 ? beta : tf.reshape(beta, [C]);
  return tf.add(tf.mul(x, tf.add(tf.mul(g, nx), 1)), b);
}

/** Nx = Gx / (mean over the last axis of Gx + eps). */
function normalisedNorm(gx: tf.Tensor, eps: number): tf.Tensor {
  return tf.div(gx, tf.add(tf.mean(gx, -1, true), eps));
}

/**
 * GRN of a channels-last batch `x` [B, …, C] (e.g. [B, H, W, C] or [B, N, C]): statistics per image over
 * every position, exactly as the reference `GRN` / timm `GlobalResponseNorm`. `gamma`/`beta` have C elements
 * ([C] as timm, or [1, 1, 1, C] as the official code).
 */
export function grn(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, opts: GrnOptions = {}): tf.Tensor {
  if (x.rank < 3) {
    throw new Error(`grn: expected a channels-last input [B, H, W, C] (or [B, N, C]), got shape [${x.shape}]`);
  }
  const C = checkParams('grn', x, gamma, beta, `[${x.shape}]`);
  const eps = opts.eps ?? GRN_EPS;
  return tf.tidy(() => {
    // Σ x² over the positions of each image (one threaded SIMD pass on wasm; sum(square(x)) elsewhere).
    const gx = safeSqrt(sumOfSquaresOverPositions(x));
    return applyGrn(x, normalisedNorm(gx, eps), gamma, beta, C);
  });
}

/**
 * GRN over the visible sites of a masked channels-last batch, the dense equivalent of the reference sparse
 * encoder's GRN. `x` [B, H, W, C]; `visible` [B, H, W] or [B, H, W, 1], 1 = visible, 0 = masked (the FCMAE
 * mask, 1 = removed, is `1 − visible`). Statistics come from visible sites only (pooled over the batch by
 * default, or per image); masked sites come out as 0, like the sparse tensor written back to a dense grid.
 */
export function grnMasked(
  x: tf.Tensor,
  visible: tf.Tensor,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  opts: GrnMaskedOptions = {},
): tf.Tensor {
  if (x.rank !== 4) throw new Error(`grnMasked: expected x of shape [B, H, W, C], got [${x.shape}]`);
  const [B, H, W] = x.shape as [number, number, number, number];
  const okMask =
    (visible.rank === 3 || (visible.rank === 4 && visible.shape[3] === 1)) &&
    visible.shape[0] === B &&
    visible.shape[1] === H &&
    visible.shape[2] === W;
  if (!okMask) {
    throw new Error(`grnMasked: expected a visible mask of shape [${B}, ${H}, ${W}] or [${B}, ${H}, ${W}, 1], got [${visible.shape}]`);
  }
  const C = checkParams('grnMasked', x, gamma, beta, `[${x.shape}]`);
  const stats = opts.stats ?? 'batch';
  if (stats !== 'batch' && stats !== 'sample') throw new Error(`grnMasked: stats must be 'batch' or 'sample', got '${stats}'`);
  const eps = opts.eps ?? GRN_EPS;
  return tf.tidy(() => {
    const m = tf.cast(visible.rank === 3 ? tf.expandDims(visible, 3) : visible, 'float32');
    const xm = tf.mul(x, m);
    const axes = stats === 'batch' ? [0, 1, 2] : [1, 2];
    const gx = safeSqrt(tf.sum(tf.square(xm), axes, true));
    return tf.mul(applyGrn(xm, normalisedNorm(gx, eps), gamma, beta, C), m);
  });
}

/**
 * GRN on the feature rows of the visible sites only (`rows` [V, C], the sparse form). Statistics over all
 * rows (the reference `MinkowskiGRN`, pooled over the batch), or per sample when `segments` gives how many
 * consecutive rows each sample owns.
 */
export function grnRows(rows: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, opts: GrnRowsOptions = {}): tf.Tensor {
  if (rows.rank !== 2) throw new Error(`grnRows: expected rows of shape [V, C], got [${rows.shape}]`);
  const C = checkParams('grnRows', rows, gamma, beta, `[${rows.shape}]`);
  const V = rows.shape[0]!;
  const eps = opts.eps ?? GRN_EPS;
  const seg = opts.segments;
  if (seg) {
    const total = seg.reduce((a, b) => a + b, 0);
    if (total !== V || seg.some((n) => !Number.isInteger(n) || n < 0)) {
      throw new Error(`grnRows: segments [${seg}] must be non-negative integers summing to the ${V} rows`);
    }
  }
  return tf.tidy(() => {
    if (!seg) {
      const gx = safeSqrt(tf.sum(tf.square(rows), 0, true));
      return applyGrn(rows, normalisedNorm(gx, eps), gamma, beta, C);
    }
    // Per-sample sums of squares as a 2-D matmul with a [S, V] indicator, and each row's Nx back with its
    // [V, S] transpose (matmuls, not gather: gather's gradient needs UnsortedSegmentSum, which wasm lacks).
    const S = seg.length;
    const ind = new Float32Array(S * V);
    const indT = new Float32Array(V * S);
    let r = 0;
    seg.forEach((n, s) => {
      for (let i = 0; i < n; i++, r++) {
        ind[s * V + r] = 1;
        indT[r * S + s] = 1;
      }
    });
    const sumsq = tf.matMul(tf.tensor2d(ind, [S, V]), tf.square(rows));
    const nx = normalisedNorm(safeSqrt(sumsq), eps);
    return applyGrn(rows, tf.matMul(tf.tensor2d(indT, [V, S]), nx), gamma, beta, C);
  });
}
