import { describe, it, expect } from 'vitest';
import { measureLatency, measureThroughput, median, percentile } from '@softbias/metrics';

describe('latency and throughput', () => {
  it('warm-ups are not timed; median and nearest-rank p95 of the timed runs', async () => {
    // A fake clock: call i takes durations[i] ms.
    const durations = [100, 90, 80, 5, 9, 7, 3, 8, 6, 4, 10, 2, 1, 50, 11, 12, 13, 14, 15, 16, 17, 18, 19];
    let now = 0;
    let call = 0;
    const fn = () => {
      now += durations[call++]!;
    };
    const r = await measureLatency(fn, { warmup: 3, runs: 20, clock: () => now });
    const timed = durations.slice(3);
    expect(call).toBe(23);
    expect(r.times).toEqual(timed);
    const sorted = [...timed].sort((a, b) => a - b);
    expect(r.median).toBe((sorted[9]! + sorted[10]!) / 2);
    expect(r.p95).toBe(sorted[Math.ceil(0.95 * 20) - 1]!); // 19th smallest of 20
    expect(r.min).toBe(1);
    expect(r.max).toBe(50);
    expect(r.mean).toBeCloseTo(timed.reduce((a, b) => a + b, 0) / 20, 12);
    now = 0;
    call = 3;
    const t = await measureThroughput(fn, 8, { warmup: 0, runs: 5, clock: () => now });
    expect(t.times).toEqual([5, 9, 7, 3, 8]);
    expect(t.itemsPerSecond).toBeCloseTo((8 * 1000) / 7, 10);
  });

  it('definitions', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 95)).toBe(10);
    expect(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 50)).toBe(5);
    expect(percentile([7], 95)).toBe(7);
    expect(() => percentile([1], 0)).toThrow(/p must be in/);
  });
});
