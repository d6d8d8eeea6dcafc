import * as tf from '@tensorflow/tfjs-core';
import { Module, type Parameter, zeros } from '@softbias/tensor-ops';
import { grn, grnMasked, grnRows, GRN_EPS, type GrnMaskedOptions, type GrnRowsOptions } from './grn.js';

/**
 * GRN as a module with timm's parameter names: `weight` (γ) and `bias` (β), shape (C), zero-initialised
 * (so a fresh GRN is the identity). Inside a ConvNeXt V2 block it is registered as `mlp.grn`; the official
 * names `grn.gamma` / `grn.beta` (1, 1, 1, C) are mapped by the model loaders.
 */
export class Grn extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter;

  constructor(
    readonly dim: number,
    readonly eps = GRN_EPS,
  ) {
    super();
    if (!Number.isInteger(dim) || dim < 1) throw new RangeError(`Grn: dim must be a positive integer, got ${dim}`);
    this.weight = this.registerParameter('weight', zeros([dim]), { noWeightDecay: true });
    this.bias = this.registerParameter('bias', zeros([dim]), { noWeightDecay: true });
  }

  /** Dense GRN of [B, H, W, C] (or [B, N, C]), per-image statistics. */
  forward(x: tf.Tensor): tf.Tensor {
    this.checkChannels(x, 'Grn.forward', '[B, H, W, C]');
    return grn(x, this.weight.value, this.bias.value, { eps: this.eps });
  }

  /** GRN over visible sites only (`visible` 1 = kept); see `grnMasked`. */
  forwardMasked(x: tf.Tensor, visible: tf.Tensor, opts: Omit<GrnMaskedOptions, 'eps'> = {}): tf.Tensor {
    this.checkChannels(x, 'Grn.forwardMasked', '[B, H, W, C]');
    return grnMasked(x, visible, this.weight.value, this.bias.value, { ...opts, eps: this.eps });
  }

  /** GRN on visible-site rows [V, C]; see `grnRows`. */
  forwardRows(rows: tf.Tensor, opts: Omit<GrnRowsOptions, 'eps'> = {}): tf.Tensor {
    this.checkChannels(rows, 'Grn.forwardRows', '[V, C]');
    return grnRows(rows, this.weight.value, this.bias.value, { ...opts, eps: this.eps });
  }

  private checkChannels(x: tf.Tensor, what: string, layout: string): void {
    if (x.shape[x.rank - 1] !== this.dim) {
      throw new Error(`${what}: expected ${layout.replace('C', String(this.dim))}, got [${x.shape}]`);
    }
  }
}
