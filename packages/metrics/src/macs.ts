/**
 * Multiply-accumulate (MAC) counts.
 *
 * The papers' "FLOPs" are MACs (one multiply-add counted once, as fvcore and timm's profilers count): ConViT-Ti
 * is listed at 1.0 G, ConvNeXtV2-Atto at 0.55 G. Counted here: linear layers and convolutions (bias, norms,
 * activations, softmax and other element-wise work are not counted, as in those tools), and the attention
 * matmuls Q·Kᵀ and A·V.
 *
 * Two ways to count:
 * - analytically: `countMacs` sums op descriptions or counts already made — a ConViT model's own
 *   `macs()`, where each block's token mixer counts itself (GPSA, MHSA, window, dwconv, ff-patches), or
 *   `convitMacOps` / `convnextv2MacOps` built from a config (`convitMacOps` covers the default GPSA / MHSA
 *   layout only and refuses other mixers);
 * - by running a function once under `tf.profile` and counting the matmul and convolution kernels it actually
 *   executed (`profileMacs`), which sees what a model really computes (cached positional attention, for one);
 *   softbias' fused wasm kernels (`SoftbiasLinear`, `SoftbiasAttention`) are counted like the products they fuse.
 */
import * as tf from '@tensorflow/tfjs-core';

export type MacOp =
  /** A linear layer applied to `rows` vectors: rows · in · out. */
  | { op: 'linear'; name: string; rows: number; inFeatures: number; outFeatures: number }
  /** A convolution: outH · outW · outChannels · (inChannels / groups) · kh · kw (per image; `batch` multiplies). */
  | {
      op: 'conv2d';
      name: string;
      outH: number;
      outW: number;
      inChannels: number;
      outChannels: number;
      kernel: number | readonly [number, number];
      groups?: number;
    }
  /** A depth-wise convolution: outH · outW · channels · kh · kw. */
  | { op: 'depthwise'; name: string; outH: number; outW: number; channels: number; kernel: number | readonly [number, number] }
  /** Attention matmuls for `tokens` queries over `keys` keys (default tokens), total width `dim`: Q·Kᵀ + A·V = 2 · N · Nk · dim. */
  | { op: 'attention'; name: string; tokens: number; dim: number; keys?: number }
  /** A plain matmul [m, k] × [k, n], `batch` times. */
  | { op: 'matmul'; name: string; m: number; k: number; n: number; batch?: number };

/**
 * A product already counted by its owner (a token mixer's or a model's `macs()`): `{ name, op, macs }`,
 * summed as is.
 */
export interface CountedMacs {
  name: string;
  op: string;
  macs: number;
}

export interface MacReport {
  total: number;
  /** Per op, in order. */
  entries: { name: string; op: string; macs: number }[];
  /** Totals per op kind. */
  byOp: Record<string, number>;
}

const pair = (k: number | readonly [number, number]): [number, number] => (typeof k === 'number' ? [k, k] : [k[0], k[1]]);

export function linearMacs(rows: number, inFeatures: number, outFeatures: number): number {
  return rows * inFeatures * outFeatures;
}
export function conv2dMacs(outH: number, outW: number, inChannels: number, outChannels: number, kernel: number | readonly [number, number], groups = 1): number {
  if (inChannels % groups !== 0) throw new Error(`conv2dMacs: ${inChannels} input channels are not divisible into ${groups} groups`);
  const [kh, kw] = pair(kernel);
  return outH * outW * outChannels * (inChannels / groups) * kh * kw;
}
export function depthwiseMacs(outH: number, outW: number, channels: number, kernel: number | readonly [number, number]): number {
  const [kh, kw] = pair(kernel);
  return outH * outW * channels * kh * kw;
}
export function attentionMacs(tokens: number, dim: number, keys = tokens): number {
  return 2 * tokens * keys * dim;
}

/** MACs of one op. */
export function opMacs(o: MacOp): number {
  switch (o.op) {
    case 'linear':
      return linearMacs(o.rows, o.inFeatures, o.outFeatures);
    case 'conv2d':
      return conv2dMacs(o.outH, o.outW, o.inChannels, o.outChannels, o.kernel, o.groups);
    case 'depthwise':
      return depthwiseMacs(o.outH, o.outW, o.channels, o.kernel);
    case 'attention':
      return attentionMacs(o.tokens, o.dim, o.keys);
    case 'matmul':
      return (o.batch ?? 1) * o.m * o.k * o.n;
  }
}

/** Sum a model description (per image): op descriptions, or counts already made (e.g. `model.macs()`). */
export function countMacs(ops: readonly (MacOp | CountedMacs)[]): MacReport {
  const entries = ops.map((o) => ({ name: o.name, op: o.op, macs: 'macs' in o ? o.macs : opMacs(o) }));
  const byOp: Record<string, number> = {};
  for (const e of entries) byOp[e.op] = (byOp[e.op] ?? 0) + e.macs;
  return { total: entries.reduce((s, e) => s + e.macs, 0), entries, byOp };
}

/** MACs summed per name prefix of `depth` dot-separated components ('blocks.3' at depth 2). */
export function groupMacs(report: MacReport, depth = 1): Record<string, number> {
  const out: Record<string, number> = {};
  for (const e of report.entries) {
    const k = e.name.split('.').slice(0, depth).join('.');
    out[k] = (out[k] ?? 0) + e.macs;
  }
  return out;
}

export interface ConvitMacConfig {
  imgSize: number | readonly [number, number];
  patchSize: number;
  inChans?: number;
  /** Total width (192 for ConViT-Ti). */
  embedDim: number;
  depth: number;
  numHeads: number;
  /** Blocks 0 … localUpToLayer−1 are GPSA (0 for the DeiT twin). */
  localUpToLayer: number;
  mlpRatio?: number;
  numClasses?: number;
  /**
   * Count GPSA's positional projection (3 → heads over N² relative positions) per image. Default true, as a
   * profiler of the reference counts it; pass false for a model that caches it in eval mode.
   */
  countPositional?: boolean;
  /**
   * The block mixers (a resolved ConViT config's `mixers`). This table describes GPSA and MHSA only; another
   * kind throws, pointing to the model's own count (`countMacs(model.macs())`).
   */
  mixers?: readonly { kind: string }[];
}

/**
 * ConViT / DeiT-twin description: patch embedding, GPSA blocks on the N patch tokens (qk, v, positional
 * projection, content attention, proj, MLP), the class token joined before the first MHSA block (N + 1 tokens:
 * qkv, attention, proj, MLP), head.
 */
export function convitMacOps(cfg: ConvitMacConfig): MacOp[] {
  const [H, W] = pair(cfg.imgSize);
  const p = cfg.patchSize;
  const C = cfg.embedDim;
  const inC = cfg.inChans ?? 3;
  const hidden = Math.floor(C * (cfg.mlpRatio ?? 4));
  const N = Math.floor(H / p) * Math.floor(W / p);
  cfg.mixers?.forEach((m, i) => {
    const want = i < cfg.localUpToLayer ? 'gpsa' : 'mhsa';
    if (m.kind !== want) {
      throw new Error(
        `convitMacOps: block ${i} is '${m.kind}', not the default '${want}' this table describes; ` +
          'count the built model instead: countMacs(model.macs()) (each mixer counts its own MACs)',
      );
    }
  });
  const ops: MacOp[] = [
    { op: 'conv2d', name: 'patch_embed.proj', outH: Math.floor(H / p), outW: Math.floor(W / p), inChannels: inC, outChannels: C, kernel: p },
  ];
  for (let i = 0; i < cfg.depth; i++) {
    const b = `blocks.${i}`;
    if (i < cfg.localUpToLayer) {
      ops.push({ op: 'linear', name: `${b}.attn.qk`, rows: N, inFeatures: C, outFeatures: 2 * C });
      ops.push({ op: 'linear', name: `${b}.attn.v`, rows: N, inFeatures: C, outFeatures: C });
      if (cfg.countPositional ?? true) ops.push({ op: 'linear', name: `${b}.attn.pos_proj`, rows: N * N, inFeatures: 3, outFeatures: cfg.numHeads });
      ops.push({ op: 'attention', name: `${b}.attn.matmuls`, tokens: N, dim: C });
      ops.push({ op: 'linear', name: `${b}.attn.proj`, rows: N, inFeatures: C, outFeatures: C });
      ops.push({ op: 'linear', name: `${b}.mlp.fc1`, rows: N, inFeatures: C, outFeatures: hidden });
      ops.push({ op: 'linear', name: `${b}.mlp.fc2`, rows: N, inFeatures: hidden, outFeatures: C });
    } else {
      const M = N + 1;
      ops.push({ op: 'linear', name: `${b}.attn.qkv`, rows: M, inFeatures: C, outFeatures: 3 * C });
      ops.push({ op: 'attention', name: `${b}.attn.matmuls`, tokens: M, dim: C });
      ops.push({ op: 'linear', name: `${b}.attn.proj`, rows: M, inFeatures: C, outFeatures: C });
      ops.push({ op: 'linear', name: `${b}.mlp.fc1`, rows: M, inFeatures: C, outFeatures: hidden });
      ops.push({ op: 'linear', name: `${b}.mlp.fc2`, rows: M, inFeatures: hidden, outFeatures: C });
    }
  }
  if ((cfg.numClasses ?? 1000) > 0) ops.push({ op: 'linear', name: 'head', rows: 1, inFeatures: C, outFeatures: cfg.numClasses ?? 1000 });
  return ops;
}

export interface ConvnextV2MacConfig {
  imgSize: number | readonly [number, number];
  inChans?: number;
  depths: readonly number[];
  dims: readonly number[];
  numClasses?: number;
}

/**
 * ConvNeXt V2 description: stem (4×4 stride 4), per stage a 2×2 stride-2 downsampling conv (after the first)
 * and blocks of depth-wise 7×7 conv, pwconv1 (C → 4C), GRN (element-wise, not counted), pwconv2 (4C → C);
 * head. Odd sizes floor at every stride, as the reference.
 */
export function convnextv2MacOps(cfg: ConvnextV2MacConfig): MacOp[] {
  let [h, w] = pair(cfg.imgSize);
  const inC = cfg.inChans ?? 3;
  const ops: MacOp[] = [];
  h = Math.floor(h / 4);
  w = Math.floor(w / 4);
  ops.push({ op: 'conv2d', name: 'stem.0', outH: h, outW: w, inChannels: inC, outChannels: cfg.dims[0]!, kernel: 4 });
  cfg.depths.forEach((d, s) => {
    const C = cfg.dims[s]!;
    if (s > 0) {
      h = Math.floor(h / 2);
      w = Math.floor(w / 2);
      ops.push({ op: 'conv2d', name: `stages.${s}.downsample.1`, outH: h, outW: w, inChannels: cfg.dims[s - 1]!, outChannels: C, kernel: 2 });
    }
    for (let b = 0; b < d; b++) {
      const n = `stages.${s}.blocks.${b}`;
      ops.push({ op: 'depthwise', name: `${n}.conv_dw`, outH: h, outW: w, channels: C, kernel: 7 });
      ops.push({ op: 'linear', name: `${n}.mlp.fc1`, rows: h * w, inFeatures: C, outFeatures: 4 * C });
      ops.push({ op: 'linear', name: `${n}.mlp.fc2`, rows: h * w, inFeatures: 4 * C, outFeatures: C });
    }
  });
  if ((cfg.numClasses ?? 1000) > 0) ops.push({ op: 'linear', name: 'head.fc', rows: 1, inFeatures: cfg.dims[cfg.dims.length - 1]!, outFeatures: cfg.numClasses ?? 1000 });
  return ops;
}

/** ConViT-family MACs per image. */
export function convitMacs(cfg: ConvitMacConfig): MacReport {
  return countMacs(convitMacOps(cfg));
}
/** ConvNeXt V2 MACs per image. */
export function convnextv2Macs(cfg: ConvnextV2MacConfig): MacReport {
  return countMacs(convnextv2MacOps(cfg));
}

export interface ProfiledMacs {
  total: number;
  /** MACs per kernel name (BatchMatMul, Conv2D, DepthwiseConv2dNative, their fused forms). */
  byKernel: Record<string, number>;
  /** Kernels that ran, by name (counted or not). */
  kernelsRun: Record<string, number>;
}

const prod = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** MACs of one executed kernel from its input and output shapes (0 for kernels that are not matmuls/convs). */
export function kernelMacs(name: string, inputShapes: (readonly number[] | null)[], outputShapes: (readonly number[] | null)[]): number {
  const out = outputShapes[0];
  if (!out) return 0;
  const outSize = prod(out);
  switch (name) {
    case 'BatchMatMul':
    case '_FusedMatMul': {
      const a = inputShapes[0];
      if (!a || a.length < 2) return 0;
      // K = |a| / (batch_a · M), whichever of a's last two axes is K (transposeA or not).
      const m = out[out.length - 2]!;
      const batchA = prod(a.slice(0, -2));
      return outSize * (prod(a) / (batchA * m));
    }
    case 'SoftbiasLinear': {
      // softbias' fused linear (wasm): x [M, K], weight [K, N], bias [N] → y [M, N]: |y|·K multiply-adds.
      const w = inputShapes[1];
      return w && w.length === 2 ? outSize * w[0]! : 0;
    }
    case 'SoftbiasAttention': {
      // softbias' fused attention (wasm): q [..., M, D], k [..., N, D], v [..., N, E] → o [..., M, E] (first
      // output): q·kᵀ is |q|·N multiply-adds, p·v is |o|·N.
      const [q, k] = inputShapes;
      if (!q || !k || k.length < 2) return 0;
      const n = k[k.length - 2]!;
      return prod(q) * n + outSize * n;
    }
    case 'Conv2D':
    case 'FusedConv2D': {
      const f = inputShapes[1];
      return f ? outSize * f[0]! * f[1]! * f[2]! : 0;
    }
    case 'DepthwiseConv2dNative':
    case 'FusedDepthwiseConv2D': {
      const f = inputShapes[1];
      return f ? outSize * f[0]! * f[1]! : 0;
    }
    default:
      return 0;
  }
}

/**
 * Run `fn` once under `tf.profile` and count the MACs of the matmul and convolution kernels it executed.
 * The result of `fn` (tensors) is disposed. For a model, call it on one image to get MACs per image.
 */
export async function profileMacs(fn: () => tf.TensorContainer | Promise<tf.TensorContainer>): Promise<ProfiledMacs> {
  let result: tf.TensorContainer | undefined;
  const info = await tf.profile(async () => {
    result = await fn();
    return result as tf.Tensor;
  });
  const byKernel: Record<string, number> = {};
  const kernelsRun: Record<string, number> = {};
  let total = 0;
  for (const k of info.kernels) {
    kernelsRun[k.name] = (kernelsRun[k.name] ?? 0) + 1;
    const m = kernelMacs(k.name, k.inputShapes as (number[] | null)[], k.outputShapes as (number[] | null)[]);
    if (m > 0) {
      byKernel[k.name] = (byKernel[k.name] ?? 0) + m;
      total += m;
    }
  }
  if (result !== undefined) tf.dispose(result);
  return { total, byKernel, kernelsRun };
}
