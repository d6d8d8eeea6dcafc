import * as tf from '@tensorflow/tfjs-core';
import { describe, it, expect } from 'vitest';
import { Rng } from '@softbias/tensor-ops';
import { numKept, numRemoved, randomMaskData, randomMask, upsampleMask, upsampleMaskData, stageMasksData } from './mask.js';
import { SiteIndex } from './sites.js';

describe('random patch masks', () => {
  it('keeps int(L·(1 − ratio)) patches per image, as the reference', () => {
    // Python: int(16 * (1 - 0.6)) = 6, int(49 * 0.4) = 19, int(196 * 0.25) = 49, int(4 * 0.5) = 2
    expect(numKept(16, 0.6)).toBe(6);
    expect(numKept(49, 0.6)).toBe(19);
    expect(numRemoved(49, 0.6)).toBe(30);
    expect(numKept(196, 0.75)).toBe(49);
    expect(numKept(4, 0.5)).toBe(2);
    expect(numKept(16, 0)).toBe(16);
    expect(() => numKept(4, 0.8)).toThrow(/no visible patch/);
    expect(() => numKept(4, 1)).toThrow(/\[0, 1\)/);
    expect(() => numKept(4, -0.1)).toThrow(/\[0, 1\)/);
  });

  it('removes exactly L − numKept patches in every image, 0/1 valued', () => {
    for (const [L, ratio] of [[16, 0.6], [49, 0.6], [49, 0.75], [9, 0.3]] as const) {
      const B = 7;
      const m = randomMaskData({ batch: B, numPatches: L, ratio, rng: 42 });
      expect(m.length).toBe(B * L);
      for (let b = 0; b < B; b++) {
        let removed = 0;
        for (let l = 0; l < L; l++) {
          const v = m[b * L + l]!;
          expect(v === 0 || v === 1).toBe(true);
          removed += v;
        }
        expect(removed).toBe(numRemoved(L, ratio));
      }
    }
  });

  it('is reproducible from a seed, differs between seeds and between successive draws of one generator', () => {
    const a = randomMaskData({ batch: 4, numPatches: [4, 4], ratio: 0.6, rng: 7 });
    const b = randomMaskData({ batch: 4, numPatches: [4, 4], ratio: 0.6, rng: 7 });
    const c = randomMaskData({ batch: 4, numPatches: [4, 4], ratio: 0.6, rng: 8 });
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(a)).not.toEqual(Array.from(c));
    const rng = new Rng(3);
    const d1 = randomMaskData({ batch: 2, numPatches: 49, ratio: 0.6, rng });
    const d2 = randomMaskData({ batch: 2, numPatches: 49, ratio: 0.6, rng });
    expect(Array.from(d1)).not.toEqual(Array.from(d2));
  });

  it('removes every patch with probability ≈ ratio (uniform over positions)', () => {
    const L = 16;
    const B = 4000;
    const m = randomMaskData({ batch: B, numPatches: L, ratio: 0.6, rng: 1 });
    const p = numRemoved(L, 0.6) / L; // 10/16
    for (let l = 0; l < L; l++) {
      let s = 0;
      for (let b = 0; b < B; b++) s += m[b * L + l]!;
      // binomial std ≈ sqrt(p(1-p)/B) ≈ 0.0077; 5 sigma
      expect(Math.abs(s / B - p)).toBeLessThan(0.04);
    }
  });

  it('randomMask gives the same data as a [B, L] tensor', async () => {
    const t = randomMask({ batch: 3, numPatches: [2, 3], ratio: 0.5, rng: 9 });
    expect(t.shape).toEqual([3, 6]);
    expect(Array.from(await t.data())).toEqual(Array.from(randomMaskData({ batch: 3, numPatches: 6, ratio: 0.5, rng: 9 })));
    t.dispose();
  });
});

describe('mask upsampling', () => {
  /** Plain definition: out[b, y, x] = mask[b, floor(y/s)·gw + floor(x/s)]. */
  function reference(mask: ArrayLike<number>, B: number, gh: number, gw: number, s: number): number[] {
    const out: number[] = [];
    for (let b = 0; b < B; b++)
      for (let y = 0; y < gh * s; y++) for (let x = 0; x < gw * s; x++) out.push(mask[b * gh * gw + Math.floor(y / s) * gw + Math.floor(x / s)]!);
    return out;
  }

  it('repeat-interleaves every patch over an s×s block (host and tensor forms)', async () => {
    const B = 2;
    const gh = 3;
    const gw = 2;
    const mask = randomMaskData({ batch: B, numPatches: gh * gw, ratio: 0.5, rng: 4 });
    for (const s of [1, 2, 8]) {
      const want = reference(mask, B, gh, gw, s);
      expect(Array.from(upsampleMaskData(mask, B, [gh, gw], s))).toEqual(want);
      const t = tf.tensor2d(mask, [B, gh * gw]);
      const u = upsampleMask(t, s, [gh, gw]);
      expect(u.shape).toEqual([B, gh * s, gw * s]);
      expect(Array.from(await u.data())).toEqual(want);
      t.dispose();
      u.dispose();
    }
  });

  it('gives each stage of a 32-stride encoder its resolution (×8, ×4, ×2, ×1)', () => {
    const mask = randomMaskData({ batch: 2, numPatches: 16, ratio: 0.6, rng: 2 });
    const st = stageMasksData(mask, 2, [4, 4], 4);
    expect(st.map((s) => [s.height, s.width])).toEqual([[32, 32], [16, 16], [8, 8], [4, 4]]);
    st.forEach((s, i) => {
      expect(Array.from(s.data)).toEqual(reference(mask, 2, 4, 4, 2 ** (3 - i)));
    });
  });

  it('rejects wrong mask sizes, scales and non-square L without a grid', () => {
    expect(() => upsampleMaskData(new Float32Array(5), 1, [2, 2], 2)).toThrow(/\[1, 4\]/);
    expect(() => upsampleMaskData(new Float32Array(4), 1, [2, 2], 0)).toThrow(/scale/);
    const t = tf.zeros([1, 6]);
    expect(() => upsampleMask(t, 2)).toThrow(/perfect square/);
    t.dispose();
  });
});

describe('SiteIndex', () => {
  it('numbers visible sites image by image in row-major order, with inverse tables', () => {
    const mask = [0, 1, 0, 0, /* img 1 */ 1, 1, 0, 1];
    const s = SiteIndex.fromMask(mask, 2, 2, 2);
    expect(s.numRows).toBe(4);
    expect(Array.from(s.siteOfRow)).toEqual([0, 2, 3, 6]);
    expect(Array.from(s.rowOfSite)).toEqual([0, -1, 1, 2, -1, -1, 3, -1]);
    expect(Array.from(s.rowStart)).toEqual([0, 3, 4]);
    expect(s.uniformRows).toBe(false);
    expect(Array.from(s.maskData())).toEqual(mask);
    expect(() => SiteIndex.fromMask([0, 0.5, 0, 0], 1, 2, 2)).toThrow(/0 \(visible\) or 1/);
  });

  it('coarsens a patch-aligned mask to the next stage exactly (coarse visible iff all children are)', () => {
    const B = 3;
    const mask = randomMaskData({ batch: B, numPatches: 16, ratio: 0.6, rng: 6 });
    for (let s = 8; s > 1; s /= 2) {
      const fine = SiteIndex.fromPatchMask(mask, B, [4, 4], s);
      const coarse = SiteIndex.fromPatchMask(mask, B, [4, 4], s / 2);
      const c2 = fine.coarsen(2);
      expect(Array.from(c2.siteOfRow)).toEqual(Array.from(coarse.siteOfRow));
      expect(coarse.uniformRows).toBe(true);
      // children: row r of coarse at (b, y, x) → fine rows at (2y+dy, 2x+dx) in (dy, dx) order
      const ch = fine.childRows(coarse);
      const H = coarse.height;
      const W = coarse.width;
      for (let r = 0; r < coarse.numRows; r++) {
        const site = coarse.siteOfRow[r]!;
        const b = Math.floor(site / (H * W));
        const y = Math.floor((site % (H * W)) / W);
        const x = site % W;
        for (let dy = 0; dy < 2; dy++)
          for (let dx = 0; dx < 2; dx++) {
            const fs = (b * fine.height + 2 * y + dy) * fine.width + 2 * x + dx;
            expect(ch[r * 4 + dy * 2 + dx]).toBe(fine.rowOfSite[fs]);
          }
      }
    }
  });

  it('a mixed coarse cell (some children masked) is masked; odd sizes floor', () => {
    // the last row and column are dropped (3 → 1), so their masked sites do not matter
    const s = SiteIndex.fromMask([0, 0, 1, 0, 0, 1, /* row 2 */ 1, 1, 1], 1, 3, 3).coarsen(2);
    expect([s.height, s.width]).toEqual([1, 1]);
    expect(s.numRows).toBe(1);
    const t = SiteIndex.fromMask([0, 0, 0, 1], 1, 2, 2).coarsen(2);
    expect(t.numRows).toBe(0);
  });

  it('neighbour tables match a plain definition (zero row for masked / outside)', () => {
    const B = 2;
    const H = 5;
    const W = 4;
    const rng = new Rng(12);
    const mask = Array.from({ length: B * H * W }, () => (rng.random() < 0.4 ? 1 : 0));
    const s = SiteIndex.fromMask(mask, B, H, W);
    for (const k of [3, 7]) {
      const n = s.neighbours(k);
      const nT = s.neighboursByOffset(k);
      const r = (k - 1) / 2;
      for (let v = 0; v < s.numRows; v++) {
        const site = s.siteOfRow[v]!;
        const b = Math.floor(site / (H * W));
        const y = Math.floor((site % (H * W)) / W);
        const x = site % W;
        for (let ky = 0; ky < k; ky++)
          for (let kx = 0; kx < k; kx++) {
            const yy = y + ky - r;
            const xx = x + kx - r;
            const inside = yy >= 0 && yy < H && xx >= 0 && xx < W;
            const row = inside && mask[(b * H + yy) * W + xx] === 0 ? s.rowOfSite[(b * H + yy) * W + xx]! : s.numRows;
            expect(n[v * k * k + ky * k + kx]).toBe(row);
            expect(nT[(ky * k + kx) * s.numRows + v]).toBe(row);
          }
      }
    }
    expect(() => s.neighbours(4)).toThrow(/odd/);
  });
});
