/**
 * The ConvNeXt V2 encoder ops in two forms with the same numbers on visible sites:
 *
 * - dense-masked (`masked*`): computed on the whole `[B, H, W, C]` grid, masked sites zeroed after every op
 *   (the reference's dense equivalent of its sparse encoder);
 * - sparse (`sparse*`): visible sites only, as `[V, C]` rows of a {@link SiteIndex}.
 *
 * Every op reports its multiply-adds to an optional {@link MacCounter} (conventions in macs.ts).
 */
import * as tf from '@tensorflow/tfjs-core';
import { layerNorm, linear, nonOverlappingConv2d, gelu } from '@softbias/tensor-ops';
import { grn, grnMasked, grnRows, type GrnStats } from '@softbias/grn';
import type { MacCounter } from './macs.js';
import type { SiteIndex } from './sites.js';
import { pickRows } from './rows.js';
import { sparseDepthwiseConv, type DepthwiseStrategy } from './dwconv.js';
import type { BlockWeights, ConvWeights, LinearWeights, NormWeights } from './weights.js';

export interface OpOptions {
  counter?: MacCounter;
  /** Name prefix of the counted ops (e.g. `stages.1.blocks.0`). */
  label?: string;
}

export interface BlockOptions extends OpOptions {
  /** GRN statistics: pooled over the visible sites of the whole batch (reference) or per sample. */
  grnStats?: GrnStats;
  /** How the sparse depth-wise conv picks neighbours (default: by backend). */
  depthwiseStrategy?: DepthwiseStrategy;
}

/** LayerNorm eps of the encoder ops (stem, downsample, blocks): 1e-6, as the reference. */
export const LN_EPS = 1e-6;

function count(opts: OpOptions, op: string, macs: number): void {
  opts.counter?.add(opts.label ? `${op}:${opts.label}` : op, macs);
}

/** `[in, out]` from a linear or 1×1-conv weight. */
function matrix(w: tf.Tensor): tf.Tensor {
  if (w.rank === 2) return w;
  if (w.rank === 4 && w.shape[0] === 1 && w.shape[1] === 1) return tf.reshape(w, [w.shape[2]!, w.shape[3]!]);
  throw new Error(`expected a linear weight [in, out] (or [1, 1, in, out]), got [${w.shape}]`);
}

function lin(x: tf.Tensor, w: LinearWeights, opts: OpOptions, what: string): tf.Tensor {
  const m = matrix(w.weight);
  const rows = x.size / x.shape[x.rank - 1]!;
  count(opts, `linear:${what}`, rows * m.shape[0]! * m.shape[1]!);
  return linear(x, m, w.bias);
}

function norm(x: tf.Tensor, w: NormWeights, opts: OpOptions, what: string): tf.Tensor {
  count(opts, `layernorm:${what}`, 3 * x.size);
  return layerNorm(x, w.weight, w.bias, LN_EPS);
}

function act(x: tf.Tensor, opts: OpOptions): tf.Tensor {
  count(opts, 'gelu', x.size);
  return gelu(x);
}

function maskMul(x: tf.Tensor, visible: tf.Tensor, opts: OpOptions): tf.Tensor {
  count(opts, 'mask', x.size);
  return tf.mul(x, visible);
}

function checkVisible(x: tf.Tensor, visible: tf.Tensor, what: string): void {
  const [B, H, W] = x.shape;
  if (visible.rank !== 4 || visible.shape[0] !== B || visible.shape[1] !== H || visible.shape[2] !== W || visible.shape[3] !== 1) {
    throw new Error(`${what}: expected a visible mask of shape [${B}, ${H}, ${W}, 1] (1 = visible), got [${visible.shape}]`);
  }
}

// ---------------------------------------------------------------------------------------------- dense-masked

/** Stem, dense-masked: `LN(conv_k×k/s=k(img)) · visible` (the reference's `x *= (1 − mask)`). */
export function maskedStem(img: tf.Tensor, conv: ConvWeights, n: NormWeights, visible: tf.Tensor, opts: OpOptions = {}): tf.Tensor4D {
  const k = conv.weight.shape[0]!;
  return tf.tidy(() => {
    const y = nonOverlappingConv2d(img, conv.weight, conv.bias, k);
    checkVisible(y, visible, 'maskedStem');
    count(opts, 'conv:stem', y.size * k * k * img.shape[3]!);
    return maskMul(norm(y, n, opts, 'stem'), visible, opts) as tf.Tensor4D;
  });
}

/** Downsample, dense-masked: `LN → mask → conv 2×2/s2 → mask` (`visibleOut` at the coarse resolution). */
export function maskedDownsample(
  x: tf.Tensor,
  n: NormWeights,
  conv: ConvWeights,
  visibleIn: tf.Tensor,
  visibleOut: tf.Tensor,
  opts: OpOptions = {},
): tf.Tensor4D {
  checkVisible(x, visibleIn, 'maskedDownsample');
  return tf.tidy(() => {
    const y = maskMul(norm(x, n, opts, 'downsample'), visibleIn, opts);
    const z = nonOverlappingConv2d(y, conv.weight, conv.bias, 2);
    checkVisible(z, visibleOut, 'maskedDownsample (output)');
    count(opts, 'conv:downsample', z.size * 4 * x.shape[3]!);
    return maskMul(z, visibleOut, opts) as tf.Tensor4D;
  });
}

/**
 * ConvNeXt V2 block, dense-masked, exactly the reference's dense equivalent: dwconv → mask → LN → mask →
 * fc1 → mask → GELU → GRN (visible statistics) → mask → fc2 → mask → residual add.
 */
export function maskedBlock(x: tf.Tensor, w: BlockWeights, visible: tf.Tensor, opts: BlockOptions = {}): tf.Tensor4D {
  checkVisible(x, visible, 'maskedBlock');
  const k = w.convDw.weight.shape[0]!;
  return tf.tidy(() => {
    let y: tf.Tensor = tf.depthwiseConv2d(x as tf.Tensor4D, w.convDw.weight as tf.Tensor4D, 1, 'same');
    if (w.convDw.bias) y = tf.add(y, w.convDw.bias);
    count(opts, 'dwconv', y.size * k * k);
    y = maskMul(y, visible, opts);
    y = maskMul(norm(y, w.norm, opts, 'norm'), visible, opts);
    y = maskMul(lin(y, w.fc1, opts, 'fc1'), visible, opts);
    y = act(y, opts);
    count(opts, 'grn', 3 * y.size);
    count(opts, 'mask', 2 * y.size); // grnMasked masks its input and its output
    y = grnMasked(y, visible, w.grn.weight, w.grn.bias, { stats: opts.grnStats ?? 'batch' });
    y = maskMul(lin(y, w.fc2, opts, 'fc2'), visible, opts);
    count(opts, 'residual', y.size);
    return tf.add(x, y) as tf.Tensor4D;
  });
}

// ---------------------------------------------------------------------------------------------------- sparse

/**
 * Stem, sparse: the k×k stride-k conv computed only for the visible cells of `sites` (the stem grid), as
 * picked patch rows × the reshaped kernel, then LayerNorm. `img` [B, H, W, Cin] → rows `[V, C]`.
 */
export function sparseStem(img: tf.Tensor, conv: ConvWeights, n: NormWeights, sites: SiteIndex, opts: OpOptions = {}): tf.Tensor2D {
  const k = conv.weight.shape[0]!;
  const Cin = conv.weight.shape[2]!;
  const C = conv.weight.shape[3]!;
  const { batch: B, height: Hs, width: Ws } = sites;
  if (img.rank !== 4 || img.shape[0] !== B || img.shape[3] !== Cin || Math.floor(img.shape[1]! / k) !== Hs || Math.floor(img.shape[2]! / k) !== Ws) {
    throw new Error(`sparseStem: expected an image of shape [${B}, ${Hs * k}, ${Ws * k}, ${Cin}], got [${img.shape}]`);
  }
  return tf.tidy(() => {
    let xc = img;
    if (img.shape[1] !== Hs * k || img.shape[2] !== Ws * k) xc = tf.slice(img, [0, 0, 0, 0], [B, Hs * k, Ws * k, Cin]);
    // [B·Hs, k, Ws, k·Cin] → [B·Hs, Ws, k, k·Cin]: one row per cell in (kh, kw, c) order, HWIO's row order.
    const cells = tf.reshape(tf.transpose(tf.reshape(xc, [B * Hs, k, Ws, k * Cin]), [0, 2, 1, 3]), [B * Hs * Ws, k * k * Cin]);
    const rows = pickRows(cells, sites.siteOfRow, sites.rowOfSite);
    count(opts, 'conv:stem', sites.numRows * k * k * Cin * C);
    let y = tf.matMul(rows, tf.reshape(conv.weight, [k * k * Cin, C]));
    if (conv.bias) y = tf.add(y, conv.bias);
    return norm(y, n, opts, 'stem') as tf.Tensor2D;
  });
}

/**
 * Downsample, sparse: LayerNorm on the rows, then the 2×2 stride-2 conv for each visible coarse cell from
 * its four (visible) children: rows of `fine` → rows of `coarse` (= `fine.coarsen(2)`).
 */
export function sparseDownsample(
  rows: tf.Tensor,
  n: NormWeights,
  conv: ConvWeights,
  fine: SiteIndex,
  coarse: SiteIndex,
  opts: OpOptions = {},
): tf.Tensor2D {
  const C = conv.weight.shape[2]!;
  const O = conv.weight.shape[3]!;
  if (rows.rank !== 2 || rows.shape[0] !== fine.numRows || rows.shape[1] !== C) {
    throw new Error(`sparseDownsample: expected rows of shape [${fine.numRows}, ${C}], got [${rows.shape}]`);
  }
  const children = fine.childRows(coarse, 2);
  return tf.tidy(() => {
    const y = norm(rows, n, opts, 'downsample');
    const picked = tf.reshape(pickRows(y, children), [coarse.numRows, 4 * C]);
    count(opts, 'conv:downsample', coarse.numRows * 4 * C * O);
    const z = tf.matMul(picked, tf.reshape(conv.weight, [4 * C, O]));
    return (conv.bias ? tf.add(z, conv.bias) : z) as tf.Tensor2D;
  });
}

/**
 * ConvNeXt V2 block on visible rows: sparse dwconv → LN → fc1 → GELU → GRN (pooled over the batch's visible
 * rows, or per sample) → fc2 → residual add.
 */
export function sparseBlock(rows: tf.Tensor, w: BlockWeights, sites: SiteIndex, opts: BlockOptions = {}): tf.Tensor2D {
  const k = w.convDw.weight.shape[0]!;
  const stats = opts.grnStats ?? 'batch';
  return tf.tidy(() => {
    let y: tf.Tensor = sparseDepthwiseConv(rows, sites, w.convDw.weight, w.convDw.bias, { strategy: opts.depthwiseStrategy });
    count(opts, 'dwconv', y.size * k * k);
    y = norm(y, w.norm, opts, 'norm');
    y = act(lin(y, w.fc1, opts, 'fc1'), opts);
    count(opts, 'grn', 3 * y.size);
    if (stats === 'batch') {
      y = grnRows(y, w.grn.weight, w.grn.bias);
    } else if (sites.uniformRows) {
      // Every image has the same number of visible rows (random masks): per-image statistics on [B, n, C].
      const [V, Ch] = y.shape as [number, number];
      y = tf.reshape(grn(tf.reshape(y, [sites.batch, V / sites.batch, Ch]), w.grn.weight, w.grn.bias), [V, Ch]);
    } else {
      const seg = Array.from({ length: sites.batch }, (_, b) => sites.rowsOf(b));
      count(opts, 'grn', 2 * sites.batch * y.size); // the per-sample indicator matmuls
      y = grnRows(y, w.grn.weight, w.grn.bias, { segments: seg });
    }
    y = lin(y, w.fc2, opts, 'fc2');
    count(opts, 'residual', y.size);
    return tf.add(rows, y) as tf.Tensor2D;
  });
}
