/**
 * Building blocks shared by the mixers (MHSA, window attention and @softbias/gpsa's GPSA): the one multi-head
 * attention core (per-head 2-D matmuls or one batched matmul, one `auto` rule) and prefix-token handling. Gradients of every matmul come from @softbias/tensor-ops' global
 * BatchMatMul gradient (explicit transposes, flag-free products).
 */
import * as tf from '@tensorflow/tfjs-core';
import { fusedAttentionForward, hasSimdBatchMatMul, linear } from '@softbias/tensor-ops';

/**
 * How the attention products are computed.
 * - `per-head`: one 2-D matmul per (sample, head) with K transposed explicitly (rank-4 transpose, once for all
 *   heads). The wasm backend only runs flag-free 2-D matmuls on its fast (XNNPACK) path.
 * - `batched`: one batched matmul `q·kᵀ` over [B, heads] (fewest ops: best for many small windows and on GPUs).
 * - `auto`: `batched`, except on cpu and on wasm without @softbias/tensor-ops' SIMD BatchMatMul (tfjs' own
 *   kernel loops over batched products in scalar code): there `per-head` when rows are long
 *   (N ≥ {@link PER_HEAD_MIN_TOKENS}) or there are few (sequence, head) pairs (≤ {@link PER_HEAD_MAX_PAIRS}).
 *   The one rule of every attention mixer (MHSA, window attention, GPSA).
 */
export type AttentionStrategy = 'auto' | 'per-head' | 'batched';

/**
 * Measured on wasm with tfjs' own BatchMatMul (bench/mixers.mjs, C = 192, 3–4 heads, interleaved medians): per-head is 1.5–4× faster
 * forward and 1.3–3× forward+backward from N ≈ 100 on; at N = 49–64 it wins only while there are few
 * (sequence, head) pairs (7×7 windows of a 14×14 grid: 2× faster at batch 1, 3.7× slower at batch 8).
 */
export const PER_HEAD_MIN_TOKENS = 100;
export const PER_HEAD_MAX_PAIRS = 16;

/** The `auto` rule (see {@link AttentionStrategy}) for N tokens per sequence and `pairs` (sequence, head) pairs. */
export function resolveStrategy(strategy: AttentionStrategy, n: number, pairs: number): 'per-head' | 'batched' {
  if (strategy !== 'auto') return strategy;
  const backend = tf.getBackend();
  if ((backend !== 'wasm' && backend !== 'cpu') || (backend === 'wasm' && hasSimdBatchMatMul())) return 'batched';
  return n >= PER_HEAD_MIN_TOKENS || pairs <= PER_HEAD_MAX_PAIRS ? 'per-head' : 'batched';
}

/** A linear projection's weight (tfjs layout [C_in, C_out]) and bias ([C_out], null without). */
export interface Projection {
  weight: tf.Tensor;
  bias: tf.Tensor | null;
}

/**
 * Where q, k and v come from:
 * - the fused projection `qkv` [B·N, 3C] laid out `[q | k | v]`;
 * - its input [B·N, C_in] and the projection's weight [C_in, 3C] and bias [3C], so q, k and v come from three
 *   products with the thirds of the weight (no split of the activations);
 * - the input and one projection each for q, k and v (GPSA: the halves of `qk`, and `v`).
 */
export type QkvSource =
  | tf.Tensor2D
  | { x: tf.Tensor2D; weight: tf.Tensor; bias: tf.Tensor | null }
  | { x: tf.Tensor2D; q: Projection; k: Projection; v: Projection };

export interface AttentionResult {
  /** [B·N, C]: heads concatenated per token (head h in channels h·hd:(h+1)·hd). */
  out: tf.Tensor2D;
  /** [B, heads, N, N] attention probabilities (after dropout when it is active), when requested. */
  attn?: tf.Tensor4D;
}

/** GPSA's positional mix, with the per-head slices the per-head path uses (built on demand). */
export interface AttentionMixTerms extends AttentionMix {
  /** keep and gated per head (keep[h] broadcastable against [N, N], gated[h] [N, N]). */
  perHead(): { keep: tf.Tensor[]; gated: tf.Tensor[] };
}

export interface AttentionCoreOptions {
  strategy: AttentionStrategy;
  /**
   * Applied to the attention probabilities (attention dropout); identity when omitted. Pass it only while
   * dropout is active: without it the batched path takes {@link scaledDotAttention} (a leaner gradient).
   */
  dropAttn?: (a: tf.Tensor) => tf.Tensor;
  /** Also return the attention probabilities. */
  returnAttention?: boolean;
  /**
   * GPSA: mix the content softmax c with a positional attention, p = (c·keep + gated) / Σ_k(c·keep + gated).
   * The scores are then scaled after q·kᵀ (timm's GPSA) rather than q before it (timm's MHSA).
   */
  mix?: AttentionMixTerms;
}

/**
 * The one multi-head attention core of every attention mixer: scaled dot-product attention from q, k, v
 * projections (see {@link QkvSource}; each C wide, head h using channels h·hd:(h+1)·hd), scale hd^-0.5,
 * softmax over the keys, optionally GPSA's positional mix, per-head or batched by {@link resolveStrategy}.
 * Call inside `tf.tidy`.
 */
export function attentionFromQkv(
  qkv: QkvSource,
  batch: number,
  tokens: number,
  heads: number,
  opts: AttentionCoreOptions,
): AttentionResult {
  const B = batch;
  const N = tokens;
  const [q3, k3, v3] = projectQkv(qkv, B, N);
  const C = q3.shape[2];
  const hd = C / heads;
  const scale = hd ** -0.5;
  const mix = opts.mix;
  const drop = opts.dropAttn ?? ((a: tf.Tensor) => a);
  // MHSA scales q before the product; GPSA scales the scores after it (timm's orders, kept for parity).
  const scores = (a: tf.Tensor, bT: tf.Tensor, transposeB: boolean) =>
    mix ? tf.mul(tf.matMul(a, bT, false, transposeB), scale) : tf.matMul(a, bT, false, transposeB);
  const mixed = (c: tf.Tensor, keep: tf.Tensor, gated: tf.Tensor) => {
    const a = tf.add(tf.mul(c, keep), gated);
    return tf.div(a, tf.sum(a, -1, true));
  };
  // Inference on wasm: the fused kernel reads q, k, v as the linears wrote them ([B, N, heads·hd]) and writes o the
  // same way: no head transposes (the same arithmetic as the path below, so the same numbers).
  if (!opts.returnAttention && !opts.dropAttn && !tf.engine().isTapeOn() && resolveStrategy(opts.strategy, N, B * heads) !== 'per-head') {
    const fused = fusedAttentionForward(mix ? q3 : tf.mul(q3, scale), k3, v3, mix ? scale : 1, mix?.keep, mix?.gated, { tokenMajorHeads: heads });
    if (fused) {
      tf.dispose([fused.c, ...(fused.z ? [fused.z] : [])]);
      return { out: tf.reshape(fused.o, [B * N, C]) as tf.Tensor2D };
    }
  }
  // [B, N, C] → [B, heads, N, hd] (rank-4 transposes only).
  const toHeads = (t: tf.Tensor) => tf.transpose(tf.reshape(t, [B, N, heads, hd]), [0, 2, 1, 3]);
  const q = toHeads(mix ? q3 : tf.mul(q3, scale));
  const v = toHeads(v3);
  let o: tf.Tensor;
  let attn: tf.Tensor4D | undefined;
  if (resolveStrategy(opts.strategy, N, B * heads) === 'per-head') {
    const kT = tf.transpose(tf.reshape(k3, [B, N, heads, hd]), [0, 2, 3, 1]); // [B, heads, hd, N]
    const qs = tf.unstack(tf.reshape(q, [B * heads, N, hd])) as tf.Tensor2D[];
    const ks = tf.unstack(tf.reshape(kT, [B * heads, hd, N])) as tf.Tensor2D[];
    const vs = tf.unstack(tf.reshape(v, [B * heads, N, hd])) as tf.Tensor2D[];
    const ph = mix?.perHead();
    const outs: tf.Tensor2D[] = [];
    const maps: tf.Tensor[] = [];
    for (let i = 0; i < B * heads; i++) {
      const c = tf.softmax(scores(qs[i]!, ks[i]!, false));
      const h = i % heads;
      const a = drop(ph ? mixed(c, ph.keep[h]!, ph.gated[h]!) : c) as tf.Tensor2D;
      if (opts.returnAttention) maps.push(a);
      outs.push(tf.matMul(a, vs[i]!));
    }
    o = tf.reshape(tf.stack(outs), [B, heads, N, hd]);
    if (opts.returnAttention) attn = tf.reshape(tf.stack(maps), [B, heads, N, N]) as tf.Tensor4D;
  } else {
    const k = toHeads(k3);
    if (opts.returnAttention || opts.dropAttn) {
      const c = tf.softmax(scores(q, k, true));
      const a = drop(mix ? mixed(c, mix.keep, mix.gated) : c) as tf.Tensor4D;
      if (opts.returnAttention) attn = a;
      o = tf.matMul(a, v);
    } else {
      // The same ops, with a gradient that keeps only q, k, v, the softmax (and its mixed row sums).
      o = mix ? scaledDotAttention(q, k, v, scale, { keep: mix.keep, gated: mix.gated }) : scaledDotAttention(q, k, v, 1); // MHSA's q is already scaled
    }
  }
  const out = tf.reshape(tf.transpose(o, [0, 2, 1, 3]), [B * N, C]) as tf.Tensor2D;
  return attn ? { out, attn } : { out };
}

/** q, k, v [B, N, C] from a {@link QkvSource}. */
function projectQkv(qkv: QkvSource, B: number, N: number): [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D] {
  if (qkv instanceof tf.Tensor) {
    const c3 = qkv.shape[1];
    return tf.split(tf.reshape(qkv, [B, N, c3]), 3, 2) as [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D];
  }
  const project = (p: Projection) => {
    const out = p.weight.shape[1]!;
    return tf.reshape(linear(qkv.x, p.weight, p.bias), [B, N, out]) as tf.Tensor3D;
  };
  if ('q' in qkv) return [project(qkv.q), project(qkv.k), project(qkv.v)];
  // Three products with the thirds of the weight (a [C_in, C] slice each): no split of the activations.
  const C = qkv.weight.shape[1]! / 3;
  return [0, 1, 2].map((i) =>
    project({
      weight: tf.slice(qkv.weight, [0, i * C], [qkv.weight.shape[0]!, C]),
      bias: qkv.bias ? tf.slice(qkv.bias, [i * C], [C]) : null,
    }),
  ) as [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D];
}

/**
 * The column blocks of a linear's weight [in, n·C] (and of its bias) as `n` projections: q/k(/v) from one fused
 * qk or qkv parameter. `get(…, keep = true)` (eval mode, no gradient tape) keeps them between forwards, keyed on the
 * identity of the weight's and bias' data (a load, an optimizer step or `assign` gives new data: rebuilt), so an
 * inference forward copies no weight; otherwise fresh slices (differentiable). `clear()` frees the kept ones.
 */
export class ProjectionSlices {
  private ids: readonly (object | null)[] | null = null;
  private kept: Projection[] | null = null;

  get(weight: tf.Tensor, bias: tf.Tensor | null, n: number, keep: boolean): Projection[] {
    const make = (): Projection[] => {
      const [rows, cols] = weight.shape as [number, number];
      const C = cols / n;
      return Array.from({ length: n }, (_, i) => ({
        weight: tf.slice(weight, [0, i * C], [rows, C]),
        bias: bias ? tf.slice(bias, [i * C], [C]) : null,
      }));
    };
    if (!keep) return make();
    const ids = [weight.dataId, bias?.dataId ?? null];
    if (!this.kept || this.kept.length !== n || !this.ids || ids.some((d, i) => d !== this.ids![i])) {
      this.clear();
      const parts = tf.tidy(() => make().flatMap((p) => (p.bias ? [p.weight, p.bias] : [p.weight])));
      for (const t of parts) tf.keep(t);
      const step = bias ? 2 : 1;
      this.kept = Array.from({ length: n }, (_, i) => ({ weight: parts[i * step]!, bias: bias ? parts[i * step + 1]! : null }));
      this.ids = ids;
    }
    return this.kept;
  }

  clear(): void {
    if (this.kept) tf.dispose(this.kept.flatMap((p) => (p.bias ? [p.weight, p.bias] : [p.weight])));
    this.kept = null;
    this.ids = null;
  }
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

/** GPSA's gated mix of the content softmax with a positional attention (see {@link scaledDotAttention}). */
export interface AttentionMix {
  /** 1 − σ(λ), broadcastable against [B, heads, N, N] (e.g. [heads, 1, 1]). */
  keep: tf.Tensor;
  /** σ(λ) · positional attention, broadcastable against [B, heads, N, N] (e.g. [heads, N, N]). */
  gated: tf.Tensor;
}

/**
 * Batched scaled dot-product attention on [B, heads, N, hd] tensors, with a hand-written gradient that saves
 * only q, k, v and the softmax c (and, when mixed, its row sums): o = p·v with c = softmax(scale·q·kᵀ) and
 * p = c, or GPSA's p = (c·keep + gated) / Σ_k(c·keep + gated) when `mix` is given. The forward is the same
 * sequence of tfjs ops as the op-by-op version (same numbers); the backward is
 *   dv = pᵀ·do, dp = do·vᵀ,
 *   (mixed) da = (dp − Σ_k dp·p) / z, dkeep = Σ da·c, dgated = Σ_batch da, dc = keep·da,
 *   ds = c·(dc − Σ_k dc·c), dq = scale·ds·k, dk = scale·dsᵀ·q,
 * so the tape holds 4–5 tensors per attention instead of every intermediate (the [B, heads, N, N] ones
 * dominate a ConViT training step's memory). Not for attention dropout (apply it op by op instead).
 *
 * On wasm the forward is @softbias/tensor-ops' fused kernel (`fusedAttentionForward`: one pass per (batch, head)
 * block, no S or p tensors; same definition, float32-accurate, not the same bits as the op sequence) whenever it
 * takes the shapes; other backends, and layouts it does not read, run the op sequence. The backward is the same.
 */
export function scaledDotAttention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, scale: number, mix?: AttentionMix): tf.Tensor {
  const scores = (qq: tf.Tensor, kk: tf.Tensor) => {
    const s = tf.matMul(qq, kk, false, true);
    return scale === 1 ? s : tf.mul(s, scale);
  };
  if (!mix) {
    const f = tf.customGrad(((qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor, save: tf.GradSaveFunc) => {
      const fused = fusedAttentionForward(qq, kk, vv, scale);
      const c = fused ? fused.c : tf.softmax(scores(qq, kk));
      save([qq, kk, vv, c]);
      return {
        value: fused ? fused.o : tf.matMul(c, vv),
        gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
          const [sq, sk, sv, sc] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
          const dout = dy as tf.Tensor;
          const dv = tf.matMul(sc, dout, true, false);
          const dc = tf.matMul(dout, sv, false, true);
          const ds = softmaxBackward(sc, dc, scale);
          return [tf.matMul(ds, sk), tf.matMul(ds, sq, true, false), dv];
        },
      };
    }) as unknown as Parameters<typeof tf.customGrad>[0]);
    return f(q, k, v);
  }
  const f = tf.customGrad(((qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor, keep: tf.Tensor, gated: tf.Tensor, save: tf.GradSaveFunc) => {
    const fused = fusedAttentionForward(qq, kk, vv, scale, keep, gated);
    let value: tf.Tensor;
    let c: tf.Tensor;
    let z: tf.Tensor;
    if (fused) {
      ({ o: value, c } = fused);
      z = fused.z!;
    } else {
      c = tf.softmax(scores(qq, kk));
      const a = tf.add(tf.mul(c, keep), gated);
      z = tf.sum(a, -1, true);
      value = tf.matMul(tf.div(a, z), vv);
    }
    save([qq, kk, vv, keep, gated, c, z]);
    return {
      value,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [sq, sk, sv, skeep, sgated, sc, sz] = saved as tf.Tensor[];
        const dout = dy as tf.Tensor;
        const pp = tf.div(tf.add(tf.mul(sc!, skeep!), sgated!), sz!);
        const dv = tf.matMul(pp, dout, true, false);
        const dp = tf.matMul(dout, sv!, false, true);
        const da = tf.div(tf.sub(dp, tf.sum(tf.mul(dp, pp), -1, true)), sz!);
        const dkeep = reduceTo(tf.mul(da, sc!), skeep!.shape);
        const dgated = reduceTo(da, sgated!.shape);
        const ds = softmaxBackward(sc!, tf.mul(da, skeep!), scale);
        return [tf.matMul(ds, sk!), tf.matMul(ds, sq!, true, false), dv, dkeep, dgated];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(q, k, v, mix.keep, mix.gated);
}

/** scale · c·(dc − Σ_k dc·c): the gradient of scale·x ↦ softmax over the last axis, from its output c. */
function softmaxBackward(c: tf.Tensor, dc: tf.Tensor, scale: number): tf.Tensor {
  const ds = tf.mul(c, tf.sub(dc, tf.sum(tf.mul(dc, c), -1, true)));
  return scale === 1 ? ds : tf.mul(ds, scale);
}

/** Sum a gradient over the axes it was broadcast along, back to `shape` (NumPy broadcasting rules). */
function reduceTo(g: tf.Tensor, shape: number[]): tf.Tensor {
  const lead = g.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  return tf.reshape(axes.length ? tf.sum(g, axes) : g, shape);
}
