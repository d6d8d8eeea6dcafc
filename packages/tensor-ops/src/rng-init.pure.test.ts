/**
 * Seeded RNG and initialisers: reproducible streams, the distributions they claim (moments against their
 * definitions), state save/restore, timm's trunc_normal_ with absolute bounds, and refusal of impossible bounds.
 */
import * as tf from '@tensorflow/tfjs-core';
import { describe, it, expect } from 'vitest';
import { Rng, truncNormal, normal, uniform, zeros, ones, constant } from '@softbias/tensor-ops';

function moments(xs: ArrayLike<number>): { mean: number; variance: number } {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i]!;
  const mean = s / xs.length;
  let v = 0;
  for (let i = 0; i < xs.length; i++) v += (xs[i]! - mean) ** 2;
  return { mean, variance: v / xs.length };
}

describe('Rng', () => {
  it('the same seed gives the same stream; different seeds differ', () => {
    const a = new Rng(42);
    const b = new Rng(42);
    const c = new Rng(43);
    const sa = Array.from({ length: 100 }, () => a.nextUint32());
    expect(Array.from({ length: 100 }, () => b.nextUint32())).toEqual(sa);
    expect(Array.from({ length: 100 }, () => c.nextUint32())).not.toEqual(sa);
    expect(sa.every((v) => Number.isInteger(v) && v >= 0 && v < 2 ** 32)).toBe(true);
  });

  it('random() is uniform on [0, 1): mean 1/2, variance 1/12, every decile hit', () => {
    const r = new Rng(1);
    const n = 200_000;
    const xs = Float64Array.from({ length: n }, () => r.random());
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    const m = moments(xs);
    expect(Math.abs(m.mean - 0.5)).toBeLessThan(5 * Math.sqrt(1 / 12 / n));
    expect(Math.abs(m.variance - 1 / 12)).toBeLessThan(0.002);
    const bins = new Array(10).fill(0);
    for (const x of xs) bins[Math.floor(x * 10)]++;
    for (const c of bins) expect(Math.abs(c - n / 10)).toBeLessThan(5 * Math.sqrt(n * 0.1 * 0.9));
  });

  it('normal() has mean 0 and variance 1; int(n) covers [0, n)', () => {
    const r = new Rng(2);
    const n = 200_000;
    const m = moments(Float64Array.from({ length: n }, () => r.normal()));
    expect(Math.abs(m.mean)).toBeLessThan(5 / Math.sqrt(n));
    expect(Math.abs(m.variance - 1)).toBeLessThan(0.02);
    const seen = new Set(Array.from({ length: 1000 }, () => r.int(7)));
    expect([...seen].sort()).toEqual([0, 1, 2, 3, 4, 5, 6]);
  });

  it('getState/setState resume the stream exactly (including a cached normal); fork is independent and seeded', () => {
    const r = new Rng(3);
    r.normal(); // leaves a spare normal cached
    const state = r.getState();
    const next = [r.normal(), r.normal(), r.random()];
    const s = new Rng(999);
    s.setState(state);
    expect([s.normal(), s.normal(), s.random()]).toEqual(next);
    expect(() => s.setState([1, 2])).toThrow(/expected 5 numbers/);
    const f1 = new Rng(4).fork();
    const f2 = new Rng(4).fork();
    expect(f1.nextUint32()).toBe(f2.nextUint32());
  });

  it('shuffle is a seeded permutation', () => {
    const a = new Rng(5).shuffle(Array.from({ length: 50 }, (_, i) => i));
    const b = new Rng(5).shuffle(Array.from({ length: 50 }, (_, i) => i));
    expect(a).toEqual(b);
    expect([...a].sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(a).not.toEqual(Array.from({ length: 50 }, (_, i) => i));
  });
});

describe('initialisers', () => {
  it("truncNormal: timm's absolute bounds (default ±2), the truncated std, reproducible", async () => {
    const t = truncNormal([100, 100], new Rng(6), 0.02);
    const xs = (await t.data()) as Float32Array;
    expect(t.shape).toEqual([100, 100]);
    const m = moments(xs);
    expect(Math.abs(m.mean)).toBeLessThan(5 * 0.02 / 100);
    expect(Math.abs(Math.sqrt(m.variance) - 0.02)).toBeLessThan(0.001); // ±2 is 100 std: no visible truncation
    // With std 1 the bounds ±2 cut the tails: variance of N(0,1) truncated to [−2, 2] is 1 − 4φ(2)/(Φ(2) − Φ(−2)).
    const u = (await truncNormal([200_000], new Rng(7), 1).data()) as Float32Array;
    expect(u.every((x) => x >= -2 && x <= 2)).toBe(true);
    const phi2 = Math.exp(-2) / Math.sqrt(2 * Math.PI);
    const mass = 0.9544997361036416; // Φ(2) − Φ(−2)
    expect(Math.abs(moments(u).variance - (1 - (4 * phi2) / mass))).toBeLessThan(0.01);
    const again = (await truncNormal([100, 100], new Rng(6), 0.02).data()) as Float32Array;
    expect(again.every((v, i) => v === xs[i])).toBe(true);
    // Bounds and mean honoured.
    const shifted = (await truncNormal([10_000], new Rng(8), 1, 5, 4, 6).data()) as Float32Array;
    expect(shifted.every((x) => x >= 4 && x <= 6)).toBe(true);
    tf.dispose(t);
  });

  it('truncNormal refuses bounds with (almost) no mass instead of looping', () => {
    expect(() => truncNormal([3], new Rng(0), 0.02, 10)).toThrow(/more than 6 std from the mean/);
    expect(() => truncNormal([3], new Rng(0), 1, 0, 2, 1)).toThrow(/need std > 0 and a < b/);
    expect(() => truncNormal([3], new Rng(0), 0)).toThrow(/need std > 0/);
    expect(() => truncNormal([3], new Rng(0), 1, 0, 0, 1e-300)).toThrow(/holds almost no mass/);
  });

  it('normal, uniform, zeros, ones, constant', async () => {
    const n = (await normal([50_000], new Rng(9), 3, 1).data()) as Float32Array;
    const mn = moments(n);
    expect(Math.abs(mn.mean - 1)).toBeLessThan(0.07);
    expect(Math.abs(Math.sqrt(mn.variance) - 3)).toBeLessThan(0.05);
    const u = (await uniform([50_000], new Rng(10), -0.5, 1.5).data()) as Float32Array;
    expect(u.every((x) => x >= -0.5 && x < 1.5)).toBe(true);
    expect(Math.abs(moments(u).mean - 0.5)).toBeLessThan(0.02);
    expect(Array.from(await zeros([2, 2]).data())).toEqual([0, 0, 0, 0]);
    expect(Array.from(await ones([3]).data())).toEqual([1, 1, 1]);
    expect(Array.from(await constant([2], 2.5).data())).toEqual([2.5, 2.5]);
  });
});
