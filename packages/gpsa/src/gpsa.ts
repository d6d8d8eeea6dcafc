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
import { Dropout, Linear, type Parameter, Rng, ones } from '@softbias/tensor-ops';
import {
  type AttentionStrategy,
  type MixerAttentionMaps,
  type MixerGeometry,
  type MixerInput,
  type MixerMacs,
  type MixerMacsOptions,
  TokenMixer,
  ProjectionSlices,
  type Projection,
  attentionFromQkv,
  checkGeometry,
  checkMixerInput,
  nonlocality,
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
   * 2-D matmuls per image and head), `auto` (@softbias/attention's one rule, shared with MHSA and window
   * attention: see its `AttentionStrategy`). Default `auto`.
   */
  strategy?: AttentionStrategy;
}

/** Attention maps of one GPSA layer for a batch (new tensors the caller disposes). */
export interface GpsaAttentionMaps extends MixerAttentionMaps {
  /** 0: GPSA attends over the patch tokens only. */
  numPrefixTokens: 0;
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
  /** Held by the eval-mode cache (its tensors outlive the forward pass). */
  cached?: boolean;
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

  /**
   * PyTorch names and shapes of the parameters of a `Gpsa` built with `opts`, without building it:
   * `gating_param` (heads), `qk.weight` (2C, C), `qk.bias` (2C) and `v.bias` (C) with `qkvBias`, `v.weight`
   * (C, C), `proj.weight` (C, C), `proj.bias` (C), `pos_proj.weight` (heads, 3), `pos_proj.bias` (heads).
   */
  static parameterShapes(opts: Pick<GpsaOptions, 'dim' | 'numHeads' | 'qkvBias'>): [string, number[]][] {
    const C = opts.dim;
    const H = opts.numHeads;
    const b = opts.qkvBias ?? false;
    return [
      ['gating_param', [H]],
      ['qk.weight', [2 * C, C]],
      ...(b ? [['qk.bias', [2 * C]] as [string, number[]]] : []),
      ['v.weight', [C, C]],
      ...(b ? [['v.bias', [C]] as [string, number[]]] : []),
      ['proj.weight', [C, C]],
      ['proj.bias', [C]],
      ['pos_proj.weight', [H, 3]],
      ['pos_proj.bias', [H]],
    ];
  }

  /**
   * Per image over the P = rows·cols patch tokens (prefix tokens are not mixed): qk P·C·2C, v P·C²,
   * q·kᵀ and a·v 2·P²·C, proj P·C², and the positional projection P²·3·heads — counted with `countCached`
   * (default: unless eval mode already holds this grid's positional attention in its cache, as a profiler of
   * the next forward pass sees).
   */
  override macs(g: MixerGeometry, opts: MixerMacsOptions = {}): MixerMacs[] {
    checkGeometry('gpsa', g);
    const P = g.grid[0] * g.grid[1];
    const C = this.dim;
    const positional = opts.countCached ?? !(!this.training && this.cache.has(`${g.grid[0]}x${g.grid[1]}`));
    return [
      { name: 'qk', op: 'linear', macs: P * C * 2 * C },
      { name: 'v', op: 'linear', macs: P * C * C },
      ...(positional ? [{ name: 'pos_proj', op: 'linear' as const, macs: P * P * 3 * this.numHeads }] : []),
      { name: 'matmuls', op: 'attention', macs: 2 * P * P * C },
      { name: 'proj', op: 'linear', macs: P * C * C },
    ];
  }

  /** sigmoid(gating_param) [heads] (a new tensor). */
  override gates(): tf.Tensor {
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
  override attentionMaps(input: MixerInput): GpsaAttentionMaps {
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
      return { content, positional: tf.clone(pos.attn), mixed, gates: tf.clone(pos.gates), numPrefixTokens: 0 as const };
    });
  }

  /** The attention the forward pass uses, [B, heads, N, N] over the patch tokens (a new tensor). */
  override attentionMap(input: MixerInput): tf.Tensor {
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

  /** GPSA over patch tokens only: x [B, N, C] with N = rows·cols, through @softbias/attention's core. */
  private mixPatches(x: tf.Tensor, grid: readonly [number, number]): tf.Tensor {
    const [B, N, C] = x.shape as [number, number, number];
    const pos = this.positionalTerms(grid);
    const x2 = tf.reshape(x, [B * N, C]) as tf.Tensor2D;
    // q and k from the two halves of qk's weight (a [C, C] slice each) rather than slicing the [B·N, 2C]
    // product: the same dot products, without copying the activations.
    const [wq, wk, bq, bk] = this.qkHalves();
    const source = {
      x: x2,
      q: { weight: wq, bias: bq },
      k: { weight: wk, bias: bk },
      v: { weight: this.v.weight.value, bias: this.v.bias?.value ?? null },
    };
    const { out } = attentionFromQkv(source, B, N, this.numHeads, {
      strategy: this.strategy,
      mix: { keep: pos.keep, gated: pos.gated, perHead: () => this.perHeadOf(pos) },
      ...(this.attn_drop.training && this.attn_drop.p > 0 ? { dropAttn: (a: tf.Tensor) => this.attn_drop.forward(a) } : {}),
    });
    const y = this.proj_drop.forward(this.proj.forward(out));
    return tf.reshape(y, [B, N, C]);
  }

  /**
   * qk's weight [C, 2C] (tfjs layout) split into its q and k halves, and its bias likewise (null without); kept
   * between eval forwards outside a gradient tape (attention's `ProjectionSlices`, cleared with the positional
   * cache), so an inference forward copies no weight.
   */
  private qkHalves(): [tf.Tensor, tf.Tensor, tf.Tensor | null, tf.Tensor | null] {
    const keep = !this.training && !tf.engine().isTapeOn();
    const [q, k] = this.halves.get(this.qk.weight.value, this.qk.bias?.value ?? null, 2, keep) as [Projection, Projection];
    return [q.weight, k.weight, q.bias, k.bias];
  }

  private readonly halves = new ProjectionSlices();

  /** The per-head slices of `pos` (built once and kept for a cached entry, fresh otherwise). */
  private perHeadOf(pos: PositionalTerms): { gated: tf.Tensor[]; keep: tf.Tensor[] } {
    if (pos.perHead) return pos.perHead;
    if (!pos.cached) return this.perHeadTerms(pos);
    const perHead = tf.tidy(() => this.perHeadTerms(pos));
    for (const t of [...perHead.gated, ...perHead.keep]) tf.keep(t);
    pos.perHead = perHead;
    return perHead;
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
      const terms = tf.tidy(() => this.computeTerms(grid) as unknown as tf.TensorContainer) as unknown as PositionalTerms;
      for (const t of [terms.attn, terms.gates, terms.gated, terms.keep]) tf.keep(t);
      entry = { ...terms, cached: true };
      this.cache.set(key, entry);
      this.computations++;
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
    this.halves.clear();
  }
}
