/**
 * The machine's 128-bit SIMD ceiling as WebAssembly sees it: the peak kernels of ./module.ts, run on N
 * worker_threads at once (each its own instance; started together behind an Atomics barrier), timed by the
 * shared wall clock from the first start to the last finish. Every variant runs `repeats` times; the best
 * variant's best repeat is the ceiling. Node only.
 */
import { Worker } from 'node:worker_threads';
import { peakKernel, type PeakKernel, type PeakStyle } from './module.js';

export interface PeakVariant {
  style: PeakStyle;
  chains: number;
  /** GFLOP/s of every thread together, best repeat. */
  gflops: number;
}

export interface PeakResult {
  threads: number;
  /** The ceiling: the best variant's GFLOP/s (all threads together). */
  gflops: number;
  perThread: number;
  best: string;
  variants: PeakVariant[];
  /** Seconds each timed run lasted (about). */
  runSeconds: number;
}

export const PEAK_VARIANTS: [PeakStyle, number][] = [
  ['fused', 8],
  ['fused', 12],
  ['split', 8],
  ['split', 12],
];

/** The worker: compile, warm up, wait at the barrier, run `iters` iterations, report start and end (epoch ms). */
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { bytes, iters, warmIters, sab, n } = workerData;
const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), {});
const peak = inst.exports.peak;
peak(warmIters, 1, 0);
const bar = new Int32Array(sab);
Atomics.add(bar, 0, 1);
Atomics.notify(bar, 0);
while (Atomics.load(bar, 1) === 0) Atomics.wait(bar, 1, 0, 50);
const t0 = performance.timeOrigin + performance.now();
const r = peak(iters, 1, 0);
const t1 = performance.timeOrigin + performance.now();
parentPort.postMessage({ t0, t1, r });
`;

async function runOnce(k: PeakKernel, threads: number, iters: number): Promise<number> {
  const sab = new SharedArrayBuffer(8);
  const bar = new Int32Array(sab);
  const warmIters = Math.max(1, Math.floor(iters / 20));
  const workers = Array.from(
    { length: threads },
    () => new Worker(WORKER, { eval: true, workerData: { bytes: k.bytes, iters, warmIters, sab, n: threads } }),
  );
  const done = workers.map(
    (w) =>
      new Promise<{ t0: number; t1: number; r: number }>((ok, fail) => {
        w.once('message', ok);
        w.once('error', fail);
        w.once('exit', (c) => c !== 0 && fail(new Error(`peak probe worker exited with ${c}`)));
      }),
  );
  // Every worker compiled and warmed up: release them together.
  while (Atomics.load(bar, 0) < threads) await new Promise((r) => setTimeout(r, 2));
  Atomics.store(bar, 1, 1);
  Atomics.notify(bar, 1);
  const times = await Promise.all(done);
  await Promise.all(workers.map((w) => w.terminate()));
  const wallMs = Math.max(...times.map((t) => t.t1)) - Math.min(...times.map((t) => t.t0));
  return (threads * iters * k.flopsPerIter) / (wallMs * 1e6);
}

/** GFLOP/s of `threads` threads at once. About 4 variants × `repeats` × `runSeconds` of wall time. */
export async function simdPeak(threads: number, opts: { repeats?: number; runSeconds?: number } = {}): Promise<PeakResult> {
  const repeats = opts.repeats ?? 3;
  const runSeconds = opts.runSeconds ?? 0.25;
  const variants: PeakVariant[] = [];
  for (const [style, chains] of PEAK_VARIANTS) {
    const k = peakKernel(style, chains);
    // Calibrate on one thread: iterations for about runSeconds.
    const probeIters = 200_000;
    const g0 = await runOnce(k, 1, probeIters);
    const iters = Math.max(1000, Math.round((runSeconds * g0 * 1e9) / k.flopsPerIter));
    let best = 0;
    for (let r = 0; r < repeats; r++) best = Math.max(best, await runOnce(k, threads, iters));
    variants.push({ style, chains, gflops: round2(best) });
  }
  const top = variants.reduce((a, b) => (b.gflops > a.gflops ? b : a));
  return {
    threads,
    gflops: top.gflops,
    perThread: round2(top.gflops / threads),
    best: `${top.style} ×${top.chains}`,
    variants,
    runSeconds,
  };
}

const round2 = (x: number): number => Math.round(x * 100) / 100;
