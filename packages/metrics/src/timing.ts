/**
 * Latency and throughput: warm-up calls (not timed), then `runs` timed calls; median and p95.
 * A call that returns tensors is synchronised (its data read back) before the clock stops, then disposed.
 */
import * as tf from '@tensorflow/tfjs-core';

export interface TimingOptions {
  /** Untimed calls first (compilation, caches). Default 3. */
  warmup?: number;
  /** Timed calls. Default 10. */
  runs?: number;
  /** Milliseconds clock. Default `performance.now`. */
  clock?: () => number;
}

export interface TimingResult {
  /** Each timed call, ms, in call order. */
  times: number[];
  median: number;
  /** 95th percentile, nearest rank: the ⌈0.95·n⌉-th smallest. */
  p95: number;
  mean: number;
  min: number;
  max: number;
}

/** Median of values (the mean of the two middle ones for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Nearest-rank percentile: the ⌈p/100 · n⌉-th smallest value (p in (0, 100]). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  if (!(p > 0 && p <= 100)) throw new RangeError(`percentile: p must be in (0, 100], got ${p}`);
  const s = [...values].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil((p / 100) * s.length) - 1)]!;
}

async function settle(r: unknown): Promise<void> {
  const tensors: tf.Tensor[] = [];
  const walk = (v: unknown) => {
    if (v instanceof tf.Tensor) tensors.push(v);
    else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object' && !(ArrayBuffer.isView(v))) Object.values(v).forEach(walk);
  };
  walk(r);
  for (const t of tensors) await t.data();
  tf.dispose(tensors);
}

/** Time `fn`: warm-ups, then timed runs; returns all times with the median and p95. */
export async function measureLatency(fn: () => unknown, opts: TimingOptions = {}): Promise<TimingResult> {
  const warmup = opts.warmup ?? 3;
  const runs = opts.runs ?? 10;
  if (!(Number.isInteger(runs) && runs > 0)) throw new RangeError(`runs must be a positive integer, got ${runs}`);
  const clock = opts.clock ?? (() => performance.now());
  for (let i = 0; i < warmup; i++) await settle(await fn());
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = clock();
    await settle(await fn());
    times.push(clock() - t0);
  }
  return {
    times,
    median: median(times),
    p95: percentile(times, 95),
    mean: times.reduce((a, b) => a + b, 0) / times.length,
    min: Math.min(...times),
    max: Math.max(...times),
  };
}

export interface ThroughputResult extends TimingResult {
  /** Items (images) per second at the median time. */
  itemsPerSecond: number;
  itemsPerCall: number;
}

/** Throughput of `fn` processing `itemsPerCall` items (e.g. the batch size) per call. */
export async function measureThroughput(fn: () => unknown, itemsPerCall: number, opts: TimingOptions = {}): Promise<ThroughputResult> {
  const r = await measureLatency(fn, opts);
  return { ...r, itemsPerCall, itemsPerSecond: (itemsPerCall * 1000) / r.median };
}
