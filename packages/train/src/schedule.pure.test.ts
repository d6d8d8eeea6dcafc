import { describe, it, expect } from 'vitest';
import { cosineSchedule, constantSchedule } from '@softbias/train';

describe('cosine schedule with linear warm-up', () => {
  it('equals the formula at every step', () => {
    const base = 5e-4;
    const minLr = 1e-5;
    const init = 1e-6;
    const W = 7;
    const T = 50;
    const f = cosineSchedule({ baseLr: base, totalSteps: T, warmupSteps: W, warmupInitLr: init, minLr });
    for (let s = 0; s < T + 5; s++) {
      const want = s < W ? init + ((base - init) * s) / W : s >= T ? minLr : minLr + 0.5 * (base - minLr) * (1 + Math.cos((Math.PI * (s - W)) / (T - W)));
      expect(f(s)).toBeCloseTo(want, 15);
    }
    expect(f(W)).toBeCloseTo(base, 15); // the peak right after warm-up
    expect(f(T - 1)).toBeGreaterThan(minLr);
    const noWarm = cosineSchedule({ baseLr: 1, totalSteps: 4 });
    expect([0, 1, 2, 3, 4].map(noWarm).map((v) => +v.toFixed(12))).toEqual([1, 0.853553390593, 0.5, 0.146446609407, 0]);
    expect(constantSchedule(0.3)(99)).toBe(0.3);
  });
  it('rejects bad arguments', () => {
    expect(() => cosineSchedule({ baseLr: 1, totalSteps: 0 })).toThrow(/totalSteps must be a positive integer/);
    expect(() => cosineSchedule({ baseLr: 1, totalSteps: 5, warmupSteps: 6 })).toThrow(/warmupSteps must be an integer in \[0, totalSteps\]/);
  });
});
