/** The replaceable classifier slot of every family: timm's `nn.Linear` or `nn.Identity`. */
import type * as tf from '@tensorflow/tfjs-core';
import { Module, type Parameter } from '../module.js';
import { type LinearOptions, linear, linearInit } from '../layers/linear.js';
import { Rng } from '../rng.js';
import * as tfc from '@tensorflow/tfjs-core';

export interface ClassifierHeadOptions {
  rng?: Rng;
  /** Initialisation, as `Linear`'s (default timm's trunc_normal(0.02)). */
  init?: LinearOptions['init'];
  /** Multiply the initial weight and bias by this (ConvNeXt's `head_init_scale`). Default 1. */
  scale?: number;
}

/**
 * `numClasses` > 0: a linear classifier with PyTorch names `weight` `(numClasses, inFeatures)` and `bias`;
 * 0: the identity (no parameters; `forward` returns its input). Models hold it as a child and swap it with
 * `Module.replaceModule` in `resetClassifier`.
 */
export class ClassifierHead extends Module {
  private readonly _weight: Parameter | null = null;
  readonly bias: Parameter | null = null;

  constructor(
    readonly inFeatures: number,
    readonly numClasses: number,
    opts: ClassifierHeadOptions = {},
  ) {
    super();
    if (!Number.isInteger(numClasses) || numClasses < 0) {
      throw new RangeError(`ClassifierHead: numClasses must be an integer ≥ 0, got ${numClasses}`);
    }
    if (numClasses === 0) return;
    let { w, b } = linearInit(inFeatures, numClasses, opts.init, opts.rng ?? new Rng(0));
    const scale = opts.scale ?? 1;
    if (scale !== 1) {
      const [ws, bs] = [tfc.mul(w, scale), tfc.mul(b, scale)];
      tfc.dispose([w, b]);
      [w, b] = [ws, bs];
    }
    this._weight = this.registerParameter('weight', w, { layout: 'linear' });
    this.bias = this.registerParameter('bias', b, { noWeightDecay: true });
  }

  /** The weight `[in, out]` (tfjs layout). Throws for the identity head (numClasses 0). */
  get weight(): Parameter {
    if (!this._weight) throw new Error('ClassifierHead: the identity head (numClasses 0) has no weight');
    return this._weight;
  }

  /** Whether this is the identity (numClasses 0). */
  get isIdentity(): boolean {
    return this._weight === null;
  }

  /** Logits `[..., numClasses]`, or `x` itself for the identity head. */
  forward(x: tf.Tensor): tf.Tensor {
    return this._weight ? linear(x, this._weight.value, this.bias!.value) : x;
  }
}
