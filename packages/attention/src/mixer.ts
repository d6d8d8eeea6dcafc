/**
 * The token-mixer interface shared by every mixer (MHSA, GPSA, window attention, depth-wise convolutions,
 * feed-forward over patches), so one trunk can swap them per block. A mixer owns everything the trunk asks of
 * it: its `kind`, its `forward`, its attention maps over the full patch grid (when it has any), its
 * multiply-accumulate count and its parameter shapes.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { Module } from '@softbias/tensor-ops';

export interface MixerInput {
  /** [B, N, C]: `numPrefixTokens` prefix tokens (class token) first, then the rows·cols patch tokens, row-major. */
  tokens: tf.Tensor;
  /** Patch grid [rows, cols]; rows·cols = N − numPrefixTokens. */
  grid: readonly [number, number];
  /** Tokens before the patch grid (0 or 1 for the class token). Grid-based mixers pass them through unchanged. */
  numPrefixTokens: number;
}

/** The token layout a mixer runs on, without the tokens (what MAC counts depend on). */
export type MixerGeometry = Pick<MixerInput, 'grid' | 'numPrefixTokens'>;

/**
 * One counted product of a mixer, per image: `macs` multiply-accumulates (a multiply-add counted once, as
 * fvcore and timm's profilers count; bias, norms, softmax and element-wise work are not counted). `name` is
 * relative to the mixer (`qkv`, `matmuls`, …); `op` is the kind of product (the `byOp` key of
 * @softbias/metrics' `countMacs`).
 */
export interface MixerMacs {
  name: string;
  op: 'linear' | 'attention' | 'depthwise' | 'conv2d';
  macs: number;
}

/** Options of {@link TokenMixer.macs}. */
export interface MixerMacsOptions {
  /**
   * Count work that eval mode computes once and caches (GPSA's positional projection). Default: as the next
   * forward pass runs (counted unless the cache already holds it).
   */
  countCached?: boolean;
}

/** Attention maps of one mixer for a batch (new tensors the caller disposes). */
export interface MixerAttentionMaps {
  /**
   * The attention the forward pass uses, over the full grid: [B, heads, T, T] with T = `numPrefixTokens` + P
   * (P = rows·cols patch tokens, row-major, after the prefix tokens). Rows are queries, columns keys.
   */
  mixed: tf.Tensor;
  /** Prefix tokens at the front of both axes of `mixed` (0 when the mixer attends over the patches only). */
  numPrefixTokens: number;
  /** GPSA: the content softmax [B, heads, P, P]. */
  content?: tf.Tensor;
  /** GPSA: the input-independent positional softmax [heads, P, P]. */
  positional?: tf.Tensor;
}

export abstract class TokenMixer extends Module {
  /** 'mhsa' | 'gpsa' | 'window' | 'dwconv' | 'ff-patches' | … */
  abstract readonly kind: string;
  /** [B, N, C] → [B, N, C]. Allocates intermediates: call inside `tf.tidy` (models do, once per block). */
  abstract forward(input: MixerInput): tf.Tensor;
  /**
   * Multiply-accumulates per image of one forward pass on `geometry` (eval mode: what a profiler of the
   * executed matmul and convolution kernels counts). Every mixer of @softbias/attention and @softbias/gpsa
   * implements it; the base throws naming the mixer.
   */
  macs(geometry: MixerGeometry, opts?: MixerMacsOptions): MixerMacs[] {
    void geometry;
    void opts;
    throw new Error(`${this.kind}: this mixer does not count its multiply-accumulates (implement macs(geometry))`);
  }

  /**
   * The attention the forward pass uses, over the full grid ([B, heads, T, T], see
   * {@link MixerAttentionMaps.mixed}). Only mixers that compute attention probabilities have it; the others
   * leave it undefined.
   */
  attentionMap?(input: MixerInput): tf.Tensor;
  /** {@link attentionMap} with the prefix-token count of its axes (and GPSA's content / positional parts). */
  attentionMaps?(input: MixerInput): MixerAttentionMaps;
  /** GPSA: σ(gating_param) per head [heads] (a new tensor). */
  gates?(): tf.Tensor;

  /**
   * Every parameter's PyTorch name (relative to the mixer) and shape, in registration order (what timm's
   * `state_dict()` holds for it).
   */
  parameterShapes(): [string, number[]][] {
    return this.namedParameters().map(([n, p]) => [n, p.torchShape]);
  }
}

/** Validate a mixer input against the mixer's width; throws naming the expected shape. */
export function checkMixerInput(kind: string, input: MixerInput, dim: number): void {
  const { tokens, grid, numPrefixTokens } = input;
  checkGeometry(kind, input);
  const n = grid[0] * grid[1] + numPrefixTokens;
  if (tokens.rank !== 3) {
    throw new Error(`${kind}: expected tokens [B, ${n}, ${dim}] (rank 3), got shape [${tokens.shape}]`);
  }
  if (tokens.shape[1] !== n || tokens.shape[2] !== dim) {
    throw new Error(
      `${kind}: expected tokens [B, ${n}, ${dim}] (grid ${grid[0]}×${grid[1]} + ${numPrefixTokens} prefix), got [${tokens.shape}]`,
    );
  }
}

/** Validate a grid and prefix-token count; throws naming the field. */
export function checkGeometry(kind: string, g: MixerGeometry): void {
  const { grid, numPrefixTokens } = g;
  if (!grid || grid.length !== 2 || !grid.every((v) => Number.isInteger(v) && v >= 1)) {
    throw new Error(`${kind}: grid must be [rows, cols] (positive integers), got [${grid}]`);
  }
  if (!Number.isInteger(numPrefixTokens) || numPrefixTokens < 0) {
    throw new Error(`${kind}: numPrefixTokens must be a non-negative integer, got ${numPrefixTokens}`);
  }
}
