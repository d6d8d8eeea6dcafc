/**
 * Local window attention (Swin-style, non-overlapping, no shift): the patch grid is cut into `size × size`
 * windows and multi-head self-attention runs inside each window. Prefix tokens pass through unchanged.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Dropout, Linear, Rng } from '@softbias/tensor-ops';
import { TokenMixer, checkGeometry, checkMixerInput, type MixerAttentionMaps, type MixerGeometry, type MixerInput, type MixerMacs } from './mixer.js';
import { Mhsa } from './mhsa.js';
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

  /** PyTorch names and shapes of the parameters of a `WindowAttention` built with `opts` (as {@link Mhsa}). */
  static parameterShapes(opts: Pick<WindowAttentionOptions, 'dim' | 'qkvBias'>): [string, number[]][] {
    return Mhsa.parameterShapes(opts);
  }

  /**
   * Per image over the P = rows·cols patch tokens (prefix tokens are not mixed): qkv P·C·3C, q·kᵀ and a·v
   * 2·s²·P·C (each of the P/s² windows: 2·(s²)²·C), proj P·C².
   */
  override macs(g: MixerGeometry): MixerMacs[] {
    checkGeometry('WindowAttention', g);
    this.checkGrid(g.grid);
    const P = g.grid[0] * g.grid[1];
    const C = this.dim;
    const S = this.size * this.size;
    return [
      { name: 'qkv', op: 'linear', macs: P * C * 3 * C },
      { name: 'matmuls', op: 'attention', macs: 2 * S * P * C },
      { name: 'proj', op: 'linear', macs: P * C * C },
    ];
  }

  /**
   * Attention probabilities per window: [B·nW, heads, size², size²], windows in row-major order per image
   * (window (wr, wc) of image b at index b·nW + wr·(cols/size) + wc), tokens row-major inside a window.
   */
  windowAttentionMap(input: MixerInput): tf.Tensor4D {
    this.check(input);
    return tf.tidy(() => {
      const [, patches] = splitPrefix(input.tokens, input.numPrefixTokens);
      return this.attend(patches, input.grid, true).attn!;
    });
  }

  /**
   * The per-window maps as one [B, heads, P, P] map over the row-major patch grid (P = rows·cols; zero
   * outside each query's window; prefix tokens are not part of it), so it reads like the other mixers' maps.
   */
  override attentionMap(input: MixerInput): tf.Tensor4D {
    const perWindow = this.windowAttentionMap(input);
    const full = tf.tidy(() => windowMapToFull(perWindow, input.tokens.shape[0]!, input.grid, this.size));
    perWindow.dispose();
    return full;
  }

  /** {@link attentionMap} over the patch grid (no prefix tokens on its axes). */
  override attentionMaps(input: MixerInput): MixerAttentionMaps {
    return { mixed: this.attentionMap(input), numPrefixTokens: 0 };
  }

  private check(input: MixerInput): void {
    checkMixerInput('WindowAttention', input, this.dim);
    this.checkGrid(input.grid);
  }

  private checkGrid(grid: readonly [number, number]): void {
    const [rows, cols] = grid;
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

/**
 * Per-window maps [B·nW, heads, s², s²] (windows row-major, tokens row-major inside a window) as one
 * [B, heads, P, P] map over the row-major patch grid, zero outside each query's window.
 */
function windowMapToFull(a: tf.Tensor, B: number, grid: readonly [number, number], s: number): tf.Tensor4D {
  const [rows, cols] = grid;
  const wc = cols / s;
  const nW = (rows / s) * wc;
  const S = s * s;
  const P = rows * cols;
  const H = a.shape[1]!;
  const a5 = tf.reshape(a, [B, nW, H, S, S]);
  const blocks: tf.Tensor[] = [];
  for (let w = 0; w < nW; w++) {
    const blk = tf.reshape(tf.slice(a5, [0, w, 0, 0, 0], [B, 1, H, S, S]), [B, H, S, S]);
    blocks.push(tf.pad(blk, [[0, 0], [0, 0], [0, 0], [w * S, (nW - w - 1) * S]]));
  }
  const windowOrder = blocks.length === 1 ? blocks[0]! : tf.concat(blocks, 2); // [B, H, P, P] in window order
  const order = new Int32Array(P);
  for (let q = 0; q < P; q++) {
    const y = Math.floor(q / cols);
    const x = q % cols;
    order[q] = (Math.floor(y / s) * wc + Math.floor(x / s)) * S + (y % s) * s + (x % s);
  }
  const idx = tf.tensor1d(order, 'int32');
  return tf.gather(tf.gather(windowOrder, idx, 2), idx, 3) as tf.Tensor4D;
}
