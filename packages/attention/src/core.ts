/**
 * Internal building blocks shared by the mixers: the multi-head attention core (per-head 2-D matmuls or one
 * batched matmul) and prefix-token handling. Gradients of every matmul come from @softbias/tensor-ops' global
 * BatchMatMul gradient (explicit transposes, flag-free products).
 */
import * as tf from '@tensorflow/tfjs-core';
import { hasSimdBatchMatMul } from '@softbias/tensor-ops';

/**
 * How the attention products are computed.
 * - `per-head`: one 2-D matmul per (sample, head) with K transposed explicitly (rank-4 transpose, once for all
 *   heads). The wasm backend only runs flag-free 2-D matmuls on its fast (XNNPACK) path.
 * - `batched`: one batched matmul `q·kᵀ` over [B, heads] (fewest ops: best for many small windows and on GPUs).
 * - `auto`: `batched`, except on cpu and on wasm without @softbias/tensor-ops' SIMD BatchMatMul (tfjs' own
 *   kernel loops over batched products in scalar code): there `per-head` when rows are long
 *   (N ≥ {@link PER_HEAD_MIN_TOKENS}) or there are few (sequence, head) pairs (≤ {@link PER_HEAD_MAX_PAIRS}).
 */
export type AttentionStrategy = 'auto' | 'per-head' | 'batched';

/**
 * Measured on wasm with tfjs' own BatchMatMul (bench/mixers.mjs, C = 192, 3–4 heads, interleaved medians): per-head is 1.5–4× faster
 * forward and 1.3–3× forward+backward from N ≈ 100 on; at N = 49–64 it wins only while there are few
 * (sequence, head) pairs (7×7 windows of a 14×14 grid: 2× faster at batch 1, 3.7× slower at batch 8).
 */
export const PER_HEAD_MIN_TOKENS = 100;
export const PER_HEAD_MAX_PAIRS = 16;

export function resolveStrategy(strategy: AttentionStrategy, n: number, pairs: number): 'per-head' | 'batched' {
  if (strategy !== 'auto') return strategy;
  const backend = tf.getBackend();
  if ((backend !== 'wasm' && backend !== 'cpu') || (backend === 'wasm' && hasSimdBatchMatMul())) return 'batched';
  return n >= PER_HEAD_MIN_TOKENS || pairs <= PER_HEAD_MAX_PAIRS ? 'per-head' : 'batched';
}

export interface AttentionResult {
  /** [B·N, C]: heads concatenated per token (head h in channels h·hd:(h+1)·hd). */
  out: tf.Tensor2D;
  /** [B, heads, N, N] attention probabilities (after dropout when it is active), when requested. */
  attn?: tf.Tensor4D;
}

export interface AttentionCoreOptions {
  strategy: AttentionStrategy;
  /** Applied to the attention probabilities (attention dropout); identity when omitted. */
  dropAttn?: (a: tf.Tensor) => tf.Tensor;
  /** Also return the attention probabilities. */
  returnAttention?: boolean;
}

/**
 * Scaled dot-product attention from a fused projection `qkv` [B·N, 3C] laid out `[q | k | v]` (each C wide,
 * head h using channels h·hd:(h+1)·hd), scale hd^-0.5, softmax over the keys. Call inside `tf.tidy`.
 */
export function attentionFromQkv(
  qkv: tf.Tensor2D,
  batch: number,
  tokens: number,
  heads: number,
  opts: AttentionCoreOptions,
): AttentionResult {
  const c3 = qkv.shape[1];
  const C = c3 / 3;
  const hd = C / heads;
  const B = batch;
  const N = tokens;
  const scale = hd ** -0.5;
  const drop = opts.dropAttn ?? ((a: tf.Tensor) => a);
  const [q3, k3, v3] = tf.split(tf.reshape(qkv, [B, N, c3]), 3, 2) as [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D];
  // [B, N, C] → [B, heads, N, hd] (rank-4 transposes only).
  const toHeads = (t: tf.Tensor) => tf.transpose(tf.reshape(t, [B, N, heads, hd]), [0, 2, 1, 3]);
  const q = toHeads(tf.mul(q3, scale));
  const v = toHeads(v3);
  let o: tf.Tensor;
  let attn: tf.Tensor4D | undefined;
  if (resolveStrategy(opts.strategy, N, B * heads) === 'per-head') {
    const kT = tf.transpose(tf.reshape(k3, [B, N, heads, hd]), [0, 2, 3, 1]); // [B, heads, hd, N]
    const qs = tf.unstack(tf.reshape(q, [B * heads, N, hd])) as tf.Tensor2D[];
    const ks = tf.unstack(tf.reshape(kT, [B * heads, hd, N])) as tf.Tensor2D[];
    const vs = tf.unstack(tf.reshape(v, [B * heads, N, hd])) as tf.Tensor2D[];
    const outs: tf.Tensor2D[] = [];
    const maps: tf.Tensor[] = [];
    for (let i = 0; i < B * heads; i++) {
      const a = drop(tf.softmax(tf.matMul(qs[i]!, ks[i]!))) as tf.Tensor2D;
      if (opts.returnAttention) maps.push(a);
      outs.push(tf.matMul(a, vs[i]!));
    }
    o = tf.reshape(tf.stack(outs), [B, heads, N, hd]);
    if (opts.returnAttention) attn = tf.reshape(tf.stack(maps), [B, heads, N, N]) as tf.Tensor4D;
  } else {
    const k = toHeads(k3);
    const a = drop(tf.softmax(tf.matMul(q, k, false, true))) as tf.Tensor4D;
    if (opts.returnAttention) attn = a;
    o = tf.matMul(a, v);
  }
  const out = tf.reshape(tf.transpose(o, [0, 2, 1, 3]), [B * N, C]) as tf.Tensor2D;
  return attn ? { out, attn } : { out };
}

/** Split [B, N, C] tokens into the prefix [B, p, C] (null when p = 0) and the patch tokens [B, N − p, C]. */
export function splitPrefix(tokens: tf.Tensor, numPrefixTokens: number): [tf.Tensor3D | null, tf.Tensor3D] {
  const [B, N, C] = tokens.shape as [number, number, number];
  if (numPrefixTokens === 0) return [null, tokens as tf.Tensor3D];
  return [
    tf.slice(tokens, [0, 0, 0], [B, numPrefixTokens, C]) as tf.Tensor3D,
    tf.slice(tokens, [0, numPrefixTokens, 0], [B, N - numPrefixTokens, C]) as tf.Tensor3D,
  ];
}

/** Put the (unchanged) prefix tokens back in front of the mixed patch tokens. */
export function joinPrefix(prefix: tf.Tensor3D | null, patches: tf.Tensor): tf.Tensor3D {
  return (prefix ? tf.concat([prefix, patches], 1) : patches) as tf.Tensor3D;
}

export function checkPositiveInt(what: string, name: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`${what}: ${name} must be a positive integer, got ${v}`);
}
