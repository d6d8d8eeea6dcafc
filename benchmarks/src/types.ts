/** Shapes of the benchmark's configuration and results (shared by the Node workers and the browser page). */

export type Mode = 'quick' | 'full';
export type Runtime = 'node' | 'chromium';
export type TfBackend = 'cpu' | 'wasm' | 'webgpu' | 'tensorflow';

/** One backend configuration to measure. */
export interface BackendSpec {
  /** Stable id, e.g. `wasm-1t`, `webgpu-chromium`. */
  id: string;
  label: string;
  runtime: Runtime;
  backend: TfBackend;
  threads?: number;
}

export interface SuiteConfig {
  mode: Mode;
  /** Model names to run (convit_tiny, convit_tiny_deit, convnextv2_atto). */
  models: string[];
  /** Wall-clock cap of one measured cell (ms): after it no further repeat starts. */
  cellCapMs: number;
  /** Timed repeats wanted per cell (fast backends), after the warm-ups. */
  runs: number;
  warmups: number;
  /** Batch sizes for throughput. */
  batches: number[];
  /** Batches of the training step. */
  trainBatches: number[];
  /** Run the models' cells (a worker runs one model, or only the experiments). */
  runModels: boolean;
  /** Run the FCMAE sparse-vs-dense and GPSA-cache experiments on this backend. */
  experiments: boolean;
  /** Profile kernels of a forward (batch 1 and the largest batch) on this backend. */
  profile: boolean;
  /** Profile a training step too. */
  profileTrain: boolean;
  /** Known to be a correctness-only backend (cpu, CPU-emulated WebGPU): quick mode does one batch-1 run. */
  correctnessOnly: boolean;
}

export interface Timing {
  /** Every timed repeat, ms, in order. */
  samplesMs: number[];
  warmups: number;
  medianMs: number;
  p95Ms: number;
  /** Images per second at the median. */
  imgPerSec: number;
  batch: number;
  /** True when the time cap stopped the repeats before `runs`. */
  capped: boolean;
  /** Why this cell holds fewer numbers than a normal one (e.g. 'correctness-only: 1 cold run'). */
  note?: string;
}

/** A measured cell, or why it holds no numbers. */
export type Cell = Timing | { skipped: string } | { error: string };

export interface MemoryStats {
  /** Peak bytes held by tfjs tensors during the call (absolute, weights included). */
  peakBytes: number;
  /** Peak bytes above what was held before the call (activations, gradients, optimizer slots). */
  peakExtraBytes: number;
  /** Most tensors alive at once during the call. */
  peakTensors: number;
  /** Tensors left behind by the call (should be 0; an optimizer's first step creates its slots). */
  leakedTensors: number;
}

export interface KernelStat {
  name: string;
  calls: number;
  totalMs: number;
  /** Share of the summed kernel time. */
  share: number;
}

export interface KernelInstance {
  name: string;
  /** Calls with these input shapes, and their summed time. */
  calls: number;
  ms: number;
  /** Floating-point operations of these calls (matmuls and convolutions), and the rate they ran at. */
  flops?: number;
  gflops?: number;
  inputShapes: number[][];
  outputShapes: number[][];
}

export interface KernelProfile {
  what: string;
  /** Wall time of the profiled call (profiling adds a sync per kernel). */
  wallMs: number;
  /** Sum of the kernel times. */
  kernelMs: number;
  kernels: KernelStat[];
  /** The slowest single kernel calls, with shapes. */
  top: KernelInstance[];
  /** How the kernel times were taken. */
  timer: string;
  /** Custom-gradient scopes (not kernels): their time includes kernels listed above, so it is not in the sum. */
  scopes: KernelStat[];
}

export interface ModelResult {
  model: string;
  params: number;
  /** Error text when the model could not run on this backend. */
  error?: string;
  /** Time to build the model and load the weights (ms). */
  loadMs?: number;
  /** Batch-1 logits of image 0 (for agreement with cpu), and their top-1. */
  logits?: number[];
  top1?: number;
  /** `b1`, `b8`: eval forward. */
  inference: Record<string, Cell>;
  /** `b2`, `b8`: one optimizer step. */
  train: Record<string, Cell>;
  memory: Record<string, MemoryStats>;
  profiles: KernelProfile[];
  /** Tensors alive after everything for this model was disposed, minus before. */
  leakedTensors?: number;
}

export interface ExperimentResult {
  name: string;
  description: string;
  rows: { label: string; timing?: Timing; value?: number; note?: string }[];
  /** Max |a−b| between the variants' outputs where they should agree. */
  maxAbsDiff?: number;
  error?: string;
}

export interface BackendResult {
  spec: BackendSpec;
  available: boolean;
  /** Why it is absent, or how setupBackend described it. */
  reason: string;
  mode: Mode;
  correctnessOnly: boolean;
  environment: Record<string, string | number | boolean>;
  models: ModelResult[];
  experiments: ExperimentResult[];
  wallMs: number;
  /** In a partial result (checkpoint): the cell that was running. */
  running?: string;
  /** Set by the runner when the worker or page was stopped before it finished (time limit, crash). */
  stopped?: string;
}
