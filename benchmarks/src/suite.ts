/**
 * The measurements for one backend (a Node worker process, or a Chromium page): the given models' cells, the
 * kernel profiles and the experiments. Runtime-neutral: the caller provides the assets and backend options.
 * A failing cell records its error and the next cells still run.
 */
import * as tf from '@tensorflow/tfjs-core';
import { parseSafetensors, setupBackend, type SetupBackendOptions } from '@softbias/tensor-ops';
import { createBenchModel, type BenchModel } from './models.js';
import { measure, now, profileCall } from './measure.js';
import { runExperiments } from './experiments.js';
import { argmax } from './stats.js';
import type { BackendResult, BackendSpec, Cell, ModelResult, SuiteConfig, Timing } from './types.js';

export interface SuiteEnv {
  /** Bytes of a prepared asset (`<model>.safetensors`, `<model>.input.safetensors`). */
  readAsset(name: string): Promise<Uint8Array>;
  log(line: string): void;
  backendOptions?: SetupBackendOptions;
  environment: Record<string, string | number | boolean>;
  /** Receives the partial result before and after every cell, so a stopped run keeps what it measured. */
  checkpoint?(partial: BackendResult): void;
}

/** Checkpoint the partial result with the model in progress and the cell about to run (null: between cells). */
type Save = (current: ModelResult | null, doing: string | null) => void;

export async function runSuite(env: SuiteEnv, spec: BackendSpec, cfg: SuiteConfig): Promise<BackendResult> {
  const t0 = now();
  const result: BackendResult = {
    spec,
    available: false,
    reason: '',
    mode: cfg.mode,
    correctnessOnly: cfg.correctnessOnly,
    environment: { ...env.environment, tfjs: tf.version_core },
    models: [],
    experiments: [],
    wallMs: 0,
  };
  try {
    const opts: SetupBackendOptions = { ...env.backendOptions };
    if (spec.threads) opts.threads = spec.threads;
    if (spec.backend === 'webgpu') opts.allowFallbackAdapter = true;
    const info = await setupBackend(spec.backend, opts);
    result.available = true;
    result.reason = info.reason;
    if (info.adapter) {
      const a = info.adapter;
      result.environment.adapter = `${a.vendor} ${a.architecture} ${a.description}`.trim() || 'unnamed adapter';
      result.environment.fallbackAdapter = a.isFallbackAdapter;
      // A CPU-emulated adapter is a correctness-only backend whatever the caller assumed.
      if (a.isFallbackAdapter) result.correctnessOnly = cfg.correctnessOnly = true;
    }
    if (info.threads !== undefined) result.environment.threads = info.threads;
  } catch (e) {
    result.reason = (e as Error).message;
    result.wallMs = now() - t0;
    return result;
  }
  env.log(`${spec.id}: ${result.reason}`);
  const save: Save = (current, doing) => {
    const partial: BackendResult = { ...result, models: current ? [...result.models, current] : [...result.models], wallMs: now() - t0 };
    if (doing) partial.running = doing;
    env.checkpoint?.(partial);
  };
  save(null, null);
  if (cfg.runModels) {
    for (const name of cfg.models) {
      result.models.push(await runModel(env, name, cfg, save));
      save(null, null);
    }
  }
  if (cfg.experiments) {
    result.experiments = await runExperiments(env, cfg, (done, doing) => {
      result.experiments = done;
      save(null, doing);
    });
  }
  result.wallMs = now() - t0;
  return result;
}

const SKIP_QUICK = 'correctness-only backend: --full measures it';

function errorText(e: unknown): string {
  const err = e as Error;
  return `${err.name ?? 'Error'}: ${err.message ?? String(e)}`.split('\n')[0]!;
}

async function cell(env: SuiteEnv, what: string, fn: () => Promise<Cell>, r: ModelResult, save: Save): Promise<Cell> {
  env.log(what);
  save(r, what);
  try {
    return await fn();
  } catch (e) {
    env.log(`${what}: ERROR ${errorText(e)}`);
    return { error: errorText(e) };
  } finally {
    save(r, null);
  }
}

async function runModel(env: SuiteEnv, name: string, cfg: SuiteConfig, save: Save): Promise<ModelResult> {
  const r: ModelResult = { model: name, params: 0, inference: {}, train: {}, memory: {}, profiles: [] };
  const tensorsBefore = tf.memory().numTensors;
  let model: BenchModel | undefined;
  const held: tf.Tensor[] = [];
  const slim = cfg.mode === 'quick' && cfg.correctnessOnly;
  try {
    const tLoad = now();
    model = createBenchModel(name);
    await model.loadWeights(await env.readAsset(`${name}.safetensors`));
    r.loadMs = now() - tLoad;
    r.params = model.numParameters();
    const inputs = parseSafetensors(await env.readAsset(`${name}.input.safetensors`));
    const xin = inputs.getFloat32('x');
    const xAll = tf.tensor(xin.data, xin.shape, 'float32');
    held.push(xAll);
    const xByBatch = new Map<number, tf.Tensor>();
    const xFor = (b: number): tf.Tensor => {
      if (b > xAll.shape[0]!) throw new Error(`benchmark input holds ${xAll.shape[0]} images, batch ${b} asked`);
      let x = xByBatch.get(b);
      if (!x) {
        x = b === xAll.shape[0] ? xAll : tf.slice(xAll, 0, b);
        if (x !== xAll) held.push(x);
        xByBatch.set(b, x);
      }
      return x;
    };
    const m = model;
    const forward = async (b: number): Promise<void> => {
      const y = m.forward(xFor(b));
      await y.data();
      y.dispose();
    };

    // The first batch-1 run gives the logits every backend is compared on (and, on a correctness-only backend
    // in quick mode, the only timing).
    env.log(`${name}: first batch-1 forward`);
    save(r, `${name}: first batch-1 forward`);
    const tFirst = now();
    const y1 = m.forward(xFor(1));
    const logits = (await y1.data()) as Float32Array;
    const firstMs = now() - tFirst;
    y1.dispose();
    // 9 significant digits round-trip a float32 exactly.
    r.logits = Array.from(logits, (v) => Number(v.toPrecision(9)));
    r.top1 = argmax(logits);

    for (const b of cfg.batches) {
      const key = `b${b}`;
      if (slim) {
        r.inference[key] =
          b === 1 ? cold(firstMs, 'correctness-only backend: one cold batch-1 run (includes first-call setup)') : { skipped: SKIP_QUICK };
        continue;
      }
      r.inference[key] = await cell(
        env,
        `${name}: inference batch ${b}`,
        () => measure(() => forward(b), { warmups: cfg.warmups, runs: cfg.runs, capMs: cfg.cellCapMs, batch: b }),
        r,
        save,
      );
    }

    if (cfg.profile && !(slim && firstMs > cfg.cellCapMs)) {
      const bMax = Math.max(...cfg.batches);
      for (const b of slim ? [1] : [...new Set([1, bMax])]) {
        const c = await cell(
          env,
          `${name}: profiling a batch-${b} forward`,
          async () => {
            const p = await profileCall(`forward, batch ${b}`, () => forward(b));
            r.profiles.push(p.profile);
            r.memory[`forward b${b}`] = p.memory;
            return { skipped: 'profiled' };
          },
          r,
          save,
        );
        if ('error' in c) r.memory[`forward b${b}`] = { peakBytes: NaN, peakExtraBytes: NaN, peakTensors: NaN, leakedTensors: NaN };
      }
    }

    // Training last: an out-of-memory here (several GiB at batch 8) cannot spoil the cells above.
    for (const b of cfg.trainBatches) {
      const key = `b${b}`;
      if (slim) {
        r.train[key] = { skipped: SKIP_QUICK };
        continue;
      }
      r.train[key] = await cell(
        env,
        `${name}: training step, batch ${b}`,
        () => trainingCell(env, r, m, xFor(b), logits.length, cfg, save),
        r,
        save,
      );
    }
  } catch (e) {
    r.error = errorText(e);
    env.log(`${name}: ERROR ${r.error}`);
  } finally {
    try {
      model?.dispose();
      for (const t of held) t.dispose();
    } catch (e) {
      r.error ??= `dispose failed: ${errorText(e)}`;
    }
    r.leakedTensors = tf.memory().numTensors - tensorsBefore;
  }
  return r;
}

function cold(ms: number, note: string): Timing {
  return { samplesMs: [Math.round(ms * 1000) / 1000], warmups: 0, medianMs: ms, p95Ms: ms, imgPerSec: 1000 / ms, batch: 1, capped: false, note };
}

/**
 * Adam steps on softmax cross-entropy, timed (the first step is a warm-up: it creates the optimizer slots);
 * with `profileTrain`, one more step under tf.profile (kernel times and peak memory).
 */
async function trainingCell(
  env: SuiteEnv,
  r: ModelResult,
  model: BenchModel,
  x: tf.Tensor,
  numClasses: number,
  cfg: SuiteConfig,
  save: Save,
): Promise<Timing> {
  const b = x.shape[0]!;
  const labels = tf.tidy(() =>
    tf.oneHot(
      tf.tensor1d(
        Array.from({ length: b }, (_, i) => (i * 37) % numClasses),
        'int32',
      ),
      numClasses,
    ),
  );
  const opt = tf.train.adam(1e-4);
  const vars = model.trainableParameters().map(([, p]) => p.variable);
  model.train();
  try {
    const step = async (): Promise<void> => {
      const cost = opt.minimize(() => tf.losses.softmaxCrossEntropy(labels, model.forward(x)) as tf.Scalar, true, vars);
      if (!cost) throw new Error('optimizer returned no cost');
      await cost.data();
      cost.dispose();
    };
    const timing = await measure(step, { warmups: 1, runs: Math.max(1, Math.min(cfg.runs, 5)), capMs: cfg.cellCapMs, batch: b });
    if (cfg.profileTrain) {
      env.log(`profiling a training step, batch ${b}`);
      r.train[`b${b}`] = timing;
      save(r, `${r.model}: profiling a training step, batch ${b}`);
      const p = await profileCall(`training step (Adam), batch ${b}`, step);
      r.profiles.push(p.profile);
      r.memory[`train b${b}`] = p.memory;
    }
    return timing;
  } finally {
    model.eval();
    opt.dispose();
    labels.dispose();
  }
}
