/**
 * A whole ConvNeXt V2 encoder under a patch mask, in the dense-masked form (reference semantics) or the
 * sparse form (visible rows only). Same weights, same numbers on visible sites; masked sites of the output are 0.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { GrnStats } from '@softbias/grn';
import { SiteIndex } from './sites.js';
import { upsampleMaskData } from './mask.js';
import { toDense } from './rows.js';
import type { MacCounter } from './macs.js';
import type { DepthwiseStrategy } from './dwconv.js';
import { maskedBlock, maskedDownsample, maskedStem, sparseBlock, sparseDownsample, sparseStem } from './ops.js';
import { describeEncoder, type EncoderWeights } from './weights.js';

/** A patch mask `[B, L]`, 1 = removed: a tensor, or host data (row-major). */
export type PatchMask = tf.Tensor | ArrayLike<number>;

export interface MaskedEncoderOptions {
  /** GRN statistics in the encoder: pooled over the whole batch's visible sites (reference, default) or per sample. */
  grnStats?: GrnStats;
  /** Multiply-add counter (every op adds its count). */
  counter?: MacCounter;
  /** Also return every stage's output (dense, zeros on masked sites). */
  returnStages?: boolean;
  /** Sparse form: how the depth-wise conv picks neighbours (default: by backend). */
  depthwiseStrategy?: DepthwiseStrategy;
}

export interface MaskedEncoderResult {
  /** Last stage output `[B, gh, gw, C]`, 0 on masked cells. */
  out: tf.Tensor4D;
  /** Stage outputs (with `returnStages`), dense NHWC. */
  stages: tf.Tensor4D[];
}

/** The mask as host data plus the image's patch grid, validated. */
export function resolvePatchMask(
  img: tf.Tensor,
  mask: PatchMask,
  totalStride: number,
): { data: Float32Array; batch: number; grid: [number, number] } {
  if (img.rank !== 4) throw new Error(`expected an image batch [B, H, W, C], got shape [${img.shape}]`);
  const [B, H, W] = img.shape as [number, number, number, number];
  if (H % totalStride !== 0 || W % totalStride !== 0 || H < totalStride || W < totalStride) {
    throw new Error(`masked encoder: image sides must be positive multiples of ${totalStride}, got [${img.shape}]`);
  }
  const grid: [number, number] = [H / totalStride, W / totalStride];
  const L = grid[0] * grid[1];
  let data: Float32Array;
  if (mask instanceof tf.Tensor) {
    if (mask.rank !== 2 || mask.shape[0] !== B || mask.shape[1] !== L) {
      throw new Error(`masked encoder: expected a mask of shape [${B}, ${L}] (1 = removed), got [${mask.shape}]`);
    }
    data = Float32Array.from(mask.dataSync());
  } else {
    if (mask.length !== B * L) throw new Error(`masked encoder: expected a [${B}, ${L}] mask (${B * L} values), got ${mask.length}`);
    data = Float32Array.from(mask);
  }
  for (let i = 0; i < data.length; i++) {
    if (data[i] !== 0 && data[i] !== 1) throw new Error(`masked encoder: mask values must be 0 (visible) or 1 (removed), got ${data[i]}`);
  }
  return { data, batch: B, grid };
}

/** Site indices of every stage (stem grid first) for a patch mask on the last stage's grid. */
export function stageSites(mask: ArrayLike<number>, batch: number, grid: readonly [number, number], numStages: number): SiteIndex[] {
  const out: SiteIndex[] = [];
  for (let i = 0; i < numStages; i++) out.push(SiteIndex.fromPatchMask(mask, batch, grid, 2 ** (numStages - 1 - i)));
  return out;
}

function strideOf(w: EncoderWeights): number {
  const d = describeEncoder(w);
  return d.stemKernel * 2 ** (w.stages.length - 1);
}

/**
 * Dense-masked encoder (the reference's dense equivalent of its sparse encoder): computed on the full grid,
 * masked sites zeroed after every op. `img` [B, H, W, Cin] with H, W multiples of the total stride (32).
 */
export function maskedDenseEncoder(
  img: tf.Tensor,
  mask: PatchMask,
  weights: EncoderWeights,
  opts: MaskedEncoderOptions = {},
): MaskedEncoderResult {
  const n = weights.stages.length;
  const { data, batch, grid } = resolvePatchMask(img, mask, strideOf(weights));
  const visible = (i: number): tf.Tensor => {
    const s = 2 ** (n - 1 - i);
    const m = upsampleMaskData(data, batch, grid, s);
    for (let j = 0; j < m.length; j++) m[j] = 1 - m[j]!;
    return tf.tensor4d(m, [batch, grid[0] * s, grid[1] * s, 1], 'float32');
  };
  const vis = weights.stages.map((_, i) => visible(i));
  const stages: tf.Tensor4D[] = [];
  try {
    let x: tf.Tensor4D = maskedStem(img, weights.stem.conv, weights.stem.norm, vis[0]!, { ...opts, label: 'stem' });
    weights.stages.forEach((st, i) => {
      if (st.downsample) {
        const y = maskedDownsample(x, st.downsample.norm, st.downsample.conv, vis[i - 1]!, vis[i]!, {
          ...opts,
          label: `stages.${i}.downsample`,
        });
        if (!stages.includes(x)) x.dispose();
        x = y;
      }
      st.blocks.forEach((b, j) => {
        const y = maskedBlock(x, b, vis[i]!, { ...opts, label: `stages.${i}.blocks.${j}` });
        if (!stages.includes(x)) x.dispose();
        x = y;
      });
      if (opts.returnStages) stages.push(x);
    });
    return { out: stages.includes(x) ? (tf.clone(x) as tf.Tensor4D) : x, stages };
  } finally {
    for (const v of vis) v.dispose();
  }
}

/**
 * Sparse encoder: the stem only for visible cells, then every op on the visible rows of each stage
 * (`[V_i, C_i]`), written back to a dense `[B, gh, gw, C]` map (zeros on masked cells) at the end.
 * Same weights and the same numbers as {@link maskedDenseEncoder}.
 */
export function sparseEncoder(
  img: tf.Tensor,
  mask: PatchMask,
  weights: EncoderWeights,
  opts: MaskedEncoderOptions = {},
): MaskedEncoderResult {
  const n = weights.stages.length;
  const { data, batch, grid } = resolvePatchMask(img, mask, strideOf(weights));
  const sites = stageSites(data, batch, grid, n);
  const stages: tf.Tensor4D[] = [];
  let rows: tf.Tensor2D = sparseStem(img, weights.stem.conv, weights.stem.norm, sites[0]!, { ...opts, label: 'stem' });
  weights.stages.forEach((st, i) => {
    if (st.downsample) {
      const y = sparseDownsample(rows, st.downsample.norm, st.downsample.conv, sites[i - 1]!, sites[i]!, {
        ...opts,
        label: `stages.${i}.downsample`,
      });
      rows.dispose();
      rows = y;
    }
    st.blocks.forEach((b, j) => {
      const y = sparseBlock(rows, b, sites[i]!, { ...opts, label: `stages.${i}.blocks.${j}` });
      rows.dispose();
      rows = y;
    });
    if (opts.returnStages) stages.push(toDense(rows, sites[i]!));
  });
  const out = toDense(rows, sites[n - 1]!);
  rows.dispose();
  return { out, stages };
}
