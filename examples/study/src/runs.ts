/**
 * Executing one planned run, resumably: each run owns `<out>/runs/<id>/` (checkpoint, JSON-lines log, and
 * `result.json` once finished). A finished run is never repeated; an interrupted one resumes from its last
 * epoch checkpoint (fit's bit-exact resume, for the classifiers and for FCMAE pre-training through `fit({ loss })`).
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DataLoader, subset, subsamplePerClass, type ImageDataset } from '@softbias/data';
import { fit } from '@softbias/train';
import '@softbias/models-convnextv2'; // registers ConvNeXt V2 into the one model registry
import { createFcmae } from '@softbias/models-convnextv2/fcmae';
import { models, type VisionModel } from '@softbias/tensor-ops/models';
import { runExperiment, type EpochPoint } from '@softbias/experiments';
import type { StudyRun } from './plan.js';

export interface RunResult {
  id: string;
  kind: StudyRun['kind'];
  label: string;
  fraction: number;
  epochs: number;
  trainSamples: number;
  parameters: number;
  /** Test top-1 after the last epoch (NaN for pre-training). */
  finalTop1: number;
  /** Epoch points (epoch 0 = initialisation for ConViT runs). */
  history: EpochPoint[];
  /** FCMAE: mean masked-patch loss per epoch. */
  losses?: number[];
  /** Wall-clock seconds of this run (summed over resumed sessions). */
  seconds: number;
  /** How many times the run was resumed from a checkpoint. */
  resumes: number;
}

export interface RunContext {
  train: ImageDataset;
  test: ImageDataset;
  mean: readonly number[];
  std: readonly number[];
  dir: string;
  seed: number;
  batchSize: number;
  lr: number;
  progress: 'bar' | 'lines' | 'none';
  log: (line: string) => void;
  signal?: AbortSignal;
  /** Finished FCMAE runs: id → encoder weights (a ConvNeXt V2 classifier checkpoint). */
  encoders?: Record<string, string>;
}

export const runDir = (out: string, id: string) => join(out, 'runs', id);
export const resultPath = (out: string, id: string) => join(runDir(out, id), 'result.json');

/** What a run's result repeats from its plan entry. The time fields are set by executeRun. */
function describe(run: StudyRun): Pick<RunResult, 'id' | 'kind' | 'label' | 'fraction' | 'epochs' | 'seconds' | 'resumes'> {
  return { id: run.id, kind: run.kind, label: run.label, fraction: run.fraction, epochs: run.epochs, seconds: 0, resumes: 0 };
}

export function readResult(out: string, id: string): RunResult | undefined {
  const p = resultPath(out, id);
  if (!existsSync(p)) return undefined;
  return JSON.parse(readFileSync(p, 'utf8'), (_k, v) => (v === 'NaN' ? NaN : v)) as RunResult;
}

function writeAtomic(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

const json = (v: unknown) => JSON.stringify(v, (_k, x) => (typeof x === 'number' && Number.isNaN(x) ? 'NaN' : x), 2);

/** Seconds already spent on a run in earlier (interrupted) sessions, and how often it was resumed. */
function priorTime(dir: string): { seconds: number; resumes: number } {
  const p = join(dir, 'time.json');
  return existsSync(p) ? (JSON.parse(readFileSync(p, 'utf8')) as { seconds: number; resumes: number }) : { seconds: 0, resumes: -1 };
}

export async function executeRun(run: StudyRun, ctx: RunContext): Promise<RunResult> {
  mkdirSync(ctx.dir, { recursive: true });
  const prior = priorTime(ctx.dir);
  const resumes = prior.resumes + 1;
  const t0 = performance.now();
  // Time spent so far is recorded at every epoch, so a killed run still accounts for its work when resumed.
  const tick = () => writeAtomic(join(ctx.dir, 'time.json'), JSON.stringify({ seconds: prior.seconds + (performance.now() - t0) / 1000, resumes }));
  tick();
  let result: RunResult;
  if (run.kind === 'convit') result = await convitRun(run, ctx, tick);
  else if (run.kind === 'fcmae-pretrain') result = await fcmaeRun(run, ctx, tick);
  else result = await convnextRun(run, ctx, tick);
  result.seconds = prior.seconds + (performance.now() - t0) / 1000;
  result.resumes = resumes;
  writeAtomic(join(ctx.dir, 'result.json'), json(result));
  return result;
}

async function convitRun(run: StudyRun, ctx: RunContext, tick: () => void): Promise<RunResult> {
  const r = await runExperiment(
    {
      label: run.label,
      model: run.model,
      overrides: run.overrides,
      fraction: run.fraction,
      epochs: run.epochs,
      batchSize: ctx.batchSize,
      lr: ctx.lr,
      weightDecay: 0.05,
      warmupEpochs: run.warmupEpochs,
      labelSmoothing: 0.1,
      seed: ctx.seed,
      mean: ctx.mean,
      std: ctx.std,
      imgSize: run.imgSize,
      evalEvery: run.evalEvery,
      dropLast: run.dropLast,
    },
    {
      train: ctx.train,
      test: ctx.test,
      checkpoint: join(ctx.dir, 'checkpoint.safetensors'),
      log: join(ctx.dir, 'log.jsonl'),
      progress: ctx.progress,
      ...(ctx.signal ? { signal: ctx.signal } : {}),
      onProgress: (p) => {
        if (p.phase === 'train' && p.batch === p.batchesPerEpoch) tick();
      },
      onEpoch: (p) => ctx.log(`  ${run.id} epoch ${p.epoch}/${run.epochs}: loss ${p.trainLoss.toFixed(3)}, test top-1 ${(100 * p.top1).toFixed(1)}%`),
    },
  );
  if (r.status === 'aborted') throw new Error(`${run.id}: aborted (its checkpoint is kept; run the study again to resume)`);
  return {
    ...describe(run),
    trainSamples: r.trainSamples,
    parameters: r.parameters,
    finalTop1: r.finalTop1,
    history: r.history,
  };
}

/**
 * FCMAE pre-training on every training image (labels unused) through `fit({ loss })`: the masked-patch loss,
 * checkpointed at each epoch, resumed bit for bit, logged and aborted like the classifier runs.
 */
async function fcmaeRun(run: StudyRun, ctx: RunContext, tick: () => void): Promise<RunResult> {
  const fcmae = createFcmae({
    imgSize: run.imgSize,
    inChans: ctx.train.imageShape[2],
    depths: run.depths!,
    dims: run.dims!,
    decoderDepth: 1,
    decoderEmbedDim: 128,
    maskRatio: 0.6,
    normPixLoss: true,
    // std-0.02 initialisation, as the from-scratch ConvNeXt V2 gets: the comparison isolates pre-training (the
    // official FCMAE init draws several weights with std 1, which a short pre-training does not recover from).
    init: 'timm',
    seed: ctx.seed,
  });
  try {
    const loader = new DataLoader(ctx.train, {
      batchSize: ctx.batchSize,
      seed: ctx.seed,
      mean: ctx.mean,
      std: ctx.std,
      outputSize: run.imgSize,
      dropLast: true, // FCMAE: every image of the epoch, shuffled; a remainder batch would only add noise
      augment: { crop: { kind: 'random-resized-crop', scale: [0.5, 1] }, hflip: true },
    });
    const result = await fit({
      model: fcmae,
      data: loader,
      epochs: run.epochs,
      // The mean loss over the removed patches; masks come from the model's seeded generator (checkpointed).
      loss: (_model, b) => fcmae.computeLoss(b.x),
      optimizer: { lr: ctx.lr, weightDecay: 0.05 },
      schedule: { warmupEpochs: run.warmupEpochs, minLr: ctx.lr * 0.01 },
      clipGradNorm: 5,
      seed: ctx.seed,
      checkpoint: { path: join(ctx.dir, 'checkpoint.safetensors'), everyEpochs: 1 },
      resume: true,
      log: join(ctx.dir, 'log.jsonl'),
      progress: ctx.progress,
      ...(ctx.signal ? { signal: ctx.signal } : {}),
      onEpochEnd: ({ epoch, record }) => {
        tick();
        ctx.log(`  ${run.id} epoch ${epoch + 1}/${run.epochs}: masked-patch loss ${record.trainLoss.toFixed(4)}`);
      },
    });
    result.optimizer.dispose();
    if (result.status === 'aborted') throw new Error(`${run.id}: aborted (its checkpoint is kept; run the study again to resume)`);
    const losses = result.history.map((r) => r.trainLoss);
    const classifier = fcmae.encoderToClassifier(ctx.train.numClasses, { seed: ctx.seed, dropPathRate: 0.05 });
    try {
      await classifier.saveWeights(join(ctx.dir, 'encoder.safetensors'));
    } finally {
      classifier.dispose();
    }
    return {
      ...describe(run),
      trainSamples: ctx.train.length,
      parameters: fcmae.numParameters(),
      finalTop1: NaN,
      history: [],
      losses,
    };
  } finally {
    fcmae.dispose();
  }
}

/** ConvNeXt V2 micro fine-tuned on fraction f of the labels, from scratch or from the FCMAE encoder. */
async function convnextRun(run: StudyRun, ctx: RunContext, tick: () => void): Promise<RunResult> {
  const picked = subsamplePerClass(ctx.train.labels, { fraction: run.fraction, seed: ctx.seed, numClasses: ctx.train.numClasses });
  const train = subset(ctx.train, picked);
  let model: VisionModel;
  if (run.initFrom) {
    const path = ctx.encoders?.[run.initFrom];
    if (!path || !existsSync(path)) throw new Error(`${run.id}: needs the encoder of run '${run.initFrom}', which has not finished`);
    model = await models.fromFile(path, { seed: ctx.seed });
  } else {
    model = models.create('convnextv2_atto', {
      depths: run.depths!,
      dims: run.dims!,
      inChans: ctx.train.imageShape[2],
      numClasses: ctx.train.numClasses,
      dropPathRate: 0.05,
      seed: ctx.seed,
    });
  }
  try {
    const size = { outputSize: run.imgSize };
    const loader = new DataLoader(train, {
      batchSize: ctx.batchSize,
      dropLast: run.dropLast && train.length >= ctx.batchSize,
      seed: ctx.seed,
      mean: ctx.mean,
      std: ctx.std,
      augment: { crop: { kind: 'random-resized-crop', scale: [0.5, 1] }, hflip: true },
      ...size,
    });
    const history: EpochPoint[] = [];
    const result = await fit({
      model,
      data: loader,
      epochs: run.epochs,
      numClasses: ctx.train.numClasses,
      optimizer: { lr: ctx.lr, weightDecay: 0.05 },
      schedule: { warmupEpochs: run.warmupEpochs, minLr: ctx.lr * 0.01 },
      labelSmoothing: 0.1,
      clipGradNorm: 5,
      seed: ctx.seed,
      evaluate: { data: () => new DataLoader(ctx.test, { batchSize: 250, shuffle: false, mean: ctx.mean, std: ctx.std, ...size }).batches(), every: run.evalEvery },
      checkpoint: { path: join(ctx.dir, 'checkpoint.safetensors'), everyEpochs: 1 },
      resume: true,
      log: join(ctx.dir, 'log.jsonl'),
      progress: ctx.progress,
      ...(ctx.signal ? { signal: ctx.signal } : {}),
      onEpochEnd: ({ epoch, record }) => {
        tick();
        if (record.eval) ctx.log(`  ${run.id} epoch ${epoch + 1}/${run.epochs}: loss ${record.trainLoss.toFixed(3)}, test top-1 ${(100 * record.eval.top1).toFixed(1)}%`);
      },
    });
    result.optimizer.dispose();
    if (result.status === 'aborted') throw new Error(`${run.id}: aborted (its checkpoint is kept; run the study again to resume)`);
    for (const r of result.history) {
      history.push({ epoch: r.epoch + 1, trainLoss: r.trainLoss, top1: r.eval?.top1 ?? NaN, gates: [], nonlocality: [], seconds: NaN });
    }
    return {
      ...describe(run),
      trainSamples: train.length,
      parameters: model.numParameters(),
      finalTop1: history.at(-1)?.top1 ?? NaN,
      history,
    };
  } finally {
    model.dispose();
  }
}
