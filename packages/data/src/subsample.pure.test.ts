import { describe, it, expect } from 'vitest';
import { subsamplePerClass, classCounts } from '@softbias/data';
import { Rng } from '@softbias/tensor-ops';

/** Unbalanced labels: class c has 20 + 7c samples, interleaved at random. */
function labels(seed = 1): Int32Array {
  const l: number[] = [];
  for (let c = 0; c < 6; c++) for (let k = 0; k < 20 + 7 * c; k++) l.push(c);
  return Int32Array.from(new Rng(seed).shuffle(l) as number[]);
}

describe('per-class subsampling', () => {
  it('keeps ⌊f·n_c⌋ of each class', () => {
    const y = labels();
    const n = classCounts(y, 6);
    for (const f of [0.05, 0.1, 0.3, 0.5, 1]) {
      const idx = subsamplePerClass(y, { fraction: f, seed: 4 });
      const kept = classCounts(Array.from(idx, (i) => y[i]!), 6);
      expect(kept).toEqual(n.map((c) => Math.floor(c * f + 1e-9)));
      expect(new Set(idx).size).toBe(idx.length);
      for (let k = 1; k < idx.length; k++) expect(idx[k]!).toBeGreaterThan(idx[k - 1]!);
    }
    expect(classCounts(Array.from(subsamplePerClass(y, { perClass: 25 }), (i) => y[i]!), 6)).toEqual(n.map((c) => Math.min(25, c)));
  });

  it('is deterministic with a seed, nested across fractions, different across seeds', () => {
    const y = labels();
    const a = subsamplePerClass(y, { fraction: 0.3, seed: 7 });
    expect(Array.from(subsamplePerClass(y, { fraction: 0.3, seed: 7 }))).toEqual(Array.from(a));
    const b = subsamplePerClass(y, { fraction: 0.3, seed: 8 });
    expect(Array.from(b)).not.toEqual(Array.from(a));
    const small = subsamplePerClass(y, { fraction: 0.1, seed: 7 });
    const big = new Set(subsamplePerClass(y, { fraction: 0.5, seed: 7 }));
    for (const i of small) expect(big.has(i)).toBe(true);
    for (const i of a) expect(big.has(i)).toBe(true);
  });

  it('bad arguments', () => {
    expect(() => subsamplePerClass([0, 1], { fraction: 0 })).toThrow(/fraction must be in \(0, 1\]/);
    expect(() => subsamplePerClass([0, 1], { fraction: 1.5 })).toThrow(/fraction must be in/);
    expect(() => subsamplePerClass([0, 1], {})).toThrow(/exactly one of/);
    expect(() => subsamplePerClass([0, -1], { fraction: 0.5 })).toThrow(/label -1 at 1 is not a class index/);
    expect(() => subsamplePerClass([0, 3], { fraction: 0.5, numClasses: 2 })).toThrow(/label 3 ≥ numClasses 2/);
  });
});
