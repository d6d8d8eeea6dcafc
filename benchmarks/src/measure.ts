/** Timing, memory and kernel-profile primitives (runtime-neutral: Node workers and the browser page). */
import * as tf from '@tensorflow/tfjs-core';
import type { KernelInstance, KernelProfile, KernelStat, MemoryStats, Timing } from './types.js';
import { median, quantile } from './stats.js';

export const now = (): number => (typeof performance !== 'undefined' ? performance.now() : Date.now());

export interface MeasureOptions {
  warmups: number;
  runs: number;
  /** No new repeat starts once this much wall time has passed (warm-ups included); one timed run always happens. */
  capMs: number;
  batch: number;
  note?: string;
}

/** Run `fn` `warmups` times, then time up to `runs` repeats within the cap. `fn` must finish its work (await data). */
export async function measure(fn: () => Promise<void>, o: MeasureOptions): Promise<Timing> {
  const start = now();
  let warm = 0;
  for (; warm < o.warmups; warm++) {
    await fn();
    if (now() - start > o.capMs) {
      warm++;
      break;
    }
  }
  const samples: number[] = [];
  let capped = false;
  while (samples.length < o.runs) {
    if (samples.length > 0 && now() - start > o.capMs) {
      capped = true;
      break;
    }
    const t0 = now();
    await fn();
    samples.push(now() - t0);
  }
  return summarise(samples, warm, capped, o);
}

/** Median, p95 and rate of timed samples; the note says when the cap cut the runs short. */
function summarise(samples: number[], warmups: number, capped: boolean, o: MeasureOptions, prefix?: string): Timing {
  const med = median(samples);
  const t: Timing = {
    samplesMs: samples.map((s) => Math.round(s * 1000) / 1000),
    warmups,
    medianMs: med,
    p95Ms: quantile(samples, 0.95),
    imgPerSec: (o.batch * 1000) / med,
    batch: o.batch,
    capped,
  };
  const cap = capped ? `time cap ${Math.round(o.capMs / 1000)} s: ${samples.length} of ${o.runs} runs` : '';
  const note = o.note ?? [prefix, cap].filter(Boolean).join('; ');
  if (note) t.note = note;
  return t;
}

/**
 * Time two variants interleaved (A B, B A, A B, …: each round swaps which goes first), so drift in the
 * machine (heap growth, clock, other load) falls on both alike. Warm-ups and the cap as in {@link measure}.
 */
export async function measurePair(a: () => Promise<void>, b: () => Promise<void>, o: MeasureOptions): Promise<[Timing, Timing]> {
  const start = now();
  let warm = 0;
  for (; warm < o.warmups; warm++) {
    await a();
    await b();
    if (now() - start > o.capMs) {
      warm++;
      break;
    }
  }
  const sa: number[] = [];
  const sb: number[] = [];
  let capped = false;
  const timed = async (fn: () => Promise<void>, into: number[]) => {
    const t0 = now();
    await fn();
    into.push(now() - t0);
  };
  while (sa.length < o.runs) {
    if (sa.length > 0 && now() - start > o.capMs) {
      capped = true;
      break;
    }
    if (sa.length % 2 === 0) {
      await timed(a, sa);
      await timed(b, sb);
    } else {
      await timed(b, sb);
      await timed(a, sa);
    }
  }
  const prefix = 'interleaved with the other variant';
  return [summarise(sa, warm, capped, o, prefix), summarise(sb, warm, capped, o, prefix)];
}

/**
 * Profile one call with `tf.profile`: per-kernel times (backend timers: wall clock on cpu/wasm, GPU timestamp
 * queries on WebGPU when the adapter has them) and the peak memory / tensor count during the call.
 */
export async function profileCall(
  what: string,
  fn: () => Promise<void> | void,
): Promise<{ profile: KernelProfile; memory: MemoryStats }> {
  const before = tf.memory();
  const t0 = now();
  // tf.profile awaits an async query: the call's own `await data()` is inside the profiled span.
  const info = await tf.profile(async () => {
    await fn();
    return [];
  });
  const wallMs = now() - t0;
  const after = tf.memory();
  const byName = new Map<string, { calls: number; ms: number }>();
  const byShape = new Map<string, KernelInstance>();
  let total = 0;
  let peakTensors = before.numTensors;
  let timerError = '';
  const backendName = tf.getBackend();
  const scopes = new Map<string, { calls: number; ms: number }>();
  for (const k of info.kernels) {
    const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
    peakTensors = Math.max(peakTensors, k.totalTensorsSnapshot);
    // Not a registered kernel: a custom-gradient scope whose time includes the kernels it runs (listed too).
    if (!tf.getKernel(k.name, backendName)) {
      const e = scopes.get(k.name) ?? { calls: 0, ms: 0 };
      e.calls++;
      e.ms += ms;
      scopes.set(k.name, e);
      continue;
    }
    if (typeof k.kernelTimeMs !== 'number') timerError = String((k.kernelTimeMs as { error?: string }).error ?? 'no timer');
    total += ms;
    const e = byName.get(k.name) ?? { calls: 0, ms: 0 };
    e.calls++;
    e.ms += ms;
    byName.set(k.name, e);
    const key = `${k.name} ${JSON.stringify(k.inputShapes)}`;
    const s = byShape.get(key) ?? { name: k.name, ms: 0, calls: 0, inputShapes: k.inputShapes as number[][], outputShapes: k.outputShapes as number[][] };
    s.ms += ms;
    s.calls++;
    const f = flopsOf(k.name, k.inputShapes as number[][], k.outputShapes as number[][]);
    if (f !== undefined) s.flops = (s.flops ?? 0) + f;
    byShape.set(key, s);
  }
  const kernels: KernelStat[] = [...byName]
    .map(([name, e]) => ({ name, calls: e.calls, totalMs: round(e.ms), share: total > 0 ? e.ms / total : 0 }))
    .sort((a, b) => b.totalMs - a.totalMs);
  const top = [...byShape.values()]
    .sort((a, b) => b.ms - a.ms)
    .slice(0, 12)
    .map((s) => ({ ...s, ms: round(s.ms), ...(s.flops !== undefined && s.ms > 0 ? { gflops: round(s.flops / s.ms / 1e6) } : {}) }));
  const timer =
    timerError !== ''
      ? `no kernel timer (${timerError})`
      : backendName === 'webgpu'
        ? 'GPU timestamp queries per shader program (WebGPU); kernels that run on the CPU count 0'
        : 'wall clock around each kernel (synchronous backend)';
  return {
    profile: {
      what,
      wallMs: round(wallMs),
      kernelMs: round(total),
      kernels,
      top,
      timer,
      scopes: [...scopes].map(([name, e]) => ({ name: name || '(unnamed)', calls: e.calls, totalMs: round(e.ms), share: total > 0 ? e.ms / total : 0 })),
    },
    memory: {
      peakBytes: info.peakBytes,
      peakExtraBytes: Math.max(0, info.peakBytes - before.numBytes),
      peakTensors,
      leakedTensors: after.numTensors - before.numTensors,
    },
  };
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

const size = (shape: number[] | null | undefined): number => (shape ? shape.reduce((a, b) => a * b, 1) : 0);

/**
 * Floating-point operations of one call (multiply-add = 2), from the shapes alone, for the kernels whose cost
 * the shapes determine: a (batched) matmul is 2·size(out)·K whatever its transpose flags and batch
 * broadcasting; a depth-wise conv 2·size(out)·kh·kw; a conv 2·size(out)·kh·kw·Cin.
 * (The same count as @softbias/metrics' kernelMacs, ×2.)
 */
export function flopsOf(name: string, inputs: number[][], outputs: number[][]): number | undefined {
  const out = outputs[0];
  if (!out) return undefined;
  if (name === 'BatchMatMul' || name === '_FusedMatMul') {
    // 2·size(out)·K, K = size(A) / (A's batch · M): right when A's batch is broadcast against B's
    // (2·size(A)·N would miss that factor), whatever the transpose flags.
    const a = inputs[0];
    if (!a || a.length < 2 || out.length < 2) return undefined;
    const m = out[out.length - 2]!;
    const batchA = size(a.slice(0, -2));
    return m > 0 && batchA > 0 ? (2 * size(out) * size(a)) / (batchA * m) : undefined;
  }
  const w = inputs[1];
  // softbias' fused linear (wasm): x [M, K], weight [K, N] (+ bias, GELU) → [M, N].
  if (name === 'SoftbiasLinear') return w && w.length === 2 ? 2 * size(out) * w[0]! : undefined;
  if (!w || w.length !== 4) return undefined;
  if (name === 'DepthwiseConv2dNative' || name === 'FusedDepthwiseConv2D') return 2 * size(out) * w[0]! * w[1]!;
  if (name === 'Conv2D' || name === 'FusedConv2D') return 2 * size(out) * w[0]! * w[1]! * w[2]!;
  return undefined;
}
