/** The backend configurations the benchmark knows, in the order it runs them. */
import type { BackendSpec, Mode, SuiteConfig } from './types.js';

export function allBackends(cpus: number): BackendSpec[] {
  const mt = Math.max(2, cpus);
  return [
    { id: 'cpu', label: 'cpu (Node)', runtime: 'node', backend: 'cpu' },
    { id: 'wasm-1t', label: 'wasm 1 thread (Node)', runtime: 'node', backend: 'wasm', threads: 1 },
    { id: 'wasm-mt', label: `wasm ${mt} threads (Node)`, runtime: 'node', backend: 'wasm', threads: mt },
    { id: 'webgpu', label: 'webgpu (Node, Dawn)', runtime: 'node', backend: 'webgpu' },
    { id: 'tensorflow', label: 'tensorflow (Node, libtensorflow)', runtime: 'node', backend: 'tensorflow' },
    { id: 'chromium-webgpu', label: 'webgpu (headless Chromium)', runtime: 'chromium', backend: 'webgpu' },
    { id: 'chromium-wasm-1t', label: 'wasm 1 thread (headless Chromium)', runtime: 'chromium', backend: 'wasm', threads: 1 },
    { id: 'chromium-wasm-mt', label: `wasm ${mt} threads (headless Chromium)`, runtime: 'chromium', backend: 'wasm', threads: mt },
  ];
}

export interface ModeDefaults {
  cellCapMs: number;
  runs: number;
  warmups: number;
  batches: number[];
  trainBatches: number[];
  /** Profile a training step (slow on the CPU backends: --full only by default). */
  profileTrain: boolean;
}

export const MODE_DEFAULTS: Record<Mode, ModeDefaults> = {
  // Enough repeats for a median and a rough p95 on the fast backends; every cell capped.
  // A training step at batch 8 needs several GiB on the CPU backends: quick mode times batch 2 only.
  quick: { cellCapMs: 20_000, runs: 7, warmups: 1, batches: [1, 8], trainBatches: [2], profileTrain: false },
  full: { cellCapMs: 180_000, runs: 20, warmups: 3, batches: [1, 8], trainBatches: [2, 8], profileTrain: true },
};

/** The suite configuration of one backend. cpu is known to be correctness-only; WebGPU is when its adapter is CPU-emulated (decided at setup). */
export function suiteConfig(spec: BackendSpec, mode: Mode, models: string[], d: ModeDefaults, profile: boolean): SuiteConfig {
  const correctnessOnly = spec.backend === 'cpu';
  return {
    mode,
    models,
    cellCapMs: d.cellCapMs,
    runs: d.runs,
    warmups: d.warmups,
    batches: d.batches,
    trainBatches: d.trainBatches,
    runModels: true,
    experiments: true,
    profile,
    profileTrain: profile && d.profileTrain,
    correctnessOnly,
  };
}
