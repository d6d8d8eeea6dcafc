/**
 * Nonlocality of attention maps (ConViT's measure): per head, the mean over query patches of the expected
 * distance, in patches, between the query and the key it attends to.
 */
import * as tf from '@tensorflow/tfjs-core';

/**
 * Euclidean distances ||(dx, dy)||₂ between every pair of patches of a row-major `rows × cols` grid,
 * as a [P, P] matrix (P = rows·cols; entry [q, k]).
 */
export function patchDistances(grid: readonly [number, number]): Float32Array {
  const [rows, cols] = grid;
  const P = rows * cols;
  const d = new Float32Array(P * P);
  for (let q = 0; q < P; q++) {
    const qy = Math.floor(q / cols);
    const qx = q % cols;
    for (let k = 0; k < P; k++) {
      const dy = Math.floor(k / cols) - qy;
      const dx = (k % cols) - qx;
      d[q * P + k] = Math.sqrt(dx * dx + dy * dy);
    }
  }
  return d;
}

/**
 * Nonlocality per head, `d_h = (1/P) Σ_{q,k} ||pos_k − pos_q||₂ · Ā[h, q, k]`, where Ā is the attention
 * averaged over the batch first (as the official ConViT measurement) and q, k run over the P = rows·cols patch
 * tokens of the row-major grid (its actual rows and columns, so non-square grids work).
 *
 * `attn`: [B, heads, N, N] or [heads, N, N] with N = numPrefixTokens + P. Prefix tokens (the class token) are
 * excluded: their query rows are dropped, and attention mass a patch query puts on a prefix key carries no
 * distance (rows are not renormalised). With no prefix tokens this is exactly fixtures README §5.1.
 *
 * Returns a [heads] tensor (differentiable; the caller owns it).
 */
export function nonlocality(attn: tf.Tensor, grid: readonly [number, number], numPrefixTokens = 0): tf.Tensor1D {
  const [rows, cols] = grid;
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 1 || cols < 1) {
    throw new RangeError(`nonlocality: grid must be two positive integers [rows, cols], got [${grid}]`);
  }
  if (!Number.isInteger(numPrefixTokens) || numPrefixTokens < 0) {
    throw new RangeError(`nonlocality: numPrefixTokens must be a non-negative integer, got ${numPrefixTokens}`);
  }
  const P = rows * cols;
  const N = P + numPrefixTokens;
  const ok =
    (attn.rank === 4 || attn.rank === 3) && attn.shape[attn.rank - 1] === N && attn.shape[attn.rank - 2] === N;
  if (!ok) {
    throw new Error(
      `nonlocality: expected attention [B, heads, ${N}, ${N}] or [heads, ${N}, ${N}] ` +
        `(grid ${rows}×${cols} + ${numPrefixTokens} prefix), got [${attn.shape}]`,
    );
  }
  return tf.tidy(() => {
    const mean = attn.rank === 4 ? tf.mean(attn, 0) : attn; // [heads, N, N]
    const H = mean.shape[0]!;
    const patches = numPrefixTokens === 0 ? mean : tf.slice(mean, [0, numPrefixTokens, numPrefixTokens], [H, P, P]);
    const dist = tf.tensor2d(patchDistances(grid), [P, P]);
    return tf.div(tf.sum(tf.mul(patches, dist), [1, 2]), P) as tf.Tensor1D;
  });
}
