import * as tf from '@tensorflow/tfjs-core';
import { Module, type Parameter } from '../module.js';
import { ones, zeros } from '../init.js';
import { fusedLayerNorm } from '../kernels/eltwise.js';

/**
 * LayerNorm over the last axis, PyTorch semantics (biased variance, eps inside the sqrt), params
 * `weight` / `bias`. `eps` defaults to 1e-6 (both model families; PyTorch's own default is 1e-5).
 */
export class LayerNorm extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter;
  constructor(
    readonly dim: number,
    readonly eps = 1e-6,
  ) {
    super();
    this.weight = this.registerParameter('weight', ones([dim]), { noWeightDecay: true });
    this.bias = this.registerParameter('bias', zeros([dim]), { noWeightDecay: true });
  }
  forward(x: tf.Tensor): tf.Tensor {
    if (x.shape[x.rank - 1] !== this.dim) {
      throw new Error(`LayerNorm: expected last dimension ${this.dim}, got input of shape [${x.shape}]`);
    }
    return layerNorm(x, this.weight.value, this.bias.value, this.eps);
  }
}

/** Functional LayerNorm over the last axis (on wasm one fused kernel, see kernels/eltwise.ts; else `layerNormOps`). */
export function layerNorm(x: tf.Tensor, weight: tf.Tensor | null, bias: tf.Tensor | null, eps = 1e-6): tf.Tensor {
  return fusedLayerNorm(x, weight, bias, eps) ?? layerNormOps(x, weight, bias, eps);
}

/** LayerNorm over the last axis as tfjs' op graph. */
export function layerNormOps(x: tf.Tensor, weight: tf.Tensor | null, bias: tf.Tensor | null, eps = 1e-6): tf.Tensor {
  return tf.tidy(() => {
    const axis = x.rank - 1;
    const mean = tf.mean(x, axis, true);
    const centered = tf.sub(x, mean);
    const variance = tf.mean(tf.square(centered), axis, true);
    let y = tf.mul(centered, tf.rsqrt(tf.add(variance, eps)));
    if (weight) y = tf.mul(y, weight);
    if (bias) y = tf.add(y, bias);
    return y;
  });
}
