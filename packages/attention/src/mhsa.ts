/**
 * Multi-head self-attention over all tokens (prefix tokens included), with the semantics and parameter names
 * of timm's ConViT `MHSA`: `qkv` (dim → 3·dim, [q | k | v]), `proj` (dim → dim).
 */
import * as tf from '@tensorflow/tfjs-core';
import { Dropout, Linear, Rng } from '@softbias/tensor-ops';
import { TokenMixer, checkMixerInput, type MixerInput } from './mixer.js';
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
  readonly scale: number;
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
    this.scale = this.headDim ** -0.5;
    this.strategy = opts.strategy ?? 'auto';
    const init = { kind: 'trunc_normal' as const, std: 0.02 };
    this.qkv = this.registerModule('qkv', new Linear(dim, 3 * dim, { bias: opts.qkvBias ?? false, init, rng }));
    this.attnDrop = this.registerModule('attn_drop', new Dropout(opts.attnDrop ?? 0, rng.fork()));
    this.proj = this.registerModule('proj', new Linear(dim, dim, { bias: true, init, rng }));
    this.projDrop = this.registerModule('proj_drop', new Dropout(opts.projDrop ?? 0, rng.fork()));
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
  attentionMap(input: MixerInput): tf.Tensor4D {
    checkMixerInput('Mhsa', input, this.dim);
    return tf.tidy(() => {
      const [B, N] = input.tokens.shape as [number, number, number];
      return this.attend(input.tokens, B, N, true).attn!;
    });
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
