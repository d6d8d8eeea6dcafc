import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend, expectClose } from '@softbias/test-utils';
import { Linear, Rng } from '@softbias/tensor-ops';
import { ModelEma } from '@softbias/train';

describeBackend('EMA of weights', () => {
  it('ema ← d·ema + (1−d)·θ (with and without warm-up); swapInto and restore', async () => {
    const model = new Linear(3, 2, { rng: new Rng(1) });
    for (const warmup of [false, true]) {
      const ema = new ModelEma(model, { decay: 0.9, warmup });
      const ref = new Map<string, number[]>();
      for (const [n, p] of model.namedParameters()) ref.set(n, Array.from(await p.variable.data()));
      const rng = new Rng(2);
      for (let t = 0; t < 5; t++) {
        for (const [, p] of model.namedParameters()) p.assign(tf.tidy(() => tf.add(p.variable, tf.scalar(rng.normal()))));
        const d = warmup ? Math.min(0.9, (1 + t) / (10 + t)) : 0.9;
        expect(ema.currentDecay()).toBeCloseTo(d, 15);
        ema.update(model);
        for (const [n, p] of model.namedParameters()) {
          const th = await p.variable.data();
          ref.set(n, ref.get(n)!.map((e, i) => d * e + (1 - d) * th[i]!));
        }
      }
      for (const [n, t] of ema.shadow) await expectClose(t, ref.get(n)!, 1e-5, `ema/${n}`);
      const orig = Array.from(await model.weight.variable.data());
      const restore = ema.swapInto(model);
      await expectClose(model.weight.variable, ref.get('weight')!, 1e-5, 'ema/swapped');
      restore();
      await expectClose(model.weight.variable, orig, 0, 'ema/restored');
      ema.dispose();
    }
    model.dispose();
  });
});
