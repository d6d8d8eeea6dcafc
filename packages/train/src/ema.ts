/**
 * Exponential moving average of a model's parameters, as timm's `ModelEmaV2` / `ModelEmaV3`:
 * after each update, ema ← d · ema + (1 − d) · θ, starting from a copy of the model.
 * - Without `warmup` (timm `ModelEmaV2`, or `ModelEmaV3` updated without a step): d = `decay` at every update.
 * - With `warmup` (timm `ModelEmaV3(use_warmup=True)` with its defaults `warmup_gamma` 1, `warmup_power` 2/3,
 *   `min_decay` 0, `update_after_step` 0, updated with `step` = the 1-based update count as timm's train.py
 *   does): at update t = 0, 1, 2, … the decay is 0 for t = 0 (the average becomes the model) and
 *   min(decay, 1 − (1 + t)^(−2/3)) after.
 * timm averages the whole state_dict; the softbias models keep no buffers, so that is every parameter.
 * Evaluate with the averaged weights through `swapInto(model)` (which returns a restore function).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Module } from '@softbias/tensor-ops';

export interface EmaOptions {
  /** Default 0.9998. */
  decay?: number;
  /** timm `ModelEmaV3`'s decay warm-up (gamma 1, power 2/3). Default false. */
  warmup?: boolean;
}

/** timm `ModelEmaV3.get_decay` with its default warm-up (gamma 1, power 2/3, min_decay 0, update_after_step 0). */
export function emaWarmupDecay(decay: number, update: number): number {
  if (update <= 0) return 0;
  return Math.max(Math.min(1 - (1 + update) ** (-2 / 3), decay), 0);
}

export class ModelEma {
  readonly decay: number;
  readonly warmup: boolean;
  /** Updates applied so far. */
  updates = 0;
  /** Averaged values (tfjs layout) by parameter name. */
  readonly shadow = new Map<string, tf.Tensor>();

  constructor(model: Module, opts: EmaOptions = {}) {
    this.decay = opts.decay ?? 0.9998;
    this.warmup = opts.warmup ?? false;
    if (!(this.decay >= 0 && this.decay <= 1)) throw new RangeError(`ModelEma: decay must be in [0, 1], got ${this.decay}`);
    for (const [name, p] of model.namedParameters()) this.shadow.set(name, tf.keep(tf.clone(p.variable)));
  }

  /** The decay the next update uses. */
  currentDecay(): number {
    return this.warmup ? emaWarmupDecay(this.decay, this.updates) : this.decay;
  }

  update(model: Module): void {
    const d = this.currentDecay();
    for (const [name, p] of model.namedParameters()) {
      const old = this.shadow.get(name);
      if (!old) throw new Error(`ModelEma: the model has a parameter '${name}' the EMA does not`);
      this.shadow.set(name, tf.tidy(() => tf.add(tf.mul(old, d), tf.mul(p.variable, 1 - d))));
      old.dispose();
    }
    this.updates++;
  }

  /** Put the averaged weights into the model; the returned function puts the originals back. */
  swapInto(model: Module): () => void {
    const saved = new Map<string, tf.Tensor>();
    for (const [name, p] of model.namedParameters()) {
      saved.set(name, tf.clone(p.variable));
      p.assign(this.shadow.get(name)!);
    }
    return () => {
      for (const [name, p] of model.namedParameters()) {
        const s = saved.get(name)!;
        p.assign(s);
        s.dispose();
      }
    };
  }

  /** Replace an averaged value (from a checkpoint). Takes ownership of the tensor. */
  setShadow(name: string, value: tf.Tensor): void {
    const old = this.shadow.get(name);
    if (!old) throw new Error(`ModelEma: no parameter '${name}'`);
    if (!tf.util.arraysEqual(old.shape, value.shape)) throw new Error(`ModelEma: '${name}' has shape [${old.shape}], got [${value.shape}]`);
    old.dispose();
    this.shadow.set(name, value);
  }

  dispose(): void {
    for (const t of this.shadow.values()) t.dispose();
    this.shadow.clear();
  }
}
