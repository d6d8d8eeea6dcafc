import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend, expectClose } from '@softbias/test-utils';
import { Module, Rng, normal, type Parameter } from '@softbias/tensor-ops';
import { AdamW } from '@softbias/train';

class Params extends Module {
  readonly w: Parameter;
  readonly b: Parameter;
  readonly pos: Parameter;
  constructor(rng: Rng) {
    super();
    this.w = this.registerParameter('w', normal([3, 4], rng));
    this.b = this.registerParameter('b', normal([4], rng)); // rank 1: no decay by default
    this.pos = this.registerParameter('pos', normal([2, 3], rng), { noWeightDecay: true });
  }
}

/** torch.optim.AdamW (amsgrad=False, maximize=False) for one parameter, in float64, written from its docs. */
class TorchAdamWRef {
  step = 0;
  m: Float64Array;
  v: Float64Array;
  constructor(
    public p: Float64Array,
    readonly betas: [number, number],
    readonly eps: number,
    readonly wd: number,
  ) {
    this.m = new Float64Array(p.length);
    this.v = new Float64Array(p.length);
  }
  update(g: ArrayLike<number>, lr: number): void {
    this.step++;
    const [b1, b2] = this.betas;
    for (let i = 0; i < this.p.length; i++) this.p[i]! *= 1 - lr * this.wd;
    for (let i = 0; i < this.p.length; i++) {
      this.m[i] = this.m[i]! + (g[i]! - this.m[i]!) * (1 - b1); // exp_avg.lerp_(grad, 1 - beta1)
      this.v[i] = this.v[i]! * b2 + (1 - b2) * g[i]! * g[i]!;
    }
    const bc1 = 1 - b1 ** this.step;
    const bc2 = 1 - b2 ** this.step;
    const stepSize = lr / bc1;
    const bc2Sqrt = Math.sqrt(bc2);
    for (let i = 0; i < this.p.length; i++) {
      const denom = Math.sqrt(this.v[i]!) / bc2Sqrt + this.eps;
      this.p[i] = this.p[i]! - stepSize * (this.m[i]! / denom);
    }
  }
}

describeBackend('AdamW', () => {
  it('matches a float64 torch.optim.AdamW over several steps; decoupled decay skips noWeightDecay names', async () => {
    const rng = new Rng(21);
    const model = new Params(rng);
    expect([...model.noWeightDecay()].sort()).toEqual(['b', 'pos']);
    const opt = new AdamW(model, { lr: 0.01, betas: [0.9, 0.99], eps: 1e-8, weightDecay: 0.1 });
    const refs = new Map<string, TorchAdamWRef>();
    for (const [name, p] of model.namedParameters()) {
      refs.set(name, new TorchAdamWRef(Float64Array.from(await p.variable.data()), [0.9, 0.99], 1e-8, name === 'w' ? 0.1 : 0));
    }
    const lrs = [0.01, 0.02, 0.015, 0.005, 0.03, 0.01, 0.002];
    for (let s = 0; s < lrs.length; s++) {
      const grads = new Map<string, tf.Tensor>();
      for (const [name, p] of model.namedParameters()) {
        // 'pos' gets no gradient at step 2: its state (and step count) must not advance, as in PyTorch.
        if (name === 'pos' && s === 2) continue;
        const g = Float32Array.from({ length: p.variable.size }, () => rng.normal() * (s + 1));
        grads.set(name, tf.tensor(g, p.shape));
        refs.get(name)!.update(g, lrs[s]!);
      }
      const idBefore = model.w.variable.dataId;
      opt.applyGradients(grads, lrs[s]);
      expect(model.w.variable.dataId).not.toBe(idBefore); // assign → new data id (caches keyed on it invalidate)
      tf.dispose([...grads.values()]);
    }
    expect(opt.stepOf('w')).toBe(7);
    expect(opt.stepOf('pos')).toBe(6);
    for (const [name, p] of model.namedParameters()) {
      const ref = refs.get(name)!;
      await expectClose(p.variable, ref.p, 2e-6, `adamw/${name}`);
      await expectClose(opt.slot(name)!.m, ref.m, 1e-5, `adamw/${name}.exp_avg`);
      await expectClose(opt.slot(name)!.v, ref.v, 1e-4 * Math.max(...ref.v), `adamw/${name}.exp_avg_sq`);
    }
    opt.dispose();
    model.dispose();
  });

  it('no tensor leaks; clear errors', async () => {
    const model = new Params(new Rng(1));
    const opt = new AdamW(model);
    const grads = new Map(model.namedParameters().map(([n, p]) => [n, tf.onesLike(p.variable)] as const));
    opt.applyGradients(grads); // creates the moments
    const before = tf.memory().numTensors;
    opt.applyGradients(grads);
    expect(tf.memory().numTensors).toBe(before);
    expect(() => opt.applyGradients(new Map([['nope', tf.ones([1])]]))).toThrow(/gradient for unknown parameter 'nope'/);
    expect(() => opt.applyGradients(new Map([['w', tf.ones([4, 3])]]))).toThrow(/gradient of 'w' has shape \[4,3\], the parameter \[3,4\]/);
    expect(() => new AdamW(model, { betas: [1, 0.9] })).toThrow(/beta1 must be in \[0, 1\)/);
    tf.dispose([...grads.values()]);
    opt.dispose();
    model.dispose();
  });
});
