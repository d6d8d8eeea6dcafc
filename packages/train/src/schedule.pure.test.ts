import { describe, it, expect } from 'vitest';
import { cosineSchedule, constantSchedule } from '@softbias/train';

/**
 * timm `CosineLRScheduler._get_lr(t)` (timm/scheduler/cosine_lr.py), one cycle (cycle_limit 1, cycle_mul 1,
 * cycle_decay 1, k_decay 1, no noise), written here from its definition: warm-up `warmup_lr_init + t·(base −
 * init)/warmup_t` for t < warmup_t; otherwise t shifted by warmup_t when `warmup_prefix`, and the cosine
 * `lr_min + ½(base − lr_min)(1 + cos(π t / t_initial))` while t < t_initial (cycle 0), `lr_min` after.
 */
function timmCosine(t: number, o: { base: number; tInitial: number; lrMin: number; warmupT: number; warmupInit: number; warmupPrefix: boolean }): number {
  if (t < o.warmupT) return o.warmupInit + t * ((o.base - o.warmupInit) / o.warmupT);
  const tc = o.warmupPrefix ? t - o.warmupT : t;
  const cycle = Math.floor(tc / o.tInitial);
  if (cycle >= 1) return o.lrMin;
  return o.lrMin + 0.5 * (o.base - o.lrMin) * (1 + Math.cos((Math.PI * tc) / o.tInitial));
}

describe('cosine schedule with linear warm-up = timm CosineLRScheduler (per update)', () => {
  const base = 5e-4;
  const minLr = 1e-5;
  const init = 1e-6;
  const W = 7;
  const T = 50;

  it('warmupPrefix true (default) = timm warmup_prefix=True, t_initial = T − W, at every update', () => {
    const f = cosineSchedule({ baseLr: base, totalSteps: T, warmupSteps: W, warmupInitLr: init, minLr });
    const g = cosineSchedule({ baseLr: base, totalSteps: T, warmupSteps: W, warmupInitLr: init, minLr, warmupPrefix: true });
    for (let s = 0; s < T + 5; s++) {
      const want = timmCosine(s, { base, tInitial: T - W, lrMin: minLr, warmupT: W, warmupInit: init, warmupPrefix: true });
      expect(f(s)).toBeCloseTo(want, 15);
      expect(g(s)).toBe(f(s));
    }
    expect(f(W)).toBeCloseTo(base, 15); // the peak right after warm-up
    expect(f(T - 1)).toBeGreaterThan(minLr);
    expect(f(T)).toBe(minLr);
  });

  it('warmupPrefix false = timm default warmup_prefix=False, t_initial = T', () => {
    const f = cosineSchedule({ baseLr: base, totalSteps: T, warmupSteps: W, warmupInitLr: init, minLr, warmupPrefix: false });
    for (let s = 0; s < T + 5; s++) {
      const want = timmCosine(s, { base, tInitial: T, lrMin: minLr, warmupT: W, warmupInit: init, warmupPrefix: false });
      expect(f(s)).toBeCloseTo(want, 15);
    }
    expect(f(W)).toBeLessThan(base); // the cosine has run during the warm-up
  });

  it('literal values (base 1, warm-up 2 from 0.1, T = 8): both warmup_prefix choices', () => {
    // timm: CosineLRScheduler(t_initial=6, warmup_t=2, warmup_lr_init=0.1, warmup_prefix=True), t = 0..8
    const pre = cosineSchedule({ baseLr: 1, totalSteps: 8, warmupSteps: 2, warmupInitLr: 0.1 });
    expect([0, 1, 2, 3, 4, 5, 6, 7, 8].map((s) => +pre(s).toFixed(12))).toEqual([0.1, 0.55, 1, 0.933012701892, 0.75, 0.5, 0.25, 0.066987298108, 0]);
    // timm: CosineLRScheduler(t_initial=8, warmup_t=2, warmup_lr_init=0.1), t = 0..9
    const plain = cosineSchedule({ baseLr: 1, totalSteps: 8, warmupSteps: 2, warmupInitLr: 0.1, warmupPrefix: false });
    expect([0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((s) => +plain(s).toFixed(12))).toEqual([
      0.1, 0.55, 0.853553390593, 0.691341716183, 0.5, 0.308658283817, 0.146446609407, 0.038060233744, 0, 0,
    ]);
    const noWarm = cosineSchedule({ baseLr: 1, totalSteps: 4 });
    expect([0, 1, 2, 3, 4].map(noWarm).map((v) => +v.toFixed(12))).toEqual([1, 0.853553390593, 0.5, 0.146446609407, 0]);
    expect(constantSchedule(0.3)(99)).toBe(0.3);
  });

  it('rejects bad arguments', () => {
    expect(() => cosineSchedule({ baseLr: 1, totalSteps: 0 })).toThrow(/totalSteps must be a positive integer/);
    expect(() => cosineSchedule({ baseLr: 1, totalSteps: 5, warmupSteps: 6 })).toThrow(/warmupSteps must be an integer in \[0, totalSteps\]/);
  });
});
