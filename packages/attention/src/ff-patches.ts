/**
 * The feed-forward-over-patches token mixer of "Do You Even Need Attention? A Stack of Feed-Forward Layers
 * Does Surprisingly Well on ImageNet" (Melas-Kyriazi, 2021): an MLP (Linear → exact GELU → Linear) applied
 * along the patch axis, i.e. to each channel's vector of P patch values. The patch count is therefore fixed
 * at construction. Prefix tokens pass through unchanged.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Mlp, Rng } from '@softbias/tensor-ops';
import { TokenMixer, checkGeometry, checkMixerInput, type MixerGeometry, type MixerInput, type MixerMacs } from './mixer.js';
import { checkPositiveInt, joinPrefix, splitPrefix } from './core.js';

export interface FeedForwardPatchesOptions {
  dim: number;
  /** Patch tokens P = rows·cols the mixer is built for (fixed). */
  numPatches: number;
  /** Hidden width = round(numPatches · hiddenRatio). Default 4 (the paper's ratio). */
  hiddenRatio?: number;
  /** Dropout after each Linear (train mode). Default 0. */
  drop?: number;
  rng?: Rng;
}

/** Parameters: `mlp.fc1` (P → hidden), `mlp.fc2` (hidden → P), trunc-normal(0.02) weights, zero biases. */
export class FeedForwardPatchesMixer extends TokenMixer {
  readonly kind = 'ff-patches';
  readonly dim: number;
  readonly numPatches: number;
  readonly hiddenFeatures: number;
  readonly mlp: Mlp;

  constructor(opts: FeedForwardPatchesOptions) {
    super();
    const { dim, numPatches } = opts;
    checkPositiveInt('FeedForwardPatchesMixer', 'dim', dim);
    checkPositiveInt('FeedForwardPatchesMixer', 'numPatches', numPatches);
    const ratio = opts.hiddenRatio ?? 4;
    if (!(ratio > 0)) throw new RangeError(`FeedForwardPatchesMixer: hiddenRatio must be positive, got ${ratio}`);
    this.dim = dim;
    this.numPatches = numPatches;
    this.hiddenFeatures = FeedForwardPatchesMixer.hiddenFeatures(numPatches, ratio);
    this.mlp = this.registerModule(
      'mlp',
      new Mlp(numPatches, { hiddenFeatures: this.hiddenFeatures, drop: opts.drop ?? 0, rng: opts.rng ?? new Rng(0) }),
    );
  }

  /** Hidden width for `numPatches` and `hiddenRatio` (default 4): max(1, round(P · ratio)). */
  static hiddenFeatures(numPatches: number, hiddenRatio = 4): number {
    return Math.max(1, Math.round(numPatches * hiddenRatio));
  }

  /** PyTorch names and shapes: `mlp.fc1.weight` (hidden, P), `mlp.fc1.bias` (hidden), `mlp.fc2.weight` (P, hidden), `mlp.fc2.bias` (P). */
  static parameterShapes(opts: Pick<FeedForwardPatchesOptions, 'numPatches' | 'hiddenRatio'>): [string, number[]][] {
    const P = opts.numPatches;
    const h = FeedForwardPatchesMixer.hiddenFeatures(P, opts.hiddenRatio);
    return [
      ['mlp.fc1.weight', [h, P]],
      ['mlp.fc1.bias', [h]],
      ['mlp.fc2.weight', [P, h]],
      ['mlp.fc2.bias', [P]],
    ];
  }

  /** Per image: fc1 and fc2 over the C channel vectors of P patch values, C·P·hidden each. */
  override macs(g: MixerGeometry): MixerMacs[] {
    checkGeometry('FeedForwardPatchesMixer', g);
    this.checkGrid(g.grid, g.numPrefixTokens);
    const C = this.dim;
    const P = this.numPatches;
    const h = this.hiddenFeatures;
    return [
      { name: 'mlp.fc1', op: 'linear', macs: C * P * h },
      { name: 'mlp.fc2', op: 'linear', macs: C * h * P },
    ];
  }

  /** [B, N, C] → [B, N, C]; prefix tokens are returned unchanged. */
  forward(input: MixerInput): tf.Tensor3D {
    checkMixerInput('FeedForwardPatchesMixer', input, this.dim);
    this.checkGrid(input.grid, input.numPrefixTokens);
    const P = this.numPatches;
    return tf.tidy(() => {
      const [B, N, C] = input.tokens.shape as [number, number, number];
      const [prefix, patches] = splitPrefix(input.tokens, input.numPrefixTokens);
      // [B, P, C] → [B, C, P] → [B·C, P]: the MLP mixes each channel's P patch values.
      const t = tf.reshape(tf.transpose(patches, [0, 2, 1]), [B * C, P]);
      // mlp.forward's computation (fc1 → GELU → drop → fc2 → drop) with wasm-friendly matmul gradients.
      const h = this.mlp.drop.forward(this.mlp.fc1.forwardGelu(t));
      const m = this.mlp.drop.forward(this.mlp.fc2.forward(h));
      const y = tf.transpose(tf.reshape(m, [B, C, P]), [0, 2, 1]);
      return tf.reshape(joinPrefix(prefix, y), [B, N, C]) as tf.Tensor3D;
    });
  }

  private checkGrid(grid: readonly [number, number], numPrefixTokens: number): void {
    const [rows, cols] = grid;
    const P = this.numPatches;
    if (rows * cols !== P) {
      throw new Error(
        `FeedForwardPatchesMixer: built for ${P} patch tokens, got a ${rows}×${cols} grid (${rows * cols}); ` +
          `expected tokens [B, ${P + numPrefixTokens}, ${this.dim}] (${P} patches + ${numPrefixTokens} prefix)`,
      );
    }
  }
}
