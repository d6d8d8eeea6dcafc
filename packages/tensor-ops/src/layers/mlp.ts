import * as tf from '@tensorflow/tfjs-core';
import { Module } from '../module.js';
import { Rng } from '../rng.js';
import { Linear } from './linear.js';
import { Dropout } from './dropout.js';

export interface MlpOptions {
  hiddenFeatures?: number;
  outFeatures?: number;
  drop?: number;
  bias?: boolean;
  rng?: Rng;
  initStd?: number;
}

/** timm `Mlp`: fc1 → exact GELU → dropout → fc2 → dropout (names `fc1`, `fc2`). */
export class Mlp extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  readonly drop: Dropout;
  constructor(inFeatures: number, opts: MlpOptions = {}) {
    super();
    const rng = opts.rng ?? new Rng(0);
    const hidden = opts.hiddenFeatures ?? inFeatures * 4;
    const out = opts.outFeatures ?? inFeatures;
    const init = { kind: 'trunc_normal' as const, std: opts.initStd ?? 0.02 };
    this.fc1 = this.registerModule('fc1', new Linear(inFeatures, hidden, { bias: opts.bias ?? true, rng, init }));
    this.fc2 = this.registerModule('fc2', new Linear(hidden, out, { bias: opts.bias ?? true, rng, init }));
    this.drop = new Dropout(opts.drop ?? 0, rng.fork());
    this.registerModule('drop', this.drop);
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const h = this.drop.forward(this.fc1.forwardGelu(x));
      return this.drop.forward(this.fc2.forward(h));
    });
  }
}
