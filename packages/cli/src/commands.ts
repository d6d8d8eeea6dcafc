/** `softbias train | eval | inspect | bench` on any registered model and the bundled or installed data sets. */
import * as tf from '@tensorflow/tfjs-core';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { BackendRequest } from '@softbias/tensor-ops';
import { startBackend } from './backend-start.js';
import {
  DataLoader,
  FASHION_MNIST_MEAN,
  FASHION_MNIST_STD,
  CIFAR10_MEAN,
  CIFAR10_STD,
  loadCifar10,
  loadFashionMnist,
  loadImageFolderSplits,
  subset,
  subsamplePerClass,
  trainingAugment,
  type ImageDataset,
} from '@softbias/data';
import { fit, evaluate } from '@softbias/train';
import type { TrainSettings } from '@softbias/experiments';
import { ConfusionMatrix, countMacs, convnextv2Macs, measureThroughput, countParameters } from '@softbias/metrics';
import { ConViT } from '@softbias/models-convit';
import { ConvNeXtV2 } from '@softbias/models-convnextv2';
import { channelNormalisation, explicitPretrainedConfig, fromPretrainedWithInfo, models, setLabelNames, setPretrainedConfig } from '@softbias/tensor-ops/models';
import { createAnyModel, familyOf, loadAnyModel, type AnyModel, type Family } from './models.js';
import { downloadProgress } from './download-progress.js';
import { checkTrainingMemory, convitPatchSize, explainOutOfMemory } from './memory.js';

export interface DataChoice {
  data: string;
  dataDir?: string;
}

export interface LoadedData {
  train: ImageDataset;
  test: ImageDataset;
  mean: readonly number[];
  std: readonly number[];
}

/** `fashion-mnist` (embedded subset or the full set), `fashion-mnist-embedded`, `cifar10` (--data-dir), `folder` (--data-dir with train/ and test/). */
export async function loadData(c: DataChoice): Promise<LoadedData> {
  const kind = c.data;
  if (kind === 'fashion-mnist' || kind === 'fashion-mnist-embedded' || kind === 'fashion-mnist-full') {
    const source = kind === 'fashion-mnist-embedded' ? 'embedded' : kind === 'fashion-mnist-full' ? 'full' : 'auto';
    const base = { source, ...(c.dataDir ? { dir: c.dataDir } : {}) } as const;
    return {
      train: await loadFashionMnist({ ...base, split: 'train' }),
      test: await loadFashionMnist({ ...base, split: 'test' }),
      mean: FASHION_MNIST_MEAN,
      std: FASHION_MNIST_STD,
    };
  }
  if (kind === 'cifar10') {
    if (!c.dataDir) throw new Error('--data cifar10 needs --data-dir (the folder with data_batch_*.bin and test_batch.bin)');
    return {
      train: await loadCifar10({ dir: c.dataDir, split: 'train' }),
      test: await loadCifar10({ dir: c.dataDir, split: 'test' }),
      mean: CIFAR10_MEAN,
      std: CIFAR10_STD,
    };
  }
  if (kind === 'folder') {
    if (!c.dataDir) throw new Error('--data folder needs --data-dir with train/<class>/*.png and test/<class>/*.png');
    // One class list for both splits (train's): a class missing from test/ keeps every label in place.
    const { train, test } = await loadImageFolderSplits(c.dataDir, { splits: ['train', 'test'] });
    return {
      train: train!,
      test: test!,
      mean: [0.5],
      std: [0.5],
    };
  }
  throw new Error(`unknown --data '${kind}' (fashion-mnist, fashion-mnist-embedded, fashion-mnist-full, cifar10, folder)`);
}

/** Architecture overrides that make a registered model fit a data set (input size, channels, classes). */
export function fitOverrides(family: Family, data: ImageDataset, given: Record<string, unknown>): Record<string, unknown> {
  const [H, W, C] = data.imageShape;
  const o: Record<string, unknown> = { inChans: C, numClasses: data.numClasses };
  if (family === 'convit') Object.assign(o, { imgSize: [H, W], patchSize: convitPatchSize(H, W) });
  return { ...o, ...given };
}

/** Input size a model needs for a dataset (ConvNeXt V2 needs ≥ 32 pixels: smaller images are resized). */
function inputSize(model: AnyModel, data: ImageDataset): [number, number] {
  if (model instanceof ConViT) {
    const s = model.config.imgSize;
    return [s[0], s[1]];
  }
  const [H, W] = data.imageShape;
  return [Math.max(32, H), Math.max(32, W)];
}

/** `softbias train`'s arguments: the train settings the experiment runner's specs share, plus where and how to run. */
export interface TrainArgs extends TrainSettings, DataChoice {
  out: string;
  backend: BackendRequest;
  resume: boolean;
  /** Resume even though the settings differ from the checkpoint's (listed in a warning). */
  allowSettingsChange?: boolean;
  progress: 'bar' | 'lines' | 'none';
  /** The backend's full story (why `auto` skipped each backend, Dawn's warnings). */
  verbose?: boolean;
  /** Fine-tune this hub checkpoint (a timm hub id, or a registered name for its default tag) instead of `model`. */
  pretrained?: string;
  /** Fine-tune this weights file instead of `model`. */
  weights?: string;
}

interface FineTuneStart {
  model: AnyModel;
  name: string;
  family: Family;
  size: [number, number];
  mean: readonly number[];
  std: readonly number[];
}

/**
 * The model `train --pretrained ID` / `--weights FILE` fine-tunes: the checkpoint with a new classifier for the
 * data's classes (and its first convolution adapted to the data's channels, as timm), trained at the
 * checkpoint's input size with its normalisation (a weights file: the data's, at the size it was trained at).
 */
async function fineTuneStart(a: TrainArgs, data: LoadedData, log: (s: string) => void): Promise<FineTuneStart> {
  const C = data.train.imageShape[2];
  const numClasses = data.train.numClasses;
  if (a.pretrained) {
    const { model, info } = await fromPretrainedWithInfo(a.pretrained, {
      numClasses,
      overrides: { ...a.overrides, inChans: C },
      onProgress: downloadProgress(a.progress),
      onWarning: (m) => log(`warning: ${m}`),
    });
    const cfg = model.pretrainedConfig;
    const size: [number, number] = [cfg.inputSize[1], cfg.inputSize[2]];
    const { mean, std } = channelNormalisation(cfg, C);
    const fmt = (v: number[]) => `[${v.map((x) => x.toFixed(3)).join(', ')}]`;
    log(
      `fine-tuning ${info.repo}${info.fromCache ? ` (cached: ${info.location})` : ''}: a new ${numClasses}-class head` +
        `${C !== 3 ? `, the first convolution adapted to ${C} channel(s)` : ''}; the checkpoint's preprocessing: ${size[0]}×${size[1]}, mean ${fmt(mean)}, std ${fmt(std)}`,
    );
    return { model, name: info.architecture, family: models.get(info.architecture).family, size, mean, std };
  }
  const { family, model } = await loadAnyModel(a.weights!);
  const chans = model.pretrainedConfig.inputSize[0];
  if (chans !== C) {
    model.dispose();
    throw new Error(`--weights ${a.weights}: the model takes ${chans}-channel images, the data set has ${C} channel(s)`);
  }
  const had = model.numClasses;
  if (had !== numClasses) model.resetClassifier(numClasses);
  const name = (model.config as { name?: unknown }).name;
  // A file that says what it was trained with (its pretrained_cfg): that preprocessing; else the data's.
  const own = explicitPretrainedConfig(model);
  const size: [number, number] = own ? [own.inputSize[1], own.inputSize[2]] : inputSize(model, data.train);
  const { mean, std } = own ? channelNormalisation(own, C) : { mean: data.mean, std: data.std };
  const fmt = (v: readonly number[]) => `[${v.map((x) => x.toFixed(3)).join(', ')}]`;
  log(
    `fine-tuning ${a.weights}${had !== numClasses ? `: a new ${numClasses}-class head (it had ${had})` : ''}` +
      `${own ? `; the file's preprocessing: ${size[0]}×${size[1]}, mean ${fmt(mean)}, std ${fmt(std)}` : ''}`,
  );
  return { model, name: typeof name === 'string' ? name : family, family, size, mean, std };
}

export interface TrainOutcome {
  status: 'completed' | 'aborted';
  step: number;
  /** The signal that stopped the run (SIGINT: exit 130, SIGTERM: exit 143). */
  signal?: 'SIGINT' | 'SIGTERM';
}

/**
 * Train a registered model. Ctrl-C (SIGINT) or SIGTERM stops within one update and saves a checkpoint (no final
 * weights file: the run is not finished); a second Ctrl-C kills the process at once.
 */
export async function train(a: TrainArgs, log: (s: string) => void): Promise<TrainOutcome> {
  await startBackend(a.backend, { verbose: a.verbose ?? false, log });
  const data = await loadData(a);
  const picked = subsamplePerClass(data.train.labels, { fraction: a.fraction, seed: a.seed, numClasses: data.train.numClasses });
  const trainSet = subset(data.train, picked);
  let model: AnyModel;
  let size: [number, number];
  let norm: { mean: readonly number[]; std: readonly number[] } = data;
  let name = a.model;
  if (a.pretrained || a.weights) {
    const start = await fineTuneStart(a, data, log);
    ({ model, size, name } = start);
    norm = start;
    const overrides = { inChans: data.train.imageShape[2], numClasses: data.train.numClasses };
    try {
      if (models.has(start.name)) checkTrainingMemory(start.name, start.family, overrides, a.batchSize, tf.getBackend(), size);
    } catch (e) {
      // A refusal ("train: … needs about … GiB") stops the run; an architecture the estimate does not know does not.
      if (/^train: /.test((e as Error)?.message ?? '')) {
        model.dispose();
        throw e;
      }
    }
  } else {
    const family = familyOf(a.model);
    const [imgH, imgW] = data.train.imageShape; // ConvNeXt V2 trains on max(32, H) × max(32, W) (inputSize)
    checkTrainingMemory(a.model, family, fitOverrides(family, data.train, a.overrides), a.batchSize, tf.getBackend(), [Math.max(32, imgH), Math.max(32, imgW)]);
    model = createAnyModel(a.model, { ...fitOverrides(family, data.train, a.overrides), seed: a.seed });
    size = inputSize(model, data.train);
  }
  log(`model: ${name} (${model.numParameters().toLocaleString('en')} parameters); data: ${trainSet.length} train / ${data.test.length} test, input ${size[0]}×${size[1]}`);
  const out = resolve(a.out);
  mkdirSync(out, { recursive: true });
  const controller = new AbortController();
  let stoppedBy: 'SIGINT' | 'SIGTERM' | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    stoppedBy ??= sig === 'SIGTERM' ? 'SIGTERM' : 'SIGINT';
    controller.abort();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const result = await fit({
      model,
      data: new DataLoader(trainSet, {
        batchSize: a.batchSize,
        seed: a.seed,
        mean: norm.mean,
        std: norm.std,
        outputSize: size,
        // At the data's size a padded random crop; at another (a checkpoint's input size, ConvNeXt V2's 32 px
        // minimum on 28 px images) a random resized crop.
        augment: trainingAugment([data.train.imageShape[0], data.train.imageShape[1]], size),
      }),
      epochs: a.epochs,
      numClasses: model.numClasses,
      optimizer: { lr: a.lr, weightDecay: a.weightDecay },
      schedule: { warmupEpochs: a.warmupEpochs },
      labelSmoothing: a.labelSmoothing,
      clipGradNorm: 5,
      seed: a.seed,
      evaluate: { data: () => new DataLoader(data.test, { batchSize: 250, shuffle: false, mean: norm.mean, std: norm.std, outputSize: size }).batches() },
      checkpoint: { path: join(out, 'checkpoint.safetensors'), everyEpochs: 1 },
      resume: a.resume,
      allowSettingsChange: a.allowSettingsChange ?? false,
      log: join(out, 'log.jsonl'),
      progress: a.progress,
      signal: controller.signal,
    });
    result.optimizer.dispose();
    result.ema?.dispose();
    const ckptPath = join(out, 'checkpoint.safetensors');
    if (result.status === 'aborted') {
      log(`aborted${stoppedBy ? ` (${stoppedBy})` : ''} at step ${result.step}; checkpoint ${ckptPath} (continue with --resume)`);
      return { status: result.status, step: result.step, ...(stoppedBy ? { signal: stoppedBy } : {}) };
    }
    // The file carries what it was trained with: its preprocessing (pretrained_cfg) and the data's class names.
    setPretrainedConfig(model, {
      inputSize: [data.train.imageShape[2], size[0], size[1]],
      cropPct: 1,
      interpolation: 'bilinear',
      mean: norm.mean,
      std: norm.std,
    });
    if (data.train.classNames.length === model.numClasses) setLabelNames(model, data.train.classNames);
    await model.saveWeights(join(out, 'model.safetensors'));
    const last = result.history.at(-1);
    log(`${result.status}: ${result.epochs} epochs, step ${result.step}` + (last?.eval ? `, test top-1 ${(100 * last.eval.top1).toFixed(2)}%` : ''));
    log(`weights: ${join(out, 'model.safetensors')} (rebuild with loadModel or softbias eval --weights)`);
    return { status: result.status, step: result.step };
  } catch (e) {
    throw explainOutOfMemory(e, a.batchSize);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    model.dispose();
  }
}

export interface EvalArgs extends DataChoice {
  weights: string;
  backend: BackendRequest;
  /** The backend's full story (why `auto` skipped each backend, Dawn's warnings). */
  verbose?: boolean;
}

export async function evalCmd(a: EvalArgs, log: (s: string) => void): Promise<void> {
  await startBackend(a.backend, { verbose: a.verbose ?? false, log });
  const data = await loadData(a);
  const { model } = await loadAnyModel(a.weights);
  try {
    const size = inputSize(model, data.test);
    const r = await evaluate(model, new DataLoader(data.test, { batchSize: 250, shuffle: false, mean: data.mean, std: data.std, outputSize: size }).batches());
    log(`${a.weights}: top-1 ${(100 * r.top1).toFixed(2)}%, top-5 ${(100 * r.top5).toFixed(2)}%, loss ${r.loss.toFixed(4)} over ${r.count} images`);
    const cm = new ConfusionMatrix(data.test.numClasses);
    for await (const b of new DataLoader(data.test, { batchSize: 250, shuffle: false, mean: data.mean, std: data.std, outputSize: size }).batches()) {
      const logits = tf.tidy(() => model.forward(b.x));
      await cm.update(logits, b.y);
      tf.dispose([logits, b.x, b.y]);
    }
    log(cm.format(data.test.classNames));
  } finally {
    model.dispose();
  }
}

export interface InspectArgs extends DataChoice {
  weights?: string;
  model?: string;
  overrides: Record<string, unknown>;
  backend: BackendRequest;
  verbose?: boolean;
}

export async function inspect(a: InspectArgs, log: (s: string) => void): Promise<void> {
  await startBackend(a.backend, { verbose: a.verbose ?? false, log: a.verbose ? log : () => undefined });
  let model: AnyModel;
  if (a.weights) ({ model } = await loadAnyModel(a.weights));
  else if (a.model) model = createAnyModel(a.model, a.overrides);
  else throw new Error('inspect needs --weights FILE or --model NAME');
  try {
    const params = countParameters(model);
    log(`parameters: ${params.total.toLocaleString('en')} (${params.trainable.toLocaleString('en')} trainable)`);
    if (model instanceof ConViT) {
      const m = model;
      const c = m.config;
      log(`config: ${JSON.stringify({ ...c, mixers: undefined })}`);
      // Each block's mixer counts its own MACs (GPSA, MHSA, window, dwconv, ff-patches).
      const macs = countMacs(m.macs({ countCached: true }));
      log(`MACs per image: ${(macs.total / 1e9).toFixed(3)} G`);
      const gates = await m.gates();
      gates.forEach((g, l) => {
        if (g) log(`layer ${l} gates σ(λ): ${[...g].map((v) => v.toFixed(3)).join(' ')}`);
      });
      const data = await loadData(a).catch(() => null);
      if (data && data.test.imageShape[0] === c.imgSize[0] && data.test.imageShape[2] === c.inChans) {
        const probe = new DataLoader(subset(data.test, Int32Array.from({ length: 64 }, (_, i) => i)), { batchSize: 64, shuffle: false, mean: data.mean, std: data.std });
        for await (const b of probe.batches()) {
          const nl = await m.nonlocality(b.x, { input: 'patch-embedding' });
          nl.forEach((v, l) => {
            if (v) log(`layer ${l} nonlocality (patches): ${[...v].map((x) => x.toFixed(2)).join(' ')}`);
          });
          tf.dispose([b.x, b.y]);
        }
      }
    } else if (model instanceof ConvNeXtV2) {
      const c = model.config;
      log(`config: ${JSON.stringify(c)}`);
      const macs = convnextv2Macs({ imgSize: 224, inChans: c.inChans, depths: c.depths, dims: c.dims, numClasses: c.numClasses });
      log(`MACs per 224×224 image: ${(macs.total / 1e9).toFixed(3)} G`);
    } else log(`config: ${JSON.stringify(model.config)}`);
  } finally {
    model.dispose();
  }
}

export interface BenchArgs {
  model: string;
  overrides: Record<string, unknown>;
  batch: number[];
  runs: number;
  backend: BackendRequest;
  threads: number;
  verbose?: boolean;
}

export async function bench(a: BenchArgs, log: (s: string) => void): Promise<void> {
  const info = await startBackend(a.backend, { threads: a.threads, verbose: a.verbose ?? false, log });
  const model = createAnyModel(a.model, a.overrides);
  try {
    // The model's own input: ConViT's configured image size, else the pretrained config's (224 px).
    const [C, H, W] = model.pretrainedConfig.inputSize;
    const size: [number, number] = model instanceof ConViT ? [model.config.imgSize[0], model.config.imgSize[1]] : [H, W];
    for (const b of a.batch) {
      const x = tf.randomNormal([b, size[0], size[1], model instanceof ConViT ? model.config.inChans : C], 0, 1, 'float32', 1);
      const r = await measureThroughput(async () => {
        const y = model.forward(x);
        await y.data();
        y.dispose();
      }, b, { warmup: 1, runs: a.runs });
      x.dispose();
      log(`${a.model} ${size[0]}×${size[1]} batch ${b}: ${r.itemsPerSecond.toFixed(2)} img/s, median ${r.median.toFixed(1)} ms, p95 ${r.p95.toFixed(1)} ms`);
    }
  } finally {
    model.dispose();
  }
}
