/**
 * AdamW with decoupled weight decay, the update of PyTorch's `torch.optim.AdamW` (amsgrad off):
 *
 *     θ ← θ · (1 − lr · λ)                      (λ = 0 for the names in `noWeightDecay`)
 *     m ← β1 · m + (1 − β1) · g
 *     v ← β2 · v + (1 − β2) · g²
 *     θ ← θ − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + ε)
 *
 * with t counted per parameter (a parameter that gets no gradient does not advance). Scalars are computed in
 * float64 on the host; tensors are float32. Parameters are updated with `Parameter.assign`, which gives the
 * variable a new data id, so caches keyed on it (GPSA's eval-mode positional attention) invalidate.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Module, type Parameter } from '@softbias/tensor-ops';

export interface AdamWOptions {
  /** Learning rate (overridden per step by a schedule). Default 1e-3. */
  lr?: number;
  betas?: readonly [number, number];
  eps?: number;
  /** Decoupled weight decay λ. Default 0.01 (PyTorch's default). */
  weightDecay?: number;
  /** Parameter names that get no weight decay. Default: `module.noWeightDecay()` when built from a module. */
  noWeightDecay?: Iterable<string>;
}

/** Optimizer state of one parameter. */
export interface AdamWSlot {
  step: number;
  /** First moment (tfjs layout, the parameter's shape). */
  m: tf.Tensor;
  /** Second moment. */
  v: tf.Tensor;
}

export class AdamW {
  readonly params: readonly [string, Parameter][];
  lr: number;
  readonly betas: readonly [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  readonly noDecay: ReadonlySet<string>;
  private readonly slots = new Map<string, AdamWSlot>();
  private readonly byVariable = new Map<string, string>();

  /** `params`: a module (its trainable parameters) or `[name, Parameter]` pairs. */
  constructor(params: Module | readonly [string, Parameter][], opts: AdamWOptions = {}) {
    this.params = params instanceof Module ? params.trainableParameters() : [...params];
    this.lr = opts.lr ?? 1e-3;
    this.betas = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0.01;
    const nd = opts.noWeightDecay ?? (params instanceof Module ? params.noWeightDecay() : []);
    this.noDecay = new Set(nd);
    for (const [b, name] of [[this.betas[0], 'beta1'], [this.betas[1], 'beta2']] as const) {
      if (!(b >= 0 && b < 1)) throw new RangeError(`AdamW: ${name} must be in [0, 1), got ${b}`);
    }
    if (!(this.eps >= 0)) throw new RangeError(`AdamW: eps must be ≥ 0, got ${this.eps}`);
    if (!(this.weightDecay >= 0)) throw new RangeError(`AdamW: weightDecay must be ≥ 0, got ${this.weightDecay}`);
    const seen = new Set<string>();
    for (const [name, p] of this.params) {
      if (seen.has(name)) throw new Error(`AdamW: parameter '${name}' is listed twice`);
      seen.add(name);
      this.byVariable.set(p.variable.name, name);
    }
  }

  /** The variables to differentiate (pass to `tf.variableGrads`). */
  variables(): tf.Variable[] {
    return this.params.map(([, p]) => p.variable);
  }

  /** Map `tf.variableGrads` output (keyed by variable name) to parameter names. */
  gradsByName(grads: tf.NamedTensorMap): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    for (const [vname, g] of Object.entries(grads)) {
      const name = this.byVariable.get(vname);
      if (name === undefined) throw new Error(`AdamW: gradient for variable '${vname}', which this optimizer does not hold`);
      out.set(name, g);
    }
    return out;
  }

  /** Number of updates applied to a parameter (0 before its first). */
  stepOf(name: string): number {
    return this.slots.get(name)?.step ?? 0;
  }

  /** Slot of a parameter (undefined before its first update). */
  slot(name: string): AdamWSlot | undefined {
    return this.slots.get(name);
  }

  /**
   * One update from gradients keyed by parameter name (tfjs layout). Parameters without a gradient are left
   * alone. The gradients are not disposed.
   */
  applyGradients(grads: ReadonlyMap<string, tf.Tensor> | Readonly<Record<string, tf.Tensor>>, lr = this.lr): void {
    const map = grads instanceof Map ? grads : new Map(Object.entries(grads));
    const [b1, b2] = this.betas;
    const known = new Set(this.params.map(([n]) => n));
    for (const k of map.keys()) if (!known.has(k)) throw new Error(`AdamW: gradient for unknown parameter '${k}'`);
    for (const [name, p] of this.params) {
      const g = map.get(name);
      if (!g) continue;
      if (!tf.util.arraysEqual(g.shape, p.shape)) {
        throw new Error(`AdamW: gradient of '${name}' has shape [${g.shape}], the parameter [${p.shape}]`);
      }
      const prev = this.slots.get(name);
      const t = (prev?.step ?? 0) + 1;
      const decay = this.noDecay.has(name) ? 0 : this.weightDecay;
      const bc1 = 1 - b1 ** t;
      const bc2Sqrt = Math.sqrt(1 - b2 ** t);
      const stepSize = lr / bc1;
      const [m, v, next] = tf.tidy(() => {
        const m0 = prev?.m ?? tf.zerosLike(g);
        const v0 = prev?.v ?? tf.zerosLike(g);
        const m1 = tf.add(tf.mul(m0, b1), tf.mul(g, 1 - b1));
        const v1 = tf.add(tf.mul(v0, b2), tf.mul(tf.square(g), 1 - b2));
        const denom = tf.add(tf.div(tf.sqrt(v1), bc2Sqrt), this.eps);
        const decayed = decay === 0 ? p.variable : tf.mul(p.variable, 1 - lr * decay);
        const theta = tf.sub(decayed, tf.mul(tf.div(m1, denom), stepSize));
        return [m1, v1, theta];
      });
      p.assign(next);
      next.dispose();
      prev?.m.dispose();
      prev?.v.dispose();
      this.slots.set(name, { step: t, m, v });
    }
  }

  /** Replace the state of parameters (from a checkpoint). Takes ownership of the tensors. */
  setSlot(name: string, slot: AdamWSlot): void {
    const p = this.params.find(([n]) => n === name)?.[1];
    if (!p) throw new Error(`AdamW: no parameter '${name}'`);
    if (!tf.util.arraysEqual(slot.m.shape, p.shape) || !tf.util.arraysEqual(slot.v.shape, p.shape)) {
      throw new Error(`AdamW: state of '${name}' has shape [${slot.m.shape}] / [${slot.v.shape}], the parameter [${p.shape}]`);
    }
    const prev = this.slots.get(name);
    prev?.m.dispose();
    prev?.v.dispose();
    this.slots.set(name, slot);
  }

  /** Names with state, in parameter order. */
  slotNames(): string[] {
    return this.params.map(([n]) => n).filter((n) => this.slots.has(n));
  }

  /** Hyper-parameters, as JSON. */
  config(): { lr: number; betas: [number, number]; eps: number; weightDecay: number; noWeightDecay: string[] } {
    return { lr: this.lr, betas: [this.betas[0], this.betas[1]], eps: this.eps, weightDecay: this.weightDecay, noWeightDecay: [...this.noDecay] };
  }

  /** Free the moment tensors. */
  dispose(): void {
    for (const s of this.slots.values()) {
      s.m.dispose();
      s.v.dispose();
    }
    this.slots.clear();
  }
}
