import * as tf from '@tensorflow/tfjs-core';
import { Module } from '../module.js';
import { Rng } from '../rng.js';

/** Element-wise dropout (inverted scaling) in train mode; identity in eval mode or at p = 0. */
export class Dropout extends Module {
  constructor(
    readonly p = 0,
    readonly rng: Rng = new Rng(0),
  ) {
    super();
    if (!(p >= 0 && p < 1)) throw new RangeError(`Dropout: p must be in [0, 1), got ${p}`);
  }
  forward(x: tf.Tensor): tf.Tensor {
    if (!this.training || this.p === 0) return x;
    const keep = 1 - this.p;
    const mask = new Float32Array(x.size);
    for (let i = 0; i < mask.length; i++) mask[i] = this.rng.random() < keep ? 1 / keep : 0;
    return tf.tidy(() => tf.mul(x, tf.tensor(mask, x.shape, 'float32')));
  }
}

/**
 * Stochastic depth (timm `DropPath`): in train mode each sample's residual branch is dropped with
 * probability p and the kept ones are scaled by 1/(1-p). Identity in eval mode or at p = 0.
 */
export class DropPath extends Module {
  constructor(
    readonly p = 0,
    readonly rng: Rng = new Rng(0),
  ) {
    super();
    if (!(p >= 0 && p < 1)) throw new RangeError(`DropPath: p must be in [0, 1), got ${p}`);
  }
  forward(x: tf.Tensor): tf.Tensor {
    if (!this.training || this.p === 0) return x;
    const keep = 1 - this.p;
    const b = x.shape[0]!;
    const mask = new Float32Array(b);
    for (let i = 0; i < b; i++) mask[i] = this.rng.random() < keep ? 1 / keep : 0;
    const shape = [b, ...x.shape.slice(1).map(() => 1)];
    return tf.tidy(() => tf.mul(x, tf.tensor(mask, shape, 'float32')));
  }
}
