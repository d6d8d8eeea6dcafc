/**
 * Random patch masks for masked image modelling (FCMAE) and their upsampling to each stage's resolution.
 *
 * A mask is `[B, L]` with 1 = removed (masked) and 0 = visible, patch `l = gy·gw + gx` on a `gh × gw` grid.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '@softbias/tensor-ops';

/**
 * Patches kept per image at `ratio`, as the reference computes it: `int(L·(1 − ratio))` (floor, float64), so
 * `L − numKept` patches are removed. Throws when nothing would stay visible or the ratio is out of [0, 1).
 */
export function numKept(numPatches: number, ratio: number): number {
  if (!Number.isInteger(numPatches) || numPatches < 1) {
    throw new RangeError(`numKept: numPatches must be a positive integer, got ${numPatches}`);
  }
  if (!(ratio >= 0 && ratio < 1)) throw new RangeError(`mask ratio must be in [0, 1), got ${ratio}`);
  const keep = Math.floor(numPatches * (1 - ratio));
  if (keep < 1) {
    throw new RangeError(`mask ratio ${ratio} leaves no visible patch out of ${numPatches}; lower the ratio`);
  }
  return keep;
}

/** Removed patches per image at `ratio` (`L − numKept(L, ratio)`). */
export function numRemoved(numPatches: number, ratio: number): number {
  return numPatches - numKept(numPatches, ratio);
}

export interface RandomMaskOptions {
  batch: number;
  /** Number of patches L (or the patch grid [gh, gw]). */
  numPatches: number | readonly [number, number];
  /** Fraction removed, in [0, 1). */
  ratio: number;
  /** A seed or a generator (advanced by the call, so successive calls give new masks). */
  rng: number | Rng;
}

/**
 * Random masks as host data `[B·L]` (row-major `[B, L]`), 1 = removed. Like the reference's
 * `argsort(noise)`: per image, uniform noise is drawn for every patch, the `numKept` patches with the
 * smallest noise stay visible and the others are removed, so every image has exactly the same count.
 */
export function randomMaskData(opts: RandomMaskOptions): Float32Array {
  const { batch } = opts;
  const L = typeof opts.numPatches === 'number' ? opts.numPatches : opts.numPatches[0] * opts.numPatches[1];
  if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`randomMask: batch must be ≥ 1, got ${batch}`);
  const keep = numKept(L, opts.ratio);
  const rng = typeof opts.rng === 'number' ? new Rng(opts.rng) : opts.rng;
  const out = new Float32Array(batch * L);
  const noise = new Float64Array(L);
  const order = new Int32Array(L);
  for (let b = 0; b < batch; b++) {
    for (let l = 0; l < L; l++) {
      noise[l] = rng.random();
      order[l] = l;
    }
    order.sort((i, j) => noise[i]! - noise[j]! || i - j);
    const row = out.subarray(b * L, (b + 1) * L);
    row.fill(1);
    for (let k = 0; k < keep; k++) row[order[k]!] = 0;
  }
  return out;
}

/** {@link randomMaskData} as a `[B, L]` float32 tensor. */
export function randomMask(opts: RandomMaskOptions): tf.Tensor2D {
  const L = typeof opts.numPatches === 'number' ? opts.numPatches : opts.numPatches[0] * opts.numPatches[1];
  return tf.tensor2d(randomMaskData(opts), [opts.batch, L], 'float32');
}

/**
 * Host form of the reference's `upsample_mask`: `[B, gh·gw]` → `[B, gh·s, gw·s]` (row-major, flattened) by
 * repeating every patch value over an `s × s` block (`repeat_interleave` on both axes).
 */
export function upsampleMaskData(
  mask: ArrayLike<number>,
  batch: number,
  grid: readonly [number, number],
  scale: number,
): Float32Array {
  const [gh, gw] = grid;
  if (mask.length !== batch * gh * gw) {
    throw new Error(`upsampleMask: expected a [${batch}, ${gh * gw}] mask for a ${gh}×${gw} grid, got ${mask.length} values`);
  }
  if (!Number.isInteger(scale) || scale < 1) throw new RangeError(`upsampleMask: scale must be a positive integer, got ${scale}`);
  const H = gh * scale;
  const W = gw * scale;
  const out = new Float32Array(batch * H * W);
  for (let b = 0; b < batch; b++) {
    for (let y = 0; y < H; y++) {
      const src = b * gh * gw + Math.floor(y / scale) * gw;
      const dst = (b * H + y) * W;
      for (let x = 0; x < W; x++) out[dst + x] = mask[src + Math.floor(x / scale)]!;
    }
  }
  return out;
}

/**
 * The reference's `upsample_mask` on a tensor: `[B, gh·gw]` → `[B, gh·s, gw·s]`. `grid` defaults to a square
 * grid (`gh = gw = √L`, as the reference assumes).
 */
export function upsampleMask(mask: tf.Tensor, scale: number, grid?: readonly [number, number]): tf.Tensor3D {
  if (mask.rank !== 2) throw new Error(`upsampleMask: expected a [B, L] mask, got shape [${mask.shape}]`);
  const [B, L] = mask.shape as [number, number];
  const g = grid ?? squareGrid(L);
  if (g[0] * g[1] !== L) throw new Error(`upsampleMask: grid ${g[0]}×${g[1]} does not hold L = ${L} patches`);
  if (!Number.isInteger(scale) || scale < 1) throw new RangeError(`upsampleMask: scale must be a positive integer, got ${scale}`);
  return tf.tidy(() => {
    const m = tf.reshape(mask, [B * g[0], 1, g[1], 1]);
    const t = tf.tile(m, [1, scale, 1, scale]);
    return tf.reshape(t, [B, g[0] * scale, g[1] * scale]) as tf.Tensor3D;
  });
}

/**
 * The mask at every stage of an encoder whose last stage has the patch grid: stage i of `numStages` gets
 * scale `2^(numStages − 1 − i)` (×8, ×4, ×2, ×1 for the four ConvNeXt stages; the stem output is stage 0).
 * Host data, each `[B, H_i, W_i]` flattened.
 */
export function stageMasksData(
  mask: ArrayLike<number>,
  batch: number,
  grid: readonly [number, number],
  numStages: number,
): { data: Float32Array; height: number; width: number }[] {
  const out: { data: Float32Array; height: number; width: number }[] = [];
  for (let i = 0; i < numStages; i++) {
    const s = 2 ** (numStages - 1 - i);
    out.push({ data: upsampleMaskData(mask, batch, grid, s), height: grid[0] * s, width: grid[1] * s });
  }
  return out;
}

export function squareGrid(L: number): [number, number] {
  const g = Math.round(Math.sqrt(L));
  if (g * g !== L) throw new Error(`a square patch grid needs L to be a perfect square, got L = ${L}; pass the grid`);
  return [g, g];
}
