/**
 * Gated positional self-attention (GPSA), the ConViT token mixer (d'Ascoli et al., 2021), with timm's
 * parameter names: `qk` (C → 2C, q = first C outputs, k = the next C), `v` (C → C), `proj`, `pos_proj`
 * (3 → heads) and `gating_param` (heads).
 *
 *   content    = softmax_k(q·kᵀ · hd^-½)                         per head, from the tokens
 *   positional = softmax_k(pos_proj([Δx, Δy, Δx² + Δy²]))         per head, from the patch grid only
 *   g          = sigmoid(gating_param)
 *   attn       = ((1 − g)·content + g·positional) / row sum       (the renormalisation is timm's; a no-op up to rounding)
 *   out        = proj(attn · v)
 *
 * In eval mode the positional attention and the gates do not depend on the input: they are computed once
 * per grid and weights and reused. The cache is keyed on the grid and on the identity of the tensors held
 * by `pos_proj` and `gating_param` (an optimizer step or `assign` replaces them), and is cleared by
 * `loadStateDict` / `train()` / `eval()` / `localInit()`. It is bypassed while a gradient tape records,
 * so gradients always reach `pos_proj` and `gating_param`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Dropout, Linear, type Parameter, Rng, hasSimdBatchMatMul, linear, ones } from '@softbias/tensor-ops';
import {
  type AttentionStrategy,
  type MixerInput,
  PER_HEAD_MIN_TOKENS,
  TokenMixer,
  checkMixerInput,
  nonlocality,
  scaledDotAttention,
} from '@softbias/attention';
import { relativeIndices } from './relative.js';

/** `learned`: the gate is a trained parameter; `frozen`: it keeps its initial value (trainable = false). */
export type GateMode = 'learned' | 'frozen';


export interface GpsaOptions {
  /** Token width C (total, all heads). */
  dim: number;
  numHeads: number;
  /** Bias on `qk` and `v`. Default false (timm's ConViT). */
  qkvBias?: boolean;
  /** Dropout on the mixed attention (train mode). Default 0. */
  attnDrop?: number;
  /** Dropout after `proj` (train mode). Default 0. */
  projDrop?: number;
  /** α of the convolutional initialisation. Default 1. */
  localityStrength?: number;
  /** Apply the convolutional (local) initialisation at construction. Default true. */
  localInit?: boolean;
  /** Default `learned`. */
  gate?: GateMode;
  /** false freezes every GPSA parameter (trainable = false). Default true. */
  trainable?: boolean;
  /** Seeded generator for the initialisation and dropout. */
  rng?: Rng;
  /**
   * How the attention products run: `batched` (one batched matmul over [B, heads]), `per-head` (flag-free
   * 2-D matmuls per image and head, gradients kept 2-D), `auto` (batched, except on a wasm backend without
   * @softbias/tensor-ops' SIMD BatchMatMul, where per-head from PER_HEAD_MIN_TOKENS tokens). Default `auto`.
   */
  strategy?: AttentionStrategy;
}

/** Attention maps of one GPSA layer for a batch (new tensors the caller disposes). */
export interface GpsaAttentionMaps {
  /** softmax(q·kᵀ·scale) [B, heads, N, N] (rows = queries, columns = keys). */
  content: tf.Tensor;
  /** Input-independent positional attention [heads, N, N]. */
  positional: tf.Tensor;
  /** The attention the forward pass uses [B, heads, N, N] (before attention dropout). */
  mixed: tf.Tensor;
  /** sigmoid(gating_param) [heads]. */
  gates: tf.Tensor;
}

/** What the positional branch contributes, per grid. */
interface PositionalTerms {
  /** softmax over keys [H, N, N]. */
  attn: tf.Tensor;
  /** g·attn [H, N, N]. */
  gated: tf.Tensor;
  /** 1 − g [H, 1, 1]. */
  keep: tf.Tensor;
  /** g [H]. */
  gates: tf.Tensor;
  /** Per-head slices for the per-head path (cached entries build them once). */
  perHead?: { gated: tf.Tensor[]; keep: tf.Tensor[] };
}

const relCache = new Map<string, Float32Array>();
function relFor(rows: number, cols: number): Float32Array {
  const key = `${rows}x${cols}`;
  let r = relCache.get(key);
  if (!r) {
    r = relativeIndices(rows, cols);
    if (relCache.size > 16) relCache.clear();
    relCache.set(key, r);
  }
  return r;
}

export class Gpsa extends TokenMixer {
  readonly kind = 'gpsa';
  readonly dim: number;
  readonly numHeads: number;
  readonly headDim: number;
  readonly scale: number;
  readonly localityStrength: number;
  readonly gate: GateMode;
  strategy: AttentionStrategy;

  readonly gating_param: Parameter;
  readonly qk: Linear;
  readonly v: Linear;
  readonly attn_drop: Dropout;
  readonly proj: Linear;
  readonly pos_proj: Linear;
  readonly proj_drop: Dropout;

  private cache = new Map<string, PositionalTerms>();
  private cacheIds: readonly object[] | null = null;
  private computations = 0;

  constructor(opts: GpsaOptions) {
    super();
    const { dim, numHeads } = opts;
    if (!Number.isInteger(dim) || !Number.isInteger(numHeads) || dim < 1 || numHeads < 1 || dim % numHeads !== 0) {
      throw new Error(`Gpsa: dim (${dim}) must be a positive multiple of numHeads (${numHeads})`);
    }
    const rng = opts.rng ?? new Rng(0);
    this.dim = dim;
    this.numHeads = numHeads;
    this.headDim = dim / numHeads;
    this.scale = this.headDim ** -0.5;
    this.localityStrength = opts.localityStrength ?? 1;
    this.gate = opts.gate ?? 'learned';
    if (this.gate !== 'learned' && this.gate !== 'frozen') {
      throw new Error(`Gpsa: gate must be 'learned' or 'frozen', got ${JSON.stringify(this.gate)}`);
    }
    this.strategy = opts.strategy ?? 'auto';
    const bias = opts.qkvBias ?? false;
    const init = { kind: 'trunc_normal' as const, std: 0.02 };
    this.gating_param = this.registerParameter('gating_param', ones([numHeads]), { noWeightDecay: true });
    this.qk = this.registerModule('qk', new Linear(dim, dim * 2, { bias, rng, init }));
    this.v = this.registerModule('v', new Linear(dim, dim, { bias, rng, init }));
    this.attn_drop = this.registerModule('attn_drop', new Dropout(opts.attnDrop ?? 0, rng.fork()));
    this.proj = this.registerModule('proj', new Linear(dim, dim, { rng, init }));
    this.pos_proj = this.registerModule('pos_proj', new Linear(3, numHeads, { rng, init }));
    this.proj_drop = this.registerModule('proj_drop', new Dropout(opts.projDrop ?? 0, rng.fork()));
    if (opts.localInit ?? true) this.localInit();
    if (this.gate === 'frozen') this.gating_param.trainable = false;
    if (opts.trainable === false) for (const p of this.parameters()) p.trainable = false;
  }

  /**
   * The convolutional initialisation (timm/official `local_init`): `v` = identity; with k = ⌊√heads⌋ and
   * c = (k−1)/2 (k even) or ⌊k/2⌋ (k odd), head h = h1 + k·h2 gets `pos_proj.weight[h] = [2(h2−c), 2(h1−c), −1]`
   * (it attends around Δx = h2−c, Δy = h1−c); then the whole `pos_proj.weight` is multiplied by α (heads
   * beyond k² keep their current values, times α). `pos_proj.bias` and `gating_param` are left alone.
   */
  localInit(localityStrength: number = this.localityStrength): void {
    const H = this.numHeads;
    const k = Math.floor(Math.sqrt(H));
    const center = k % 2 === 0 ? (k - 1) / 2 : Math.floor(k / 2);
    // tfjs layout [3, H]: entry (c, h) is PyTorch's weight[h, c].
    const pattern = new Float32Array(3 * H);
    const mask = new Uint8Array(3 * H);
    for (let h1 = 0; h1 < k; h1++) {
      for (let h2 = 0; h2 < k; h2++) {
        const h = h1 + k * h2;
        pattern[0 * H + h] = 2 * (h2 - center);
        pattern[1 * H + h] = 2 * (h1 - center);
        pattern[2 * H + h] = -1;
        mask[h] = mask[H + h] = mask[2 * H + h] = 1;
      }
    }
    // Selecting is exact; the product with α is one float32 multiply (a float32 tensor times a float32 scalar).
    tf.tidy(() => {
      const w = tf.where(tf.tensor(mask, [3, H], 'bool'), tf.tensor(pattern, [3, H], 'float32'), this.pos_proj.weight.value);
      this.pos_proj.weight.assign(tf.mul(w, tf.scalar(Math.fround(localityStrength), 'float32')));
      this.v.weight.assign(tf.eye(this.dim));
    });
    this.clearCache();
  }

  /** [B, N, C] → [B, N, C]; prefix tokens (a class token) pass through unchanged. */
  forward(input: MixerInput): tf.Tensor {
    checkMixerInput('gpsa', input, this.dim);
    const { tokens, grid, numPrefixTokens: P } = input;
    return tf.tidy(() => {
      if (P === 0) return this.mixPatches(tokens, grid);
      const [B, T, C] = tokens.shape as [number, number, number];
      const prefix = tf.slice(tokens, [0, 0, 0], [B, P, C]);
      const patches = tf.slice(tokens, [0, P, 0], [B, T - P, C]);
      return tf.concat([prefix, this.mixPatches(patches, grid)], 1);
    });
  }

  /** sigmoid(gating_param) [heads] (a new tensor). */
  gates(): tf.Tensor {
    return tf.sigmoid(this.gating_param.value);
  }

  /** pos_proj(relative indices) before the softmax, [heads, N, N] with N = rows·cols (a new tensor). */
  positionalScores(grid: readonly [number, number]): tf.Tensor {
    return tf.tidy(() => this.scores(grid));
  }

  /** The positional attention softmax_k(pos_proj(rel)) [heads, N, N] (a new tensor; cached in eval mode). */
  positionalAttention(grid: readonly [number, number]): tf.Tensor {
    return tf.tidy(() => tf.clone(this.positionalTerms(grid).attn));
  }

  /** Content, positional and mixed attention for the patch tokens of `input` (new tensors). */
  attentionMaps(input: MixerInput): GpsaAttentionMaps {
    checkMixerInput('gpsa', input, this.dim);
    return tf.tidy(() => {
      const x = this.patchTokens(input);
      const [B, N, C] = x.shape as [number, number, number];
      const pos = this.positionalTerms(input.grid);
      const qk = this.qk.forward(tf.reshape(x, [B * N, C]));
      const q = this.toHeads(tf.slice(qk, [0, 0], [B * N, C]), B, N);
      const k = this.toHeads(tf.slice(qk, [0, C], [B * N, C]), B, N);
      const content = tf.softmax(tf.mul(tf.matMul(q, k, false, true), this.scale));
      const mixed = this.mix(content, pos.keep, pos.gated);
      return { content, positional: tf.clone(pos.attn), mixed, gates: tf.clone(pos.gates) };
    });
  }

  /** The attention the forward pass uses, [B, heads, N, N] over the patch tokens (a new tensor). */
  attentionMap(input: MixerInput): tf.Tensor {
    const maps = this.attentionMaps(input);
    tf.dispose([maps.content, maps.positional, maps.gates]);
    return maps.mixed;
  }

  /**
   * Mean attention distance per head [heads], in patches: d_h = (1/N) Σ_{q,k} ‖pos_k − pos_q‖ · mean_b attn[b,h,q,k]
   * (the official ConViT nonlocality) for the attention this layer computes on `input`'s patch tokens.
   */
  nonlocality(input: MixerInput): tf.Tensor {
    return tf.tidy(() => nonlocality(this.attentionMap(input), input.grid, 0));
  }

  /** Diagnostics of the eval-mode positional cache: cached grids and how many times it was (re)computed. */
  cacheInfo(): { grids: string[]; computations: number } {
    return { grids: [...this.cache.keys()], computations: this.computations };
  }

  override dispose(): void {
    this.clearCache();
    super.dispose();
  }

  protected override onModeChange(): void {
    this.clearCache();
  }

  protected override onWeightsLoaded(): void {
    this.clearCache();
  }

  // ---------------------------------------------------------------------------------------------------------

  private patchTokens(input: MixerInput): tf.Tensor {
    const { tokens, numPrefixTokens: P } = input;
    if (P === 0) return tokens;
    const [B, T, C] = tokens.shape as [number, number, number];
    return tf.slice(tokens, [0, P, 0], [B, T - P, C]);
  }

  /** [B·N, C] → [B, H, N, hd] (a rank-4 transpose). */
  private toHeads(t: tf.Tensor, B: number, N: number): tf.Tensor {
    return tf.transpose(tf.reshape(t, [B, N, this.numHeads, this.headDim]), [0, 2, 1, 3]);
  }

  private mix(content: tf.Tensor, keep: tf.Tensor, gated: tf.Tensor): tf.Tensor {
    const attn = tf.add(tf.mul(content, keep), gated);
    return tf.div(attn, tf.sum(attn, -1, true));
  }

  private resolvedStrategy(n: number): 'batched' | 'per-head' {
    if (this.strategy !== 'auto') return this.strategy;
    if (tf.getBackend() !== 'wasm' || hasSimdBatchMatMul()) return 'batched';
    return n >= PER_HEAD_MIN_TOKENS ? 'per-head' : 'batched';
  }

  /** GPSA over patch tokens only: x [B, N, C] with N = rows·cols. */
  private mixPatches(x: tf.Tensor, grid: readonly [number, number]): tf.Tensor {
    const [B, N, C] = x.shape as [number, number, number];
    const H = this.numHeads;
    const hd = this.headDim;
    const pos = this.positionalTerms(grid);
    const x2 = tf.reshape(x, [B * N, C]);
    const v = this.v.forward(x2);
    let o: tf.Tensor;
    if (this.resolvedStrategy(N) === 'batched') {
      // q and k from the two halves of qk's weight (a [C, C] slice each) rather than slicing the [B·N, 2C]
      // product: the same dot products, without copying the activations.
      const [wq, wk, bq, bk] = this.qkHalves();
      const q = this.toHeads(linear(x2, wq, bq), B, N);
      const k = this.toHeads(linear(x2, wk, bk), B, N);
      let out: tf.Tensor; // [B, H, N, hd]
      if (this.attn_drop.training && this.attn_drop.p > 0) {
        const content = tf.softmax(tf.mul(tf.matMul(q, k, false, true), this.scale));
        const attn = this.attn_drop.forward(this.mix(content, pos.keep, pos.gated));
        out = tf.matMul(attn, this.toHeads(v, B, N));
      } else {
        // The same ops, with a gradient that keeps only q, k, v, the content softmax and its mixed row sums.
        out = scaledDotAttention(q, k, this.toHeads(v, B, N), this.scale, { keep: pos.keep, gated: pos.gated });
      }
      o = tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [B * N, C]);
    } else {
      const qk = this.qk.forward(x2);
      const ph = pos.perHead ?? this.perHeadTerms(pos);
      const rows: tf.Tensor[] = [];
      for (let b = 0; b < B; b++) {
        const heads: tf.Tensor[] = [];
        for (let h = 0; h < H; h++) {
          const q = tf.slice(qk, [b * N, h * hd], [N, hd]);
          const k = tf.slice(qk, [b * N, C + h * hd], [N, hd]);
          const content = tf.softmax(tf.mul(tf.matMul(q, k, false, true), this.scale));
          const attn = this.attn_drop.forward(this.mix(content, ph.keep[h]!, ph.gated[h]!));
          heads.push(tf.matMul(attn, tf.slice(v, [b * N, h * hd], [N, hd])));
        }
        rows.push(heads.length === 1 ? heads[0]! : tf.concat(heads, 1));
      }
      o = rows.length === 1 ? rows[0]! : tf.concat(rows, 0);
    }
    const y = this.proj_drop.forward(this.proj.forward(o));
    return tf.reshape(y, [B, N, C]);
  }

  /** qk's weight [C, 2C] (tfjs layout) split into its q and k halves, and its bias likewise (null without). */
  private qkHalves(): [tf.Tensor, tf.Tensor, tf.Tensor | null, tf.Tensor | null] {
    const C = this.dim;
    const w = this.qk.weight.value;
    const b = this.qk.bias?.value ?? null;
    return [
      tf.slice(w, [0, 0], [C, C]),
      tf.slice(w, [0, C], [C, C]),
      b ? tf.slice(b, [0], [C]) : null,
      b ? tf.slice(b, [C], [C]) : null,
    ];
  }

  private perHeadTerms(pos: PositionalTerms): { gated: tf.Tensor[]; keep: tf.Tensor[] } {
    return {
      gated: tf.unstack(pos.gated, 0),
      keep: tf.unstack(tf.reshape(pos.keep, [this.numHeads]), 0),
    };
  }

  private scores(grid: readonly [number, number]): tf.Tensor {
    const [rows, cols] = grid;
    const N = rows * cols;
    const rel = tf.tensor2d(relFor(rows, cols), [N * N, 3], 'float32');
    const s = this.pos_proj.forward(rel); // [N·N, H]
    return tf.transpose(tf.reshape(s, [N, N, this.numHeads]), [2, 0, 1]);
  }

  private computeTerms(grid: readonly [number, number]): PositionalTerms {
    const attn = tf.softmax(this.scores(grid));
    const gates = tf.sigmoid(this.gating_param.value);
    const g = tf.reshape(gates, [this.numHeads, 1, 1]);
    return { attn, gates, gated: tf.mul(g, attn), keep: tf.sub(1, g) };
  }

  /** Fresh (training / gradient tape) or cached (eval) positional terms. */
  private positionalTerms(grid: readonly [number, number]): PositionalTerms {
    if (this.training || tf.engine().isTapeOn()) return this.computeTerms(grid);
    const ids = [this.pos_proj.weight.value.dataId, this.pos_proj.bias!.value.dataId, this.gating_param.value.dataId];
    if (!this.cacheIds || ids.some((d, i) => d !== this.cacheIds![i])) {
      this.clearCache();
      this.cacheIds = ids;
    }
    const key = `${grid[0]}x${grid[1]}`;
    let entry = this.cache.get(key);
    if (!entry) {
      const terms = tf.tidy(() => {
        const t = this.computeTerms(grid);
        return { ...t, perHead: this.resolvedStrategy(grid[0] * grid[1]) === 'per-head' ? this.perHeadTerms(t) : undefined };
      });
      for (const t of [terms.attn, terms.gates, terms.gated, terms.keep]) tf.keep(t);
      if (terms.perHead) for (const t of [...terms.perHead.gated, ...terms.perHead.keep]) tf.keep(t);
      entry = terms;
      this.cache.set(key, entry);
      this.computations++;
    }
    if (!entry.perHead && this.resolvedStrategy(grid[0] * grid[1]) === 'per-head') {
      const perHead = tf.tidy(() => this.perHeadTerms(entry!));
      for (const t of [...perHead.gated, ...perHead.keep]) tf.keep(t);
      entry.perHead = perHead;
    }
    return entry;
  }

  private clearCache(): void {
    for (const e of this.cache.values()) {
      tf.dispose([e.attn, e.gates, e.gated, e.keep]);
      if (e.perHead) tf.dispose([...e.perHead.gated, ...e.perHead.keep]);
    }
    this.cache.clear();
    this.cacheIds = null;
  }
}
