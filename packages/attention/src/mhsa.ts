/**
 * Multi-head self-attention over all tokens (prefix tokens included), with the semantics and parameter names
 * of timm's ConViT `MHSA`: `qkv` (dim → 3·dim, [q | k | v]), `proj` (dim → dim).
 */
import * as tf from '@tensorflow/tfjs-core';
import { Dropout, Linear, Rng } from '@softbias/tensor-ops';
import { TokenMixer, checkGeometry, checkMixerInput, type MixerAttentionMaps, type MixerGeometry, type MixerInput, type MixerMacs } from './mixer.js';
import { attentionFromQkv, checkPositiveInt, type AttentionStrategy } from './core.js';

export interface MhsaOptions {
  dim: number;
  numHeads: number;
  /** Bias on the `qkv` projection (timm `qkv_bias`). Default false. */
  qkvBias?: boolean;
  /** Dropout on the attention probabilities (train mode). Default 0. */
  attnDrop?: number;
  /** Dropout after `proj` (train mode). Default 0. */
  projDrop?: number;
  /** Seeded generator for the initialisation and dropout masks. Default `new Rng(0)`. */
  rng?: Rng;
  /** How the attention matmuls run (see {@link AttentionStrategy}). Default `auto`. */
  strategy?: AttentionStrategy;
}

export class Mhsa extends TokenMixer {
  readonly kind = 'mhsa';
  readonly dim: number;
  readonly numHeads: number;
  readonly headDim: number;
  readonly qkv: Linear;
  readonly proj: Linear;
  readonly attnDrop: Dropout;
  readonly projDrop: Dropout;
  strategy: AttentionStrategy;

  constructor(opts: MhsaOptions) {
    super();
    const { dim, numHeads } = opts;
    checkPositiveInt('Mhsa', 'dim', dim);
    checkPositiveInt('Mhsa', 'numHeads', numHeads);
    if (dim % numHeads !== 0) throw new RangeError(`Mhsa: dim ${dim} must be divisible by numHeads ${numHeads}`);
    const rng = opts.rng ?? new Rng(0);
    this.dim = dim;
    this.numHeads = numHeads;
    this.headDim = dim / numHeads;
    this.strategy = opts.strategy ?? 'auto';
    const init = { kind: 'trunc_normal' as const, std: 0.02 };
    this.qkv = this.registerModule('qkv', new Linear(dim, 3 * dim, { bias: opts.qkvBias ?? false, init, rng }));
    this.attnDrop = this.registerModule('attn_drop', new Dropout(opts.attnDrop ?? 0, rng.fork()));
    this.proj = this.registerModule('proj', new Linear(dim, dim, { bias: true, init, rng }));
    this.projDrop = this.registerModule('proj_drop', new Dropout(opts.projDrop ?? 0, rng.fork()));
  }

  /** @deprecated Unused (the attention core scales by headDim^-0.5 itself); removed in the next minor release. */
  get scale(): number {
    return this.headDim ** -0.5;
  }

  /**
   * PyTorch names and shapes of the parameters of an `Mhsa` built with `opts`, without building it:
   * `qkv.weight` (3C, C), `qkv.bias` (3C) with `qkvBias`, `proj.weight` (C, C), `proj.bias` (C).
   */
  static parameterShapes(opts: Pick<MhsaOptions, 'dim' | 'qkvBias'>): [string, number[]][] {
    const C = opts.dim;
    return [
      ['qkv.weight', [3 * C, C]],
      ...(opts.qkvBias ? [['qkv.bias', [3 * C]] as [string, number[]]] : []),
      ['proj.weight', [C, C]],
      ['proj.bias', [C]],
    ];
  }

  /** Per image over T = prefix + rows·cols tokens: qkv T·C·3C, q·kᵀ and a·v 2·T²·C, proj T·C². */
  override macs(g: MixerGeometry): MixerMacs[] {
    checkGeometry('Mhsa', g);
    const T = g.numPrefixTokens + g.grid[0] * g.grid[1];
    const C = this.dim;
    return [
      { name: 'qkv', op: 'linear', macs: T * C * 3 * C },
      { name: 'matmuls', op: 'attention', macs: 2 * T * T * C },
      { name: 'proj', op: 'linear', macs: T * C * C },
    ];
  }

  /** [B, N, C] → [B, N, C]: attention over all N tokens (prefix tokens attend and are attended to). */
  forward(input: MixerInput): tf.Tensor3D {
    checkMixerInput('Mhsa', input, this.dim);
    return tf.tidy(() => {
      const [B, N, C] = input.tokens.shape as [number, number, number];
      const { out } = this.attend(input.tokens, B, N, false);
      return tf.reshape(this.projDrop.forward(this.proj.forward(out)), [B, N, C]) as tf.Tensor3D;
    });
  }

  /** The attention probabilities [B, heads, N, N] (softmax over keys, rows sum to 1; never dropped out). */
  override attentionMap(input: MixerInput): tf.Tensor4D {
    checkMixerInput('Mhsa', input, this.dim);
    return tf.tidy(() => {
      const [B, N] = input.tokens.shape as [number, number, number];
      return this.attend(input.tokens, B, N, true).attn!;
    });
  }

  /** {@link attentionMap}: over all tokens, so the prefix tokens are at the front of both axes. */
  override attentionMaps(input: MixerInput): MixerAttentionMaps {
    return { mixed: this.attentionMap(input), numPrefixTokens: input.numPrefixTokens };
  }

  private attend(tokens: tf.Tensor, B: number, N: number, returnAttention: boolean) {
    const x = tf.reshape(tokens, [B * N, this.dim]) as tf.Tensor2D;
    const qkv = { x, weight: this.qkv.weight.value, bias: this.qkv.bias?.value ?? null };
    return attentionFromQkv(qkv, B, N, this.numHeads, {
      strategy: this.strategy,
      ...(returnAttention
        ? { returnAttention }
        : this.attnDrop.training && this.attnDrop.p > 0
          ? { dropAttn: (a: tf.Tensor) => this.attnDrop.forward(a) }
          : {}),
    });
  }
}
