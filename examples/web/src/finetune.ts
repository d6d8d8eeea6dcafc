/**
 * The fine-tune tab's run, free of the DOM and of Workers (the Worker and the Node tests call the same code):
 * build the demo's small Fashion-MNIST ConViT trunk (or its DeiT twin) for the chosen classes, train it with
 * `@softbias/train`'s `fit` — checkpoints and the log through a `FitStorage`, stop through an AbortSignal,
 * resume from the stored checkpoint — and report per epoch what the demo report plots: loss, test top-1, the
 * gates σ(λ) and the nonlocality per layer (the models' own introspection, the report's protocol).
 *
 * Or start from a checkpoint (the shipped Fashion-MNIST ConViT, a dropped safetensors file of any registered
 * family, a hub checkpoint the Worker downloaded): its weights with a new head for the run's classes, trained
 * at its input size and channels with its normalisation (its `pretrainedConfig`); gates and nonlocality are
 * reported for ConViT checkpoints (a ConvNeXt V2 has none).
 *
 * There is no training loop here: every update is `fit`'s.
 */
import * as tf from '@tensorflow/tfjs-core';
import { crc32 } from '@softbias/tensor-ops';
import { channelNormalisation, fromPretrainedWithInfo, labelNamesOf, models, readWeights, setLabelNames, setPretrainedConfig, type HubOptions, type PretrainedConfigUpdate, type VisionModel } from '@softbias/tensor-ops/models';
import {
  ArrayDataset,
  DataLoader,
  FASHION_MNIST_CLASSES,
  FASHION_MNIST_MEAN,
  FASHION_MNIST_STD,
  readIdx,
  subset,
  subsamplePerClass,
  toChannels,
  trainingAugment,
  type ImageDataset,
} from '@softbias/data';
import { fit, type FitProgress, type FitStorage } from '@softbias/train';
import { exportOnnx } from '@softbias/onnx';
import { ConViT, createModel } from '@softbias/models-convit'; // also registers the ConViT family
import { ConvNeXtV2 } from '@softbias/models-convnextv2'; // also registers ConvNeXt V2: its checkpoints fine-tune too

/** What the user picks; stored with the run, so a reload resumes the same run. */
export interface FinetuneConfig {
  /**
   * The registered Fashion-MNIST ConViT (`convit_fmnist`: GPSA in the first `localUpToLayer` blocks) or its DeiT
   * twin (`convit_fmnist_deit`: plain self-attention), at the width, depth and heads below.
   */
  model: 'convit_fmnist' | 'convit_fmnist_deit';
  embedDim: number;
  depth: number;
  numHeads: number;
  localUpToLayer: number;
  epochs: number;
  batchSize: number;
  lr: number;
  seed: number;
  /** Images per class taken from the training set (Fashion-MNIST) or all the user's. */
  perClass?: number;
  /**
   * Start from this checkpoint instead of the demo trunk (`model` … `localUpToLayer` are then unused): its
   * weights are passed to `runFinetune` (the Worker stores them beside the run, so a reload resumes it).
   */
  base?: FinetuneBase;
}

/** A checkpoint a run fine-tunes with a new head: what the page shows and stores with the run. */
export interface FinetuneBase {
  /** 'shipped': the app's Fashion-MNIST ConViT; 'file': a dropped safetensors file; 'hub': a hub checkpoint. */
  source: 'shipped' | 'file' | 'hub';
  /** Its file name, hub id or description. */
  name: string;
}

export const FINETUNE_DEFAULTS: FinetuneConfig = {
  model: 'convit_fmnist',
  embedDim: 32,
  depth: 4,
  numHeads: 4,
  localUpToLayer: 3,
  epochs: 4,
  batchSize: 32,
  lr: 2e-3,
  seed: 0,
  perClass: 30,
};

/** Images as 28×28 grey uint8, labels 0…K−1, and their names. */
export interface FinetuneData {
  train: ImageDataset;
  test: ImageDataset;
  classNames: string[];
  source: string;
}

/** The side every image is trained at (the demo trunk's: Fashion-MNIST's 28, a 7×7 patch grid). */
export const IMG_SIZE = 28;

/** What a run's model takes: [H, W] and channels, the normalisation per channel (pixels scaled to 0–1). */
export interface RunInput {
  size: [number, number];
  channels: number;
  mean: number[];
  std: number[];
}

/** The demo trunk's input: 28×28 grey, Fashion-MNIST's mean and std (convit_fmnist's registered data config). */
export const TRUNK_INPUT: RunInput = { size: [IMG_SIZE, IMG_SIZE], channels: 1, mean: [...FASHION_MNIST_MEAN], std: [...FASHION_MNIST_STD] };

/** A model's input (its pretrainedConfig: a checkpoint's own preprocessing, else its family's defaults). */
export function inputOf(model: VisionModel): RunInput {
  const pc = model.pretrainedConfig;
  const [c, h, w] = pc.inputSize;
  return { size: [h, w], channels: c, ...channelNormalisation(pc) };
}

/** A run's input as the model's pretrained config (no eval crop: the run trains and classifies whole images). */
function preprocessingOf(input: RunInput): PretrainedConfigUpdate {
  return { inputSize: [input.channels, ...input.size], mean: input.mean, std: input.std, cropPct: 1 };
}

/** The images of `ds` with `channels` channels (grey → RGB repeats the grey; RGB → grey is BT.601 luma). */
export async function withChannels(ds: ImageDataset, channels: number): Promise<ImageDataset> {
  const [h, w, c] = ds.imageShape;
  if (c === channels) return ds;
  if (channels !== 1 && channels !== 3) throw new RangeError(`fine-tune: the model takes ${channels}-channel images; only grey and RGB models can be fine-tuned here`);
  const px = await ds.readImages(Int32Array.from({ length: ds.length }, (_, i) => i));
  const out = new Uint8Array(ds.length * h * w * channels);
  for (let i = 0; i < ds.length; i++) {
    const img = { width: w, height: h, channels: c, data: px.subarray(i * h * w * c, (i + 1) * h * w * c) };
    out.set(toChannels(img, channels), i * h * w * channels);
  }
  return new ArrayDataset({ images: out, labels: ds.labels, imageShape: [h, w, channels], classNames: ds.classNames, source: ds.source });
}

/** Fashion-MNIST IDX files (gzipped or not) → the run's data: `perClass` training and `testPerClass` test images per class. */
export async function fashionMnistData(
  files: { trainImages: Uint8Array; trainLabels: Uint8Array; testImages: Uint8Array; testLabels: Uint8Array },
  opts: { perClass: number; testPerClass?: number; seed?: number },
): Promise<FinetuneData> {
  const ds = async (images: Uint8Array, labels: Uint8Array, name: string) => {
    const im = await readIdx(images);
    const lb = await readIdx(labels);
    return new ArrayDataset({
      images: im.data as Uint8Array,
      labels: lb.data,
      imageShape: [im.shape[1]!, im.shape[2]!, 1],
      classNames: [...FASHION_MNIST_CLASSES],
      source: name,
    });
  };
  const train = await ds(files.trainImages, files.trainLabels, 'Fashion-MNIST (embedded, train)');
  const test = await ds(files.testImages, files.testLabels, 'Fashion-MNIST (embedded, test)');
  const seed = opts.seed ?? 0;
  return {
    train: subset(train, subsamplePerClass(train.labels, { perClass: opts.perClass, seed, numClasses: 10 })),
    test: subset(test, subsamplePerClass(test.labels, { perClass: opts.testPerClass ?? 10, seed, numClasses: 10 })),
    classNames: [...FASHION_MNIST_CLASSES],
    source: `Fashion-MNIST embedded subset: ${opts.perClass} training and ${opts.testPerClass ?? 10} test images per class`,
  };
}

/**
 * The user's images (already at the run's input, `imageShape` [H, W, C]: 28×28 grey for the demo trunk, a
 * checkpoint's size and channels otherwise) in 2–10 classes → the run's data. Every fifth image of a class is
 * held out for the accuracy (at least one per class when the class has two or more).
 */
export function userData(
  images: Uint8Array,
  labels: ArrayLike<number>,
  classNames: string[],
  imageShape: readonly [number, number, number] = [IMG_SIZE, IMG_SIZE, 1],
): FinetuneData {
  const k = classNames.length;
  if (k < 2 || k > 10) throw new RangeError(`fine-tune: 2 to 10 classes, got ${k}`);
  const n = labels.length;
  const per = imageShape[0] * imageShape[1] * imageShape[2];
  if (images.length !== n * per) throw new RangeError(`fine-tune: ${n} labels but ${images.length / per} images of ${imageShape.join('×')}`);
  const all = new ArrayDataset({ images, labels: Array.from(labels), imageShape, classNames, source: 'your images' });
  const seen = new Array<number>(k).fill(0);
  const train: number[] = [];
  const test: number[] = [];
  for (let i = 0; i < n; i++) {
    const c = labels[i]!;
    if (c < 0 || c >= k || !Number.isInteger(c)) throw new RangeError(`fine-tune: label ${c} is not one of the ${k} classes`);
    (seen[c]++ % 5 === 4 ? test : train).push(i);
  }
  for (let c = 0; c < k; c++) if (seen[c] === 0) throw new RangeError(`fine-tune: class '${classNames[c]}' has no images`);
  return {
    train: subset(all, Int32Array.from(train)),
    test: subset(all, Int32Array.from(test.length ? test : train.slice(0, k))),
    classNames,
    source: `your images: ${train.length} training, ${test.length} held out, ${k} classes`,
  };
}

/** The model a config and data build (seeded: the same config gives the same initial weights everywhere). */
export function buildModel(cfg: FinetuneConfig, numClasses: number): ConViT {
  // 28×28 grey, 4 px patches, Fashion-MNIST's normalisation: the registered model's; the page picks the size.
  return createModel(cfg.model, {
    embedDim: cfg.embedDim,
    depth: cfg.depth,
    numHeads: cfg.numHeads,
    numClasses,
    localUpToLayer: cfg.model === 'convit_fmnist_deit' ? 0 : cfg.localUpToLayer,
    seed: cfg.seed,
  });
}

/**
 * The model a run starts from: the demo trunk (`buildModel`), or the checkpoint `cfg.base` names (`base`: its
 * safetensors bytes, any registered family) with a new `numClasses`-way head (initialised as timm's).
 */
export async function startModel(cfg: FinetuneConfig, numClasses: number, base?: Uint8Array): Promise<VisionModel> {
  if (!cfg.base) return buildModel(cfg, numClasses);
  if (!base) throw new Error(`fine-tune: the run starts from ${cfg.base.name}, but its weights were not given`);
  const model = await models.fromFile(await readWeights(base));
  try {
    model.resetClassifier(numClasses);
    const input = inputOf(model);
    if (input.channels !== 1 && input.channels !== 3) throw new RangeError(`fine-tune: ${cfg.base.name} takes ${input.channels}-channel images; only grey and RGB models can be fine-tuned here`);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

/**
 * A base's weights as safetensors bytes: a file's (or the shipped model's) bytes as given, a hub checkpoint
 * downloaded through `fromPretrainedWithInfo` (the hub client: browser Cache API, offline mode, mirrors) and
 * written back with its preprocessing, so the run can store it and resume without the network.
 */
export async function baseWeights(
  base: FinetuneBase,
  bytes: Uint8Array | undefined,
  hub: HubOptions & { onWarning?: (m: string) => void } = {},
): Promise<Uint8Array> {
  if (base.source !== 'hub') {
    if (!bytes) throw new Error(`fine-tune: no weights for ${base.name}`);
    return bytes;
  }
  let loaded: Awaited<ReturnType<typeof fromPretrainedWithInfo>>;
  try {
    loaded = await fromPretrainedWithInfo(base.name, hub);
  } catch (e) {
    throw new Error(
      `fine-tune: could not load '${base.name}' from the hub (${(e as Error).message}). ` +
        'Without the network, download model.safetensors elsewhere and drop the file here instead.',
    );
  }
  try {
    if (loaded.info.encoderOnly) hub.onWarning?.(`${loaded.info.repo} is encoder-only: the run trains a new head on its features`);
    return await loaded.model.saveWeights();
  } finally {
    loaded.model.dispose();
  }
}

/** A checkpoint's description for the page: family, name, input, classes (before its head is replaced). */
export async function describeBase(base: Uint8Array): Promise<{ input: RunInput; description: string; gpsa: boolean }> {
  const file = await readWeights(base);
  const model = await models.fromFile(file);
  try {
    const input = inputOf(model);
    const labels = labelNamesOf(file);
    const gpsa = model instanceof ConViT && model.blocks.items.some((b) => b.attn.kind === 'gpsa');
    const name = (model.config as { name?: unknown }).name;
    return {
      input,
      gpsa,
      description:
        `${models.familyOf(file).name}${typeof name === 'string' ? ` ${name}` : ''}: ${input.size.join('×')}×${input.channels} input, ` +
        `${(model.numParameters() / 1e6).toFixed(2)} M parameters, ${model.numClasses} classes${labels ? ` (${labels.slice(0, 3).join(', ')}${labels.length > 3 ? ', …' : ''})` : ''}`,
    };
  } finally {
    model.dispose();
  }
}

/** What the page shows after each epoch (and for epoch 0, the initialisation). */
export interface EpochReport {
  epoch: number;
  trainLoss: number;
  top1: number;
  /** Per layer: mean σ(λ) over heads (null: not a GPSA layer; empty: not a ConViT). */
  gates: (number | null)[];
  /** Per layer: mean nonlocality over heads on the probe batch (patch embeddings fed to each layer, the paper's protocol). */
  nonlocality: (number | null)[];
  /** tf.memory().numTensors where training runs, after the epoch. */
  numTensors: number;
  numBytes: number;
}

export interface FinetuneIo {
  storage: FitStorage;
  /** Storage keys (default 'finetune/ckpt.safetensors', 'finetune/log.jsonl'). */
  checkpointKey?: string;
  logKey?: string;
  resume?: boolean;
  signal?: AbortSignal;
  onProgress?: (p: FitProgress) => void;
  onEpoch?: (r: EpochReport) => void;
  /** Once the model is built, before training: the input it trains at. */
  onStart?: (input: RunInput) => void;
  /** Checkpoint every this many updates (default: at epoch ends and on abort only). */
  checkpointEverySteps?: number;
}

export interface FinetuneResult {
  status: 'completed' | 'aborted';
  step: number;
  resumedFrom?: number;
  history: EpochReport[];
  /** The last update's loss. */
  lastLoss: number;
  /** CRC-32 of every parameter's float32 bytes in order (a weight checksum to compare runs). */
  checksum: number;
  /**
   * The trained weights (safetensors, timm keys, the class names in `__metadata__.labels`, the input size and
   * normalisation it was trained with in `__metadata__.pretrained_cfg`).
   */
  weights: Uint8Array;
  /** The input it was trained at. */
  input: RunInput;
}

function meanOrNull(a: Float32Array | null): number | null {
  if (!a) return null;
  let s = 0;
  for (const v of a) s += v;
  return s / a.length;
}

async function hasCheckpoint(io: FinetuneIo): Promise<boolean> {
  try {
    await io.storage.read(io.checkpointKey ?? 'finetune/ckpt.safetensors');
    return true;
  } catch {
    return false;
  }
}

/** CRC-32 of the parameters' float32 bytes (model order). */
export async function weightChecksum(model: VisionModel): Promise<number> {
  let c = 0;
  for (const [, p] of model.namedParameters()) {
    const d = (await p.variable.data()) as Float32Array;
    c = crc32(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), c);
  }
  return c >>> 0;
}

const loaderOptions = (input: RunInput, seed: number) => ({ mean: input.mean, std: input.std, seed, outputSize: input.size });


/**
 * Train (or resume) one run through `fit`. `base`: the checkpoint's bytes when `cfg.base` is set (the data are
 * converted to its channels and resized to its input size as they are read).
 */
export async function runFinetune(cfg: FinetuneConfig, source: FinetuneData, io: FinetuneIo, base?: Uint8Array): Promise<FinetuneResult> {
  const model = await startModel(cfg, source.classNames.length, base);
  const input = inputOf(model);
  let data: FinetuneData;
  try {
    data = { ...source, train: await withChannels(source.train, input.channels), test: await withChannels(source.test, input.channels) };
  } catch (e) {
    model.dispose();
    throw e;
  }
  const convit = model instanceof ConViT ? model : null;
  io.onStart?.(input);
  let probeX: tf.Tensor4D | undefined;
  try {
    const n = Math.min(16, data.test.length);
    const probe = new DataLoader(subset(data.test, Int32Array.from({ length: n }, (_, i) => i)), { batchSize: n, shuffle: false, ...loaderOptions(input, cfg.seed) });
    for await (const b of probe.batches()) {
      b.y.dispose();
      probeX = b.x;
    }
    const px = probeX!;
    // The demo report's measurements (ExperimentResult's EpochPoint): a ConViT's gates() and nonlocality().
    const report = async (epoch: number, trainLoss: number, top1: number): Promise<EpochReport> => {
      const gates = convit ? (await convit.gates()).map(meanOrNull) : [];
      const nonlocality = convit ? (await convit.nonlocality(px, { input: 'patch-embedding' })).map(meanOrNull) : [];
      const mem = tf.memory();
      const r: EpochReport = { epoch, trainLoss, top1, gates, nonlocality, numTensors: mem.numTensors, numBytes: mem.numBytes };
      io.onEpoch?.(r);
      return r;
    };
    // Epoch 0, the initialisation (a resumed run has its earlier epochs in the checkpoint's history).
    const initial = io.resume && (await hasCheckpoint(io)) ? undefined : await report(0, NaN, NaN);
    let lastLoss = NaN;
    const result = await fit({
      model,
      data: new DataLoader(data.train, { batchSize: cfg.batchSize, ...loaderOptions(input, cfg.seed), augment: trainingAugment([data.train.imageShape[0], data.train.imageShape[1]], input.size) }),
      epochs: cfg.epochs,
      numClasses: data.classNames.length,
      optimizer: { lr: cfg.lr, weightDecay: 0.05 },
      schedule: { warmupEpochs: Math.min(1, cfg.epochs / 4), minLr: cfg.lr * 0.01 },
      labelSmoothing: 0.1,
      clipGradNorm: 5,
      seed: cfg.seed,
      evaluate: { data: () => new DataLoader(data.test, { batchSize: 100, shuffle: false, ...loaderOptions(input, cfg.seed) }).batches() },
      storage: io.storage,
      checkpoint: { path: io.checkpointKey ?? 'finetune/ckpt.safetensors', ...(io.checkpointEverySteps ? { everySteps: io.checkpointEverySteps } : {}) },
      log: io.logKey ?? 'finetune/log.jsonl',
      resume: io.resume ?? false,
      ...(io.signal ? { signal: io.signal } : {}),
      progress: 'none',
      onProgress: (p) => {
        lastLoss = p.loss;
        io.onProgress?.(p);
      },
      onEpochEnd: async ({ epoch, record }) => {
        const r = await report(epoch + 1, record.trainLoss, record.eval?.top1 ?? NaN);
        // Into fit's history (and so into the checkpoint): a resumed run still has every epoch's report.
        return { report: r };
      },
    });
    result.optimizer.dispose();
    result.ema?.dispose();
    const checksum = await weightChecksum(model);
    // The file says what it is: the class names and the preprocessing it was trained with.
    setLabelNames(model, data.classNames);
    setPretrainedConfig(model, preprocessingOf(input));
    const weights = await model.saveWeights();
    const history = [...(initial ? [initial] : []), ...result.history.map((r) => r['report'] as EpochReport).filter(Boolean)];
    return {
      status: result.status,
      step: result.step,
      ...(result.resumedFrom !== undefined ? { resumedFrom: result.resumedFrom } : {}),
      history,
      lastLoss,
      checksum,
      weights,
      input,
    };
  } finally {
    probeX?.dispose();
    model.dispose();
  }
}

/** One image's top-k: class index, the user's class name, softmax probability (highest first). */
export interface Prediction {
  index: number;
  name: string;
  prob: number;
}

/** A run's weights (what `runFinetune` returns) → the model, its class names and the input it was trained at. */
async function trainedModel(weights: Uint8Array, what: string): Promise<{ model: VisionModel; classNames: string[]; input: RunInput }> {
  const file = await readWeights(weights);
  const classNames = labelNamesOf(file);
  if (!classNames || classNames.length < 2) throw new Error(`${what}: the weights carry no class names (labels)`);
  const model = await models.fromFile(file);
  return { model, classNames, input: inputOf(model) };
}

/**
 * Classify images at the run's input (uint8 HWC, N·H·W·C bytes: 28×28 grey for the demo trunk) with a run's
 * weights (what `runFinetune` returns: class names and preprocessing are in the file): the model rebuilt from
 * the file, the images normalised exactly as training and evaluation did (the same DataLoader, no
 * augmentation), softmax, top-k.
 */
export async function classifyImages(weights: Uint8Array, images: Uint8Array, k = 3): Promise<Prediction[][]> {
  const { model, classNames, input } = await trainedModel(weights, 'classify');
  try {
    const [h, w] = input.size;
    const px = h * w * input.channels;
    const n = images.length / px;
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`classify: ${images.length} bytes is not a whole number of ${h}×${w}×${input.channels} images`);
    const ds = new ArrayDataset({ images, labels: new Array<number>(n).fill(0), imageShape: [h, w, input.channels], classNames });
    const out: Prediction[][] = [];
    for await (const b of new DataLoader(ds, { batchSize: 50, shuffle: false, dropLast: false, ...loaderOptions(input, 0) }).batches()) {
      b.y.dispose();
      const probs = tf.tidy(() => tf.softmax(model.forward(b.x) as tf.Tensor2D));
      b.x.dispose();
      const p = (await probs.data()) as Float32Array;
      probs.dispose();
      const c = classNames.length;
      for (let i = 0; i < p.length / c; i++) {
        const row = Array.from(p.subarray(i * c, (i + 1) * c), (prob, index) => ({ index, name: classNames[index]!, prob }));
        out.push(row.sort((a, b) => b.prob - a.prob || a.index - b.index).slice(0, Math.min(k, c)));
      }
    }
    return out;
  } finally {
    model.dispose();
  }
}

/**
 * The fine-tuned model as ONNX (`@softbias/onnx`'s `exportOnnx`, which runs in a browser: no Node module on
 * this path): NHWC float32 `input` [batch, H, W, C] (28×28×1 for the demo trunk) normalised as in training,
 * output `logits` [batch, classes]; the class names and the normalisation in its metadata.
 */
export async function finetunedOnnx(weights: Uint8Array): Promise<Uint8Array> {
  const { model, classNames, input } = await trainedModel(weights, 'ONNX export');
  try {
    if (!(model instanceof ConViT || model instanceof ConvNeXtV2)) throw new Error(`ONNX export: no exporter for ${model.constructor.name}`);
    return exportOnnx(model, { metadata: { labels: JSON.stringify(classNames), mean: String(input.mean), std: String(input.std) } });
  } finally {
    model.dispose();
  }
}
