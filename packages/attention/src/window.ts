/**
 * Local window attention (Swin-style, non-overlapping, no shift): the patch grid is cut into `size × size`
 * windows and multi-head self-attention runs inside each window. Prefix tokens pass through unchanged.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Dropout, Linear, Rng } from '@softbias/tensor-ops';
import { TokenMixer, checkMixerInput, type MixerInput } from './mixer.js';
import { attentionFromQkv, checkPositiveInt, joinPrefix, splitPrefix, type AttentionStrategy } from './core.js';

export interface WindowAttentionOptions {
  dim: number;
  numHeads: number;
  /** Window side in patches: windows are `size × size` patches. The grid's rows and columns must be multiples. */
  size: number;
  qkvBias?: boolean;
  attnDrop?: number;
  projDrop?: number;
  rng?: Rng;
  strategy?: AttentionStrategy;
}

export class WindowAttention extends TokenMixer {
  readonly kind = 'window';
  readonly dim: number;
  readonly numHeads: number;
  readonly size: number;
  readonly qkv: Linear;
  readonly proj: Linear;
  readonly attnDrop: Dropout;
  readonly projDrop: Dropout;
  strategy: AttentionStrategy;

  constructor(opts: WindowAttentionOptions) {
    super();
    const { dim, numHeads, size } = opts;
    checkPositiveInt('WindowAttention', 'dim', dim);
    checkPositiveInt('WindowAttention', 'numHeads', numHeads);
    checkPositiveInt('WindowAttention', 'size', size);
    if (dim % numHeads !== 0) {
      throw new RangeError(`WindowAttention: dim ${dim} must be divisible by numHeads ${numHeads}`);
    }
    const rng = opts.rng ?? new Rng(0);
    this.dim = dim;
    this.numHeads = numHeads;
    this.size = size;
    this.strategy = opts.strategy ?? 'auto';
    const init = { kind: 'trunc_normal' as const, std: 0.02 };
    this.qkv = this.registerModule('qkv', new Linear(dim, 3 * dim, { bias: opts.qkvBias ?? false, init, rng }));
    this.attnDrop = this.registerModule('attn_drop', new Dropout(opts.attnDrop ?? 0, rng.fork()));
    this.proj = this.registerModule('proj', new Linear(dim, dim, { bias: true, init, rng }));
    this.projDrop = this.registerModule('proj_drop', new Dropout(opts.projDrop ?? 0, rng.fork()));
  }

  /** [B, N, C] → [B, N, C]; prefix tokens are returned unchanged. */
  forward(input: MixerInput): tf.Tensor3D {
    this.check(input);
    return tf.tidy(() => {
      const [B, N, C] = input.tokens.shape as [number, number, number];
      const [prefix, patches] = splitPrefix(input.tokens, input.numPrefixTokens);
      const { out } = this.attend(patches, input.grid, false);
      const y = this.projDrop.forward(this.proj.forward(out));
      const merged = this.fromWindows(y, B, input.grid, C);
      return tf.reshape(joinPrefix(prefix, merged), [B, N, C]) as tf.Tensor3D;
    });
  }

  /**
   * Attention probabilities per window: [B·nW, heads, size², size²], windows in row-major order per image
   * (window (wr, wc) of image b at index b·nW + wr·(cols/size) + wc), tokens row-major inside a window.
   */
  attentionMap(input: MixerInput): tf.Tensor4D {
    this.check(input);
    return tf.tidy(() => {
      const [, patches] = splitPrefix(input.tokens, input.numPrefixTokens);
      return this.attend(patches, input.grid, true).attn!;
    });
  }

  private check(input: MixerInput): void {
    checkMixerInput('WindowAttention', input, this.dim);
    const [rows, cols] = input.grid;
    const s = this.size;
    if (rows % s !== 0 || cols % s !== 0) {
      throw new Error(
        `WindowAttention: the patch grid ${rows}×${cols} must be divisible by the window size ${s} ` +
          `(rows and columns multiples of ${s}); no padding is applied`,
      );
    }
  }

  private attend(patches: tf.Tensor3D, grid: readonly [number, number], returnAttention: boolean) {
    const [B, , C] = patches.shape;
    const [rows, cols] = grid;
    const s = this.size;
    const numWindows = (rows / s) * (cols / s);
    // [B, rows, cols, C] → [B·rows/s, s, cols/s, s·C] → [B·rows/s, cols/s, s, s·C]: each window's s² tokens
    // become contiguous rows (rank-4 transpose).
    const win = tf.transpose(tf.reshape(patches, [(B * rows) / s, s, cols / s, s * C]), [0, 2, 1, 3]);
    const x = tf.reshape(win, [B * rows * cols, C]) as tf.Tensor2D;
    const qkv = { x, weight: this.qkv.weight.value, bias: this.qkv.bias?.value ?? null };
    return attentionFromQkv(qkv, B * numWindows, s * s, this.numHeads, {
      strategy: this.strategy,
      ...(returnAttention
        ? { returnAttention }
        : this.attnDrop.training && this.attnDrop.p > 0
          ? { dropAttn: (a: tf.Tensor) => this.attnDrop.forward(a) }
          : {}),
    });
  }

  /** Inverse of the window partition: [B·rows·cols, C] in window order → [B, rows·cols, C] row-major. */
  private fromWindows(y: tf.Tensor, B: number, grid: readonly [number, number], C: number): tf.Tensor {
    const [rows, cols] = grid;
    const s = this.size;
    const t = tf.transpose(tf.reshape(y, [(B * rows) / s, cols / s, s, s * C]), [0, 2, 1, 3]);
    return tf.reshape(t, [B, rows * cols, C]);
  }
}
