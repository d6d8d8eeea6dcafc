/**
 * `fit()`: the training loop. Per update: next batch → mixup/cutmix (optional) → forward in train mode →
 * cross-entropy (label smoothing) — or your own scalar `loss(model, batch)` (e.g. FCMAE's masked reconstruction
 * loss) — → gradients → clipping (optional) → AdamW at the scheduled lr → EMA
 * (optional). Per epoch: evaluation (optional, eval mode, EMA weights if asked), your `onEpochEnd` fields, a
 * history record. Progress on the terminal, JSON-lines logs, atomic checkpoints every N updates and at epoch
 * ends, resume from a checkpoint bit for bit, stop on an AbortSignal (with a checkpoint).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Module } from '@softbias/tensor-ops';
import { AccuracyMeter } from '@softbias/metrics';
import { AdamW, type AdamWOptions } from './adamw.js';
import { cosineSchedule, type LrSchedule } from './schedule.js';
import { crossEntropy } from './loss.js';
import { clipGradNorm } from './clip.js';
import { Mixup, type MixupOptions } from './mixup.js';
import { ModelEma, type EmaOptions } from './ema.js';
import { CheckpointError, causeMessage, checkpointBytes, checkpointMeta, loadCheckpoint, saveCheckpoint, type CheckpointMeta, type TrainingState } from './checkpoint.js';
import type { FitStorage } from './storage.js';
import { type FitProgress, type ProgressMode, type ProgressOutput, ProgressPrinter, defaultOutput } from './progress.js';
import { parseSafetensors, readBytes } from '@softbias/tensor-ops';

/** A batch: images and int32 labels. */
export interface TrainBatch {
  x: tf.Tensor;
  y: tf.Tensor;
}

/**
 * A resumable batch stream (what `@softbias/data`'s `DataLoader` is): `batches()` yields the rest of the
 * current epoch and advances `position` as it hands out each batch; `nextEpoch()` moves on; the state is JSON.
 */
export interface BatchSource {
  readonly batchesPerEpoch: number;
  readonly epoch: number;
  readonly position: number;
  batches(): AsyncIterable<TrainBatch>;
  nextEpoch(): void;
  getState(): unknown;
  setState(state: any): void;
}

export interface EvaluateResult {
  loss: number;
  top1: number;
  top5: number;
  count: number;
}

export interface EpochRecord {
  epoch: number;
  /** Mean training loss over the epoch's updates. */
  trainLoss: number;
  /** Learning rate of the epoch's last update. */
  lr: number;
  step: number;
  eval?: EvaluateResult;
  /** Fields returned by `onEpochEnd`. */
  [key: string]: unknown;
}

/**
 * A training objective: a scalar tensor computed from the model and a batch, differentiated with respect to the
 * model's parameters. Called in train mode inside the gradient tape (intermediate tensors are freed for you).
 */
export type LossFn = (model: Module, batch: TrainBatch) => tf.Scalar;

export interface FitOptions {
  /** The model; `forward(x)` → logits [B, K] unless `forward` is given (used by the default loss and by `evaluate`). */
  model: Module;
  forward?: (x: tf.Tensor) => tf.Tensor;
  data: BatchSource;
  epochs: number;
  /** Number of classes (the classification loss, mixup). Required unless `loss` is given. */
  numClasses?: number;
  /**
   * Train this scalar loss instead of cross-entropy on `forward(x)` (self-supervised objectives such as FCMAE's
   * masked reconstruction, distillation…). Everything else stays: abort, log, checkpoints, resume, EMA,
   * schedules, clipping, the non-finite check. `mixup` and `labelSmoothing` belong to the classification loss
   * and are refused with it; `evaluate` still measures top-1 / top-5 through `forward`.
   */
  loss?: LossFn;
  /** An AdamW, or its options (default lr 1e-3, weight decay 0.05, no decay for `model.noWeightDecay()`). */
  optimizer?: AdamW | AdamWOptions;
  /** A schedule s ↦ lr, or cosine options (default: cosine from the optimizer's lr to 0, no warm-up). */
  schedule?: LrSchedule | { warmupEpochs?: number; warmupInitLr?: number; minLr?: number };
  labelSmoothing?: number;
  /** Clip the global gradient norm to this value. */
  clipGradNorm?: number;
  /** Mixup / CutMix (its label smoothing defaults to `labelSmoothing`). */
  mixup?: Omit<MixupOptions, 'numClasses'>;
  /** Keep an EMA of the weights. */
  ema?: EmaOptions | boolean;
  /** Seed of fit's own randomness (mixup). Default 0. */
  seed?: number;
  /** Evaluate after epochs (every `every`, and after the last). */
  evaluate?: { data: AsyncIterable<TrainBatch> | (() => AsyncIterable<TrainBatch>); every?: number; useEma?: boolean };
  onProgress?: (p: FitProgress) => void;
  /** Called after each epoch (after evaluation), in eval mode; returned fields go into the history and the log. */
  onEpochEnd?: (info: { epoch: number; record: EpochRecord; model: Module }) => void | Record<string, unknown> | Promise<void | Record<string, unknown>>;
  signal?: AbortSignal;
  /**
   * JSON-lines log: a file path (Node, appended) or a function receiving each record. On a resume into a file
   * log, 'step' and 'epoch' records of updates that the file already holds (done after the checkpoint, before the
   * run stopped, and re-run now) carry `replayed: true`, and the 'resume' record says which steps are replayed.
   */
  log?: string | ((record: Record<string, unknown>) => void);
  /** Log a 'step' record every this many updates (default 1). */
  logEverySteps?: number;
  /** Atomic checkpoints: every `everySteps` updates, every `everyEpochs` epochs (default 1), and on abort. */
  checkpoint?: { path: string; everySteps?: number; everyEpochs?: number };
  /**
   * Resume from a checkpoint: a path, or true for `checkpoint.path` when it exists (only a missing file starts
   * afresh; any other failure to read it is an error).
   */
  resume?: string | boolean;
  /**
   * Where `checkpoint.path`, `resume` and a `log` path live: Node files when absent (atomic writes, the log
   * appended synchronously), or any `FitStorage` — `memoryStorage()`, `indexedDbStorage()` in a browser or a
   * Worker — whose keys are those paths.
   */
  storage?: FitStorage;
  /**
   * Resuming with settings that differ from the checkpoint's (epochs, batches per epoch, optimizer, schedule,
   * label smoothing, clipping, mixup, EMA, seed, the model's parameter names and shapes) is refused, with the
   * differences listed. `true` accepts the change deliberately (a warning lists it; an EMA turned on starts from
   * the resumed weights). Parameters must still match to load.
   */
  allowSettingsChange?: boolean;
  /** Warnings (a deliberate settings change, a checkpoint without stored settings). Default: the progress output, or `console.warn` with progress 'none'. */
  onWarning?: (message: string) => void;
  progress?: ProgressMode;
  output?: ProgressOutput;
}

export interface FitResult {
  status: 'completed' | 'aborted';
  step: number;
  /** Epochs completed. */
  epochs: number;
  history: EpochRecord[];
  optimizer: AdamW;
  ema?: ModelEma;
  /** The step the run resumed from (undefined for a fresh start). */
  resumedFrom?: number;
}

function errorCode(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code ?? (e as { cause?: { code?: unknown } } | null)?.cause?.code;
  return typeof code === 'string' ? code : undefined;
}

/** What a run was configured with, as JSON: stored in checkpoints and compared on resume. */
function runSettings(
  opts: FitOptions,
  optimizer: AdamW,
  baseLr: number,
  perEpoch: number,
  smoothing: number,
  ema: ModelEma | undefined,
): Record<string, unknown> {
  const c = optimizer.config();
  const sched = opts.schedule;
  const settings: Record<string, unknown> = {
    epochs: opts.epochs,
    batchesPerEpoch: perEpoch,
    optimizer: { lr: baseLr, weightDecay: c.weightDecay, betas: c.betas, eps: c.eps },
    schedule:
      typeof sched === 'function' ? 'custom' : { warmupEpochs: sched?.warmupEpochs ?? 0, warmupInitLr: sched?.warmupInitLr ?? 0, minLr: sched?.minLr ?? 0 },
    labelSmoothing: smoothing,
    clipGradNorm: opts.clipGradNorm ?? null,
    mixup: opts.mixup ?? null,
    ema: ema ? { decay: ema.decay, warmup: ema.warmup } : null,
    seed: opts.seed ?? 0,
    parameters: Object.fromEntries(opts.model.namedParameters().map(([n, p]) => [n, p.torchShape])),
  };
  // Only a custom objective adds the key: classification settings (and the checkpoints holding them) are unchanged.
  if (opts.loss) settings['loss'] = 'custom';
  return JSON.parse(JSON.stringify(settings)) as Record<string, unknown>;
}

/** Differences between stored and current settings, one line each ('key: A in the checkpoint, B now'). */
export function settingsDifferences(stored: Record<string, unknown>, now: Record<string, unknown>): string[] {
  const out: string[] = [];
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  const walk = (a: unknown, b: unknown, path: string) => {
    if (isObj(a) && isObj(b)) {
      for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) walk(a[k], b[k], path ? `${path}.${k}` : k);
      return;
    }
    const ja = JSON.stringify(a);
    const jb = JSON.stringify(b);
    if (ja === jb) return;
    if (a === undefined) out.push(`${path}: not in the checkpoint, ${jb} now`);
    else if (b === undefined) out.push(`${path}: ${ja} in the checkpoint, absent now`);
    else out.push(`${path}: ${ja} in the checkpoint, ${jb} now`);
  };
  walk(stored, now, '');
  return out;
}

function listLines(lines: string[], max = 12): string {
  const shown = lines.slice(0, max).map((l) => `  ${l}`);
  if (lines.length > max) shown.push(`  … and ${lines.length - max} more`);
  return shown.join('\n');
}

/**
 * Let the event loop run (timers, signal handlers, an `AbortController` fired from elsewhere). `fit` calls it
 * between updates: on cpu and wasm an update otherwise never gives up the thread, and an abort would be seen
 * only at the epoch's end. Node: `setImmediate`; browsers: a `MessageChannel` message (no 4 ms timer clamp).
 */
export const yieldToEventLoop: () => Promise<void> = (() => {
  if (typeof setImmediate === 'function') return () => new Promise<void>((r) => setImmediate(r));
  if (typeof MessageChannel !== 'undefined') {
    let channel: MessageChannel | undefined;
    const waiting: (() => void)[] = [];
    return () =>
      new Promise<void>((r) => {
        if (!channel) {
          channel = new MessageChannel();
          channel.port1.onmessage = () => waiting.shift()?.();
        }
        waiting.push(r);
        channel.port2.postMessage(0);
      });
  }
  return () => new Promise<void>((r) => setTimeout(r, 0));
})();

/** `fit` stopped: a non-finite loss or gradient (the step is named; nothing from it was applied or saved). */
export class FitError extends Error {
  readonly step: number;
  readonly epoch: number;
  readonly loss: number;
  constructor(message: string, info: { step: number; epoch: number; loss: number }) {
    super(message);
    this.name = 'FitError';
    this.step = info.step;
    this.epoch = info.epoch;
    this.loss = info.loss;
  }
}

/** 0 when every gradient is finite, NaN otherwise (Σ sum(g · 0), chained: WebGPU limits `addN`'s inputs). */
function nonFiniteProbe(grads: ReadonlyMap<string, tf.Tensor>): tf.Scalar {
  return tf.tidy(() => {
    let acc = tf.scalar(0);
    for (const g of grads.values()) acc = tf.add(acc, tf.sum(tf.mul(g, 0)));
    return acc;
  });
}

/**
 * `tf.variableGrads`, and when the objective throws, the tensors the gradient tape saved for the backward pass
 * are freed too (tfjs keeps them on the engine's tape, outside every tidy, until the next gradient call drops
 * the tape without disposing them).
 */
function gradsFreeingTape(f: () => tf.Scalar, vars: tf.Variable[]): { value: tf.Scalar; grads: tf.NamedTensorMap } {
  try {
    return tf.variableGrads(f, vars);
  } catch (e) {
    const state = (tf.engine() as unknown as { state: { gradientDepth: number; activeTape: { saved?: tf.Tensor[] }[] | null } }).state;
    if (state.gradientDepth === 0 && state.activeTape) {
      for (const node of state.activeTape) for (const t of node.saved ?? []) t.dispose();
      state.activeTape = null;
    }
    throw e;
  }
}

const dynamicImport = (name: string): Promise<any> => import(/* @vite-ignore */ /* webpackIgnore: true */ name);

function defaultForward(model: Module): (x: tf.Tensor) => tf.Tensor {
  const f = (model as unknown as { forward?: (x: tf.Tensor) => tf.Tensor }).forward;
  if (typeof f !== 'function') throw new Error('fit: the model has no forward(x) method; pass { forward }');
  return (x) => f.call(model, x);
}

/** Top-1 / top-5 accuracy and mean cross-entropy of a model over batches (eval mode; the mode is restored). */
export async function evaluate(
  model: Module,
  data: AsyncIterable<TrainBatch>,
  opts: { forward?: (x: tf.Tensor) => tf.Tensor; signal?: AbortSignal; dispose?: boolean } = {},
): Promise<EvaluateResult> {
  const forward = opts.forward ?? defaultForward(model);
  const wasTraining = model.training;
  model.eval();
  const meter = new AccuracyMeter([1, 5]);
  let lossSum = 0;
  try {
    for await (const b of data) {
      try {
        if (opts.signal) await yieldToEventLoop();
        if (opts.signal?.aborted) throw new DOMException('evaluation aborted', 'AbortError');
        const logits = forward(b.x);
        const loss = crossEntropy(logits, b.y);
        lossSum += (await loss.data())[0]! * b.x.shape[0]!;
        await meter.update(logits, b.y);
        tf.dispose([logits, loss]);
      } finally {
        if (opts.dispose ?? true) tf.dispose([b.x, b.y]);
      }
    }
  } finally {
    if (wasTraining) model.train();
  }
  const r = meter.result();
  return { loss: lossSum / meter.count, top1: r['top1']!, top5: r['top5']!, count: meter.count };
}

/** What a file log already holds of the current run (the records since its last 'start'). */
interface LoggedSoFar {
  /** Highest step of a 'step' record. */
  maxStep: number;
  /** Epochs with an 'epoch' record. */
  epochs: Set<number>;
}

/** JSON-lines log: each record is appended synchronously (Node), so a killed process loses none it reported. */
class JsonlLog {
  private appendSync: ((path: string, data: string) => void) | undefined;
  private readSync: ((path: string, encoding: 'utf8') => string) | undefined;
  constructor(
    private readonly target: FitOptions['log'],
    private readonly storage?: FitStorage,
  ) {}
  async open(): Promise<void> {
    if (typeof this.target === 'string' && this.storage) {
      const { storage, target } = this;
      this.appendSync = (_path, data) => void storage.append(target, data);
    } else if (typeof this.target === 'string') {
      const fs = await dynamicImport('node:fs');
      this.appendSync = fs.appendFileSync;
      this.readSync = fs.readFileSync;
    }
  }
  /**
   * The steps and epochs the file already logged for this run (records after its last 'start'; a torn last
   * line is skipped). Undefined for a function log or a file that does not exist yet.
   */
  async loggedSoFar(): Promise<LoggedSoFar | undefined> {
    if (typeof this.target !== 'string') return undefined;
    let text: string;
    if (this.storage) {
      await this.storage.flush?.();
      const t = await this.storage.readText(this.target);
      if (t === undefined) return undefined;
      text = t;
    } else {
      if (!this.readSync) return undefined;
      try {
        text = this.readSync(this.target, 'utf8');
      } catch {
        return undefined;
      }
    }
    let seen: LoggedSoFar = { maxStep: 0, epochs: new Set() };
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      let r: { type?: unknown; step?: unknown; epoch?: unknown };
      try {
        r = JSON.parse(line) as typeof r;
      } catch {
        continue;
      }
      if (r.type === 'start') seen = { maxStep: 0, epochs: new Set() };
      else if (r.type === 'step' && typeof r.step === 'number') seen.maxStep = Math.max(seen.maxStep, r.step);
      else if (r.type === 'epoch' && typeof r.epoch === 'number') seen.epochs.add(r.epoch);
    }
    return seen;
  }
  write(record: Record<string, unknown>): void {
    const t = this.target;
    if (!t) return;
    if (typeof t === 'function') t(record);
    else this.appendSync!(t, JSON.stringify(record) + '\n');
  }
  /** Wait for a storage's pending appends. */
  async flush(): Promise<void> {
    if (typeof this.target === 'string') await this.storage?.flush?.();
  }
}

/** Save a checkpoint through a storage (one atomic write), with `saveCheckpoint`'s errors. */
async function saveThrough(storage: FitStorage, path: string, state: TrainingState): Promise<void> {
  const bytes = await checkpointBytes(state);
  try {
    await storage.write(path, bytes);
  } catch (e) {
    throw new CheckpointError(path, `checkpoint ${path}: cannot save: ${causeMessage(e)}`, e);
  }
}

export async function fit(opts: FitOptions): Promise<FitResult> {
  const { model, data, epochs } = opts;
  const custom = opts.loss;
  if (!(Number.isInteger(epochs) && epochs > 0)) throw new RangeError(`fit: epochs must be a positive integer, got ${epochs}`);
  if (custom !== undefined) {
    if (typeof custom !== 'function') throw new TypeError('fit: loss must be a function (model, batch) => scalar tensor');
    if (opts.mixup) throw new RangeError('fit: mixup mixes classification targets and does not apply with a custom loss; remove `mixup` or `loss`');
    if (opts.labelSmoothing) throw new RangeError('fit: labelSmoothing belongs to the classification loss and does not apply with a custom loss; remove `labelSmoothing` or `loss`');
  }
  const numClasses = opts.numClasses;
  if (!custom && !(Number.isInteger(numClasses) && numClasses! > 0)) throw new RangeError(`fit: numClasses must be a positive integer, got ${numClasses}`);
  // The classification loss and `evaluate` need logits; a custom loss alone does not.
  const forward = opts.forward ?? (custom && !opts.evaluate ? undefined : defaultForward(model));
  const perEpoch = data.batchesPerEpoch;
  const totalSteps = epochs * perEpoch;
  const ownsOptimizer = !(opts.optimizer instanceof AdamW);
  const optimizer = opts.optimizer instanceof AdamW ? opts.optimizer : new AdamW(model, { weightDecay: 0.05, ...(opts.optimizer ?? {}) });
  let createdEma: ModelEma | undefined;
  /** Free what fit created when it fails before returning it (any throw from here on). */
  const disposeOwned = () => {
    if (ownsOptimizer) optimizer.dispose();
    createdEma?.dispose();
  };
  try {
    return await run();
  } catch (e) {
    disposeOwned();
    throw e;
  }

  async function run(): Promise<FitResult> {
    const baseLr = optimizer.lr;
    const schedule: LrSchedule =
      typeof opts.schedule === 'function'
        ? opts.schedule
        : cosineSchedule({
            baseLr: optimizer.lr,
            totalSteps,
            warmupSteps: Math.min(totalSteps, Math.round((opts.schedule?.warmupEpochs ?? 0) * perEpoch)),
            warmupInitLr: opts.schedule?.warmupInitLr ?? 0,
            minLr: opts.schedule?.minLr ?? 0,
          });
    const smoothing = opts.labelSmoothing ?? 0;
    const mixup = opts.mixup ? new Mixup({ labelSmoothing: smoothing, ...opts.mixup, numClasses: numClasses!, seed: opts.mixup.seed ?? opts.seed ?? 0 }) : undefined;
    const ema = opts.ema ? new ModelEma(model, opts.ema === true ? {} : opts.ema) : undefined;
    createdEma = ema;
    const storage = opts.storage;
    const log = new JsonlLog(opts.log, storage);
    await log.open();
    const printer = new ProgressPrinter(opts.progress ?? 'auto', opts.output ?? defaultOutput(), perEpoch);
    const ckpt = opts.checkpoint;
    const rngs = mixup ? { mixup: mixup.rng } : undefined;
    const settings = runSettings(opts, optimizer, baseLr, perEpoch, smoothing, ema);
    const warn = (message: string) => {
      log.write({ type: 'warning', message });
      if (opts.onWarning) opts.onWarning(message);
      else if (printer.mode === 'none') console.warn(`fit: ${message}`);
      else printer.message(`warning: ${message}`);
    };

    let step = 0;
    let history: EpochRecord[] = [];
    let epochLossSum = 0;
    let epochLossCount = 0;
    let resumedFrom: number | undefined;

    // Resume.
    const resumePath = typeof opts.resume === 'string' ? opts.resume : opts.resume && ckpt ? ckpt.path : undefined;
    if (resumePath !== undefined) {
      // Only a missing file (with `resume: true`) is a fresh start. Anything else — a directory in its place, an
      // unreadable path, a truncated or corrupted file, bad metadata — stops here: starting over would let the
      // next save overwrite the real checkpoint.
      let bytes: Uint8Array | undefined;
      try {
        bytes = await (storage ? storage.read(resumePath) : readBytes(resumePath));
      } catch (e) {
        if (!(opts.resume === true && errorCode(e) === 'ENOENT')) {
          throw new CheckpointError(resumePath, `fit: cannot resume from ${resumePath}: ${causeMessage(e)}`, e);
        }
      }
      if (bytes) {
        let meta: CheckpointMeta;
        try {
          const file = parseSafetensors(bytes);
          meta = checkpointMeta(file);
          const stored = meta.settings;
          if (stored === undefined) {
            warn(`${resumePath} holds no run settings (written by an older version): resuming without checking that epochs, optimizer, mixup, EMA and the model match`);
          } else {
            const diff = settingsDifferences(stored, settings);
            if (diff.length && !opts.allowSettingsChange) {
              throw new CheckpointError(
                resumePath,
                `fit: cannot resume from ${resumePath}: the run's settings differ from the checkpoint's:\n${listLines(diff)}\n` +
                  `Use the checkpoint's settings, or pass allowSettingsChange: true (softbias train --allow-settings-change) to change them deliberately.`,
              );
            }
            if (diff.length) warn(`resuming ${resumePath} with changed settings:\n${listLines(diff)}`);
          }
          // An EMA turned on deliberately starts from the resumed weights.
          const emaFresh = Boolean(ema && !meta.ema && opts.allowSettingsChange);
          meta = await loadCheckpoint(file, { model, optimizer, ...(ema && !emaFresh ? { ema } : {}), ...(rngs ? { rngs } : {}) });
          if (ema && emaFresh) {
            const vars = new Map(model.namedParameters().map(([n, p]) => [n, p.variable] as const));
            for (const n of [...ema.shadow.keys()]) ema.setShadow(n, tf.keep(tf.clone(vars.get(n)!)));
          }
        } catch (e) {
          if (e instanceof CheckpointError && e.path === resumePath) throw e;
          throw new CheckpointError(resumePath, `fit: cannot resume from ${resumePath}: ${e instanceof CheckpointError ? e.detail : causeMessage(e)}`, e);
        }
        step = meta.step;
        if (meta.sampler !== undefined) data.setState(meta.sampler);
        const extra = (meta.extra ?? {}) as { history?: EpochRecord[]; epochLossSum?: number; epochLossCount?: number; epochs?: number };
        history = extra.history ?? [];
        epochLossSum = extra.epochLossSum ?? 0;
        epochLossCount = extra.epochLossCount ?? 0;
        resumedFrom = step;
      }
    }

    // Steps the file log already holds past the checkpoint (the run went on after it, then stopped without saving):
    // they are re-run now, and their records say so.
    const logged = resumedFrom !== undefined ? await log.loggedSoFar() : undefined;
    const replayUpTo = logged && logged.maxStep > step ? logged.maxStep : undefined;

    const save = async (reason: string) => {
      if (!ckpt) return;
      await (storage ? (p: string, st: TrainingState) => saveThrough(storage, p, st) : saveCheckpoint)(ckpt.path, {
        model,
        optimizer,
        ...(ema ? { ema } : {}),
        ...(rngs ? { rngs } : {}),
        step,
        sampler: data.getState(),
        settings,
        extra: { history, epochLossSum, epochLossCount, epochs },
      });
      log.write({ type: 'checkpoint', step, epoch: data.epoch, position: data.position, reason, path: ckpt.path });
    };

    const t0 = Date.now();
    log.write({
      type: resumedFrom !== undefined ? 'resume' : 'start',
      step,
      ...(replayUpTo !== undefined ? { replaying: { fromStep: step + 1, toStep: replayUpTo } } : {}),
      epoch: data.epoch,
      position: data.position,
      epochs,
      batchesPerEpoch: perEpoch,
      totalSteps,
      optimizer: optimizer.config(),
      ...(custom ? { loss: 'custom' } : {}),
      labelSmoothing: smoothing,
      clipGradNorm: opts.clipGradNorm ?? null,
      mixup: opts.mixup ?? null,
      ema: ema ? { decay: ema.decay, warmup: ema.warmup } : null,
      backend: tf.getBackend(),
      time: new Date().toISOString(),
    });
    if (resumedFrom !== undefined) {
      printer.message(
        data.epoch >= epochs
          ? `resumed from ${resumePath}: the run is already complete (step ${step})`
          : `resumed from ${resumePath} at step ${step} (epoch ${data.epoch + 1}, batch ${data.position})` +
              (replayUpTo !== undefined ? `; steps ${step + 1}–${replayUpTo} were done after that checkpoint and are re-run (marked replayed in the log)` : ''),
      );
    }

    let status: FitResult['status'] = 'completed';
    let failed: unknown;
    let lastLr = schedule(Math.max(0, step - 1));
    const vars = optimizer.variables();
    const logEvery = opts.logEverySteps ?? 1;

    try {
      epochLoop: while (data.epoch < epochs) {
        const epoch = data.epoch;
        model.train();
        const it = data.batches()[Symbol.asyncIterator]();
        try {
          for (;;) {
            await yieldToEventLoop(); // so an abort (a signal handler, a timer) is seen before the next update
            if (opts.signal?.aborted) {
              status = 'aborted';
              break epochLoop;
            }
            const next = await it.next();
            if (next.done) break;
            const batch = next.value;
            const ts = Date.now();
            const lr = schedule(step);
            lastLr = lr;
            optimizer.lr = lr;
            let xIn = batch.x;
            let target = batch.y;
            let mixed: Awaited<ReturnType<Mixup['apply']>> | undefined;
            let normT: tf.Scalar | undefined;
            let value: tf.Scalar | undefined;
            try {
              if (mixup) {
                mixed = await mixup.apply(batch.x as tf.Tensor4D, batch.y);
                xIn = mixed.x;
                target = mixed.targets;
              }
              const objective = custom
                ? () => {
                    const l = custom(model, { x: xIn, y: target });
                    if (!(l instanceof tf.Tensor) || l.rank !== 0) {
                      throw new TypeError(`fit: loss(model, batch) must return a scalar tensor, got ${l instanceof tf.Tensor ? `shape [${l.shape}]` : typeof l}`);
                    }
                    return l as tf.Scalar;
                  }
                : () => crossEntropy(forward!(xIn), target, { labelSmoothing: mixup ? 0 : smoothing });
              const res = gradsFreeingTape(objective, vars);
              value = res.value;
              let grads = optimizer.gradsByName(res.grads);
              if (opts.clipGradNorm !== undefined) {
                const c = clipGradNorm(grads, opts.clipGradNorm);
                tf.dispose([...grads.values()]);
                grads = c.grads;
                normT = c.totalNorm;
              }
              // Check the loss and the gradients before anything changes: a non-finite update is never applied,
              // so the weights, moments, EMA and checkpoints stay those of the last good step.
              const probe = normT ?? nonFiniteProbe(grads);
              let loss: number;
              let probed: number;
              try {
                [loss, probed] = [(await value.data())[0]!, (await probe.data())[0]!];
              } finally {
                if (probe !== normT) probe.dispose();
              }
              if (!Number.isFinite(loss) || !Number.isFinite(probed)) {
                tf.dispose([...grads.values()]);
                const what = !Number.isFinite(loss) ? `the loss is ${loss}` : normT ? `the gradient norm is ${probed}` : 'the gradients hold NaN or Infinity';
                throw new FitError(
                  `fit: ${what} at step ${step + 1} (epoch ${epoch + 1}, batch ${data.position}); training stopped before applying it (weights, optimizer state and checkpoints are those of step ${step}); lower the learning rate, clip gradients or check the data`,
                  { step: step + 1, epoch, loss },
                );
              }
              optimizer.applyGradients(grads, lr);
              tf.dispose([...grads.values()]);
              ema?.update(model);
              step++;
              const gradNorm = normT ? probed : undefined;
              epochLossSum += loss;
              epochLossCount++;
              const ms = Date.now() - ts;
              const p: FitProgress = {
                phase: 'train',
                epoch,
                epochs,
                step,
                totalSteps,
                batch: data.position,
                batchesPerEpoch: perEpoch,
                loss,
                epochLoss: epochLossSum / epochLossCount,
                lr,
                ...(gradNorm !== undefined ? { gradNorm } : {}),
                imagesPerSecond: (batch.x.shape[0]! * 1000) / Math.max(1, ms),
                elapsedMs: Date.now() - t0,
              };
              opts.onProgress?.(p);
              printer.step(p);
              if (step % logEvery === 0) {
                log.write({
                  type: 'step',
                  step,
                  epoch,
                  batch: data.position,
                  loss,
                  lr,
                  ...(gradNorm !== undefined ? { gradNorm } : {}),
                  ms,
                  ...(replayUpTo !== undefined && step <= replayUpTo ? { replayed: true } : {}),
                });
              }
            } finally {
              tf.dispose([batch.x, batch.y]);
              if (mixed) tf.dispose([mixed.x, mixed.targets]);
              if (value) value.dispose();
              if (normT) normT.dispose();
            }
            if (ckpt?.everySteps && step % ckpt.everySteps === 0) await save('steps');
          }
        } finally {
          await it.return?.();
        }

        // Epoch end (also reached on resume at the end of an epoch).
        model.eval();
        const record: EpochRecord = { epoch, trainLoss: epochLossSum / Math.max(1, epochLossCount), lr: lastLr, step };
        const ev = opts.evaluate;
        if (ev && ((epoch + 1) % (ev.every ?? 1) === 0 || epoch + 1 === epochs)) {
          const restore = ev.useEma && ema ? ema.swapInto(model) : undefined;
          try {
            record.eval = await evaluate(model, typeof ev.data === 'function' ? ev.data() : ev.data, { forward: forward!, ...(opts.signal ? { signal: opts.signal } : {}) });
          } catch (e) {
            if (opts.signal?.aborted) {
              status = 'aborted';
              break;
            }
            throw e;
          } finally {
            restore?.();
          }
        }
        if (opts.onEpochEnd) Object.assign(record, (await opts.onEpochEnd({ epoch, record, model })) ?? {});
        history.push(record);
        log.write({ type: 'epoch', ...record, ...(logged?.epochs.has(epoch) ? { replayed: true } : {}), time: new Date().toISOString() });
        printer.message(
          `epoch ${epoch + 1}/${epochs}: train loss ${record.trainLoss.toFixed(4)}` +
            (record.eval ? `, eval loss ${record.eval.loss.toFixed(4)} top-1 ${(100 * record.eval.top1).toFixed(2)}% top-5 ${(100 * record.eval.top5).toFixed(2)}%` : '') +
            ` (step ${step}, lr ${lastLr.toExponential(2)})`,
        );
        epochLossSum = 0;
        epochLossCount = 0;
        data.nextEpoch();
        if (ckpt && (epoch + 1) % (ckpt.everyEpochs ?? 1) === 0) await save('epoch');
      }
      if (status === 'aborted') {
        await save('abort');
        printer.message(`stopped at step ${step} (aborted)${ckpt ? `; checkpoint ${ckpt.path}` : ''}`);
      }
    } catch (e) {
      failed = e; // fit's outer catch frees the optimizer and EMA it created (they are not returned)
      throw e;
    } finally {
      model.eval();
      log.write({
        type: 'end',
        status: failed === undefined ? status : 'error',
        step,
        ...(failed !== undefined ? { error: failed instanceof Error ? failed.message : String(failed) } : {}),
        time: new Date().toISOString(),
      });
      // A storage's queued log appends are stored before fit returns (their error, unless fit already failed).
      await log.flush().catch((e: unknown) => {
        if (failed === undefined) throw e;
      });
    }
    return { status, step, epochs: history.length, history, optimizer, ...(ema ? { ema } : {}), ...(resumedFrom !== undefined ? { resumedFrom } : {}) };
  }
}
