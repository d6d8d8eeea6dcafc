/**
 * One ConViT-family training run on an image dataset, recording what the ConViT paper plots per epoch:
 * test accuracy, each GPSA layer's gate sigmoid(λ) (mean over heads) and each layer's nonlocality
 * (mean over heads, measured on a fixed probe batch with the paper's protocol: patch embeddings fed to
 * every layer's attention).
 */
import * as tf from '@tensorflow/tfjs-core';
import { DataLoader, type AugmentOptions, type ImageDataset, subset, subsamplePerClass, trainingAugment } from '@softbias/data';
import { fit, type FitProgress, type EpochRecord } from '@softbias/train';
import { createModel, type ConViT, type ConvitOverrides } from '@softbias/models-convit';
import type { TrainSettings } from './settings.js';

/**
 * One run: the shared train settings (`model` is a registered ConViT-family name, e.g. convit_tiny or
 * convit_tiny_deit, with ConViT overrides) plus what the runner needs besides.
 */
export interface ExperimentSpec extends TrainSettings<ConvitOverrides> {
  /** Label in tables and charts. */
  label: string;
  mean: readonly number[];
  std: readonly number[];
  /** Resize images to this square size before the model (default: the data's own size). */
  imgSize?: number;
  /**
   * Training augmentation. Default: pad-and-crop (2 pixels) + flip at the data's own size; a random resized crop
   * (scale [0.5, 1]) + flip when `imgSize` resizes (pad-and-crop keeps the size).
   */
  augment?: AugmentOptions;
  /**
   * Evaluate (test top-1, gates, nonlocality) every this many epochs and after the last (default 1). Epochs in
   * between carry NaN top-1 and empty gate / nonlocality lists.
   */
  evalEvery?: number;
  /**
   * Drop each epoch's last, incomplete training batch (timm's `drop_last=True`; the dropped images change every
   * epoch with the shuffle). Default false. A tiny remainder batch (e.g. 4 of 900 images) is a noisy step that
   * AdamW takes at full size every epoch.
   */
  dropLast?: boolean;
}

export interface EpochPoint {
  epoch: number;
  trainLoss: number;
  /** Test top-1 after the epoch (NaN at epoch 0, before training). */
  top1: number;
  /** Per layer: mean gate over heads (null for non-GPSA layers). */
  gates: (number | null)[];
  /** Per layer: mean nonlocality over heads (null where the layer has no attention map). */
  nonlocality: (number | null)[];
  /** Per layer, per head: gate σ(λ_h) (null for non-GPSA layers). Absent where not evaluated. */
  gatesPerHead?: (number[] | null)[];
  /** Per layer, per head: nonlocality (null where the layer has no attention map). Absent where not evaluated. */
  nonlocalityPerHead?: (number[] | null)[];
  seconds: number;
}

export interface ExperimentResult {
  spec: ExperimentSpec;
  trainSamples: number;
  parameters: number;
  history: EpochPoint[];
  finalTop1: number;
  seconds: number;
  status: 'completed' | 'aborted';
}

export interface ExperimentIo {
  train: ImageDataset;
  test: ImageDataset;
  /** Checkpoint file (resumable runs). */
  checkpoint?: string;
  /** JSON-lines log file. */
  log?: string;
  signal?: AbortSignal;
  onProgress?: (p: FitProgress) => void;
  onEpoch?: (p: EpochPoint) => void;
  /** Probe batch size for nonlocality (first images of the test set). Default 64. */
  probeSize?: number;
  progress?: 'bar' | 'lines' | 'none';
  /**
   * Called once with the trained model when the run completed (not when aborted), before the runner frees it:
   * save it here (`model.saveWeights`). The model is the runner's: do not dispose it.
   */
  onTrained?: (model: ConViT) => void | Promise<void>;
}

const perHead = (a: Float32Array | null): number[] | null => (a ? Array.from(a) : null);

/** Gates and nonlocality of the model now: per layer (mean over heads) and per head. */
async function measure(model: ConViT, probe: tf.Tensor4D) {
  const g = await model.gates();
  const n = await model.nonlocality(probe, { input: 'patch-embedding' });
  return { gates: g.map(meanOrNull), nonlocality: n.map(meanOrNull), gatesPerHead: g.map(perHead), nonlocalityPerHead: n.map(perHead) };
}

function meanOrNull(a: Float32Array | null): number | null {
  if (!a) return null;
  let s = 0;
  for (const v of a) s += v;
  return s / a.length;
}

/** The first n images of a dataset, normalised, as a [n, H, W, C] tensor. */
export async function probeBatch(
  ds: ImageDataset,
  n: number,
  mean: readonly number[],
  std: readonly number[],
  outputSize?: number,
): Promise<tf.Tensor4D> {
  const loader = new DataLoader(subset(ds, Int32Array.from({ length: Math.min(n, ds.length) }, (_, i) => i)), {
    batchSize: Math.min(n, ds.length),
    shuffle: false,
    mean,
    std,
    ...(outputSize ? { outputSize } : {}),
  });
  for await (const b of loader.batches()) {
    b.y.dispose();
    return b.x;
  }
  throw new Error('probeBatch: empty dataset');
}

export async function runExperiment(spec: ExperimentSpec, io: ExperimentIo): Promise<ExperimentResult> {
  const started = performance.now();
  const picked = subsamplePerClass(io.train.labels, { fraction: spec.fraction, seed: spec.seed, numClasses: io.train.numClasses });
  const train = subset(io.train, picked);
  const size = spec.imgSize ? { outputSize: spec.imgSize } : {};
  const every = spec.evalEvery ?? 1;
  if (!Number.isInteger(every) || every < 1) throw new RangeError(`evalEvery must be a positive integer, got ${every}`);
  const due = (epoch: number) => (epoch + 1) % every === 0 || epoch + 1 === spec.epochs;
  const history: EpochPoint[] = [];
  const epochSeconds = new Map<number, number>();
  const model: ConViT = createModel(spec.model, { ...spec.overrides, seed: spec.seed });
  let probe: tf.Tensor4D | undefined;
  try {
    probe = await probeBatch(io.test, io.probeSize ?? 64, spec.mean, spec.std, spec.imgSize);
    const probeX = probe;
    const loader = new DataLoader(train, {
      batchSize: spec.batchSize,
      dropLast: (spec.dropLast ?? false) && train.length >= spec.batchSize,
      seed: spec.seed,
      mean: spec.mean,
      std: spec.std,
      augment:
        spec.augment ??
        trainingAugment([io.train.imageShape[0], io.train.imageShape[1]], spec.imgSize ? [spec.imgSize, spec.imgSize] : undefined),
      ...size,
    });
    const evalData = () => new DataLoader(io.test, { batchSize: 250, shuffle: false, mean: spec.mean, std: spec.std, ...size }).batches();
    // Epoch 0: the initialisation (gates σ(1) ≈ 0.73; GPSA heads local, plain attention near uniform).
    const initial: EpochPoint = { epoch: 0, trainLoss: NaN, top1: NaN, ...(await measure(model, probeX)), seconds: 0 };
    history.push(initial);
    let epochStart = performance.now();
    const result = await fit({
      model,
      data: loader,
      epochs: spec.epochs,
      numClasses: model.numClasses,
      optimizer: { lr: spec.lr, weightDecay: spec.weightDecay },
      schedule: { warmupEpochs: spec.warmupEpochs, minLr: spec.lr * 0.01 },
      labelSmoothing: spec.labelSmoothing,
      clipGradNorm: 5,
      seed: spec.seed,
      evaluate: { data: evalData, every },
      ...(io.checkpoint ? { checkpoint: { path: io.checkpoint, everyEpochs: 1 }, resume: true } : {}),
      ...(io.log ? { log: io.log } : {}),
      ...(io.signal ? { signal: io.signal } : {}),
      ...(io.onProgress ? { onProgress: io.onProgress } : {}),
      progress: io.progress ?? 'lines',
      onEpochEnd: async ({ epoch, record }: { epoch: number; record: EpochRecord }) => {
        if (!due(epoch)) {
          const seconds = (performance.now() - epochStart) / 1000;
          epochStart = performance.now();
          epochSeconds.set(epoch, seconds);
          return {};
        }
        const measured = await measure(model, probeX);
        const point: EpochPoint = {
          epoch: epoch + 1,
          trainLoss: record.trainLoss,
          top1: record.eval?.top1 ?? NaN,
          ...measured,
          seconds: (performance.now() - epochStart) / 1000,
        };
        epochStart = performance.now();
        epochSeconds.set(epoch, point.seconds);
        io.onEpoch?.(point);
        return measured;
      },
    });
    // The runner keeps nothing of the optimizer (nor an EMA): free them with the run.
    result.optimizer.dispose();
    result.ema?.dispose();
    if (result.status === 'completed') await io.onTrained?.(model);
    for (const r of result.history) {
      history.push({
        epoch: r.epoch + 1,
        trainLoss: r.trainLoss,
        top1: r.eval?.top1 ?? NaN,
        gates: (r['gates'] as (number | null)[]) ?? [],
        nonlocality: (r['nonlocality'] as (number | null)[]) ?? [],
        ...(r['gatesPerHead'] ? { gatesPerHead: r['gatesPerHead'] as (number[] | null)[] } : {}),
        ...(r['nonlocalityPerHead'] ? { nonlocalityPerHead: r['nonlocalityPerHead'] as (number[] | null)[] } : {}),
        seconds: epochSeconds.get(r.epoch) ?? NaN,
      });
    }
    return {
      spec,
      trainSamples: train.length,
      parameters: model.numParameters(),
      history,
      finalTop1: history.length > 1 ? history.at(-1)!.top1 : NaN,
      seconds: (performance.now() - started) / 1000,
      status: result.status,
    };
  } finally {
    probe?.dispose();
    model.dispose();
  }
}

