import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend, expectClose } from '@softbias/test-utils';
import { Linear, Rng } from '@softbias/tensor-ops';
import { ModelEma, emaWarmupDecay } from '@softbias/train';

/**
 * timm `ModelEmaV3.get_decay(step)` (timm/utils/model_ema.py), written here from its definition, with
 * train.py's call `update(model, step=num_updates)` (num_updates counted from 1):
 * step' = max(0, step − update_after_step − 1); 0 if step' ≤ 0; with use_warmup
 * clamp(1 − (1 + step'/gamma)^(−power), min_decay, decay), else decay.
 */
function timmV3Decay(step: number, o: { decay: number; useWarmup: boolean; gamma?: number; power?: number; minDecay?: number; updateAfter?: number }): number {
  const s = Math.max(0, step - (o.updateAfter ?? 0) - 1);
  if (s <= 0) return 0;
  if (!o.useWarmup) return o.decay;
  const d = 1 - (1 + s / (o.gamma ?? 1)) ** -(o.power ?? 2 / 3);
  return Math.max(Math.min(d, o.decay), o.minDecay ?? 0);
}

describeBackend('EMA of weights (timm ModelEmaV2 / ModelEmaV3)', () => {
  it('warm-up decay = ModelEmaV3(use_warmup=True) defaults: 0 at the first update, then 1 − (1 + t)^(−2/3) capped at decay', () => {
    // literal values of timm's formula at steps 1..6 (decay 0.9998)
    const want = [0, 0.3700394750525634, 0.5192501432308638, 0.6031497370079502, 0.6580048106646605, 0.69714656786131];
    want.forEach((d, t) => {
      expect(emaWarmupDecay(0.9998, t)).toBeCloseTo(d, 15);
    });
    for (let t = 0; t < 3000; t += 7) {
      for (const decay of [0.9, 0.999, 0.9998]) expect(emaWarmupDecay(decay, t)).toBeCloseTo(timmV3Decay(t + 1, { decay, useWarmup: true }), 15);
    }
    expect(emaWarmupDecay(0.9, 10_000)).toBe(0.9); // capped
  });

  it('ema ← d·ema + (1−d)·θ as ModelEmaV2 (no warm-up) and ModelEmaV3 (warm-up), from a copy of the model; swapInto and restore', async () => {
    const model = new Linear(3, 2, { rng: new Rng(1) });
    for (const warmup of [false, true]) {
      const ema = new ModelEma(model, { decay: 0.9, warmup });
      const ref = new Map<string, number[]>();
      for (const [n, p] of model.namedParameters()) ref.set(n, Array.from(await p.variable.data()));
      const rng = new Rng(2);
      for (let t = 0; t < 5; t++) {
        for (const [, p] of model.namedParameters()) p.assign(tf.tidy(() => tf.add(p.variable, tf.scalar(rng.normal()))));
        // V2: the decay at every update; V3 with warm-up: its get_decay at step t + 1.
        const d = warmup ? timmV3Decay(t + 1, { decay: 0.9, useWarmup: true }) : 0.9;
        expect(ema.currentDecay()).toBeCloseTo(d, 15);
        ema.update(model);
        for (const [n, p] of model.namedParameters()) {
          const th = await p.variable.data();
          ref.set(n, ref.get(n)!.map((e, i) => d * e + (1 - d) * th[i]!));
        }
        if (warmup && t === 0) {
          // decay 0 at the first update: the average is the model itself
          for (const [n, p] of model.namedParameters()) await expectClose(ema.shadow.get(n)!, await p.variable.data(), 0, `ema/${n} after update 1`);
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
