import { describe, it, expect } from 'vitest';
import { loadFixture } from '@softbias/test-utils';
import { relativeIndices, relativeDistances } from '@softbias/gpsa';
import { patchDistances } from '@softbias/attention';

describe('gpsa: relative indices', () => {
  it('equal the reference rel_indices of the 8×8 grid exactly', () => {
    const want = loadFixture('convit_micro').get('rel_indices');
    expect(want.shape).toEqual([64, 64, 3]);
    expect(Array.from(relativeIndices(8, 8))).toEqual(Array.from(want.data));
  });

  it('use the actual rows and columns of a non-square grid', () => {
    // 2×3 grid: token n at (y = ⌊n/3⌋, x = n mod 3).
    const r = relativeIndices(2, 3);
    expect(r.length).toBe(6 * 6 * 3);
    const at = (q: number, k: number) => Array.from(r.subarray((q * 6 + k) * 3, (q * 6 + k) * 3 + 3));
    expect(at(0, 5)).toEqual([2, 1, 5]); // key (1, 2) from query (0, 0)
    expect(at(5, 0)).toEqual([-2, -1, 5]);
    expect(at(1, 3)).toEqual([-1, 1, 2]); // key (1, 0) from query (0, 1)
    expect(at(4, 4)).toEqual([0, 0, 0]);
    const d = relativeDistances(2, 3);
    expect(d[0 * 6 + 5]).toBeCloseTo(Math.sqrt(5), 6);
    // The deprecated alias is attention's patchDistances.
    expect(Array.from(d)).toEqual(Array.from(patchDistances([2, 3])));
    expect(() => relativeIndices(0, 3)).toThrow(/positive integers/);
  });
});
