/**
 * The fine-tune tab's run, free of the DOM and of Workers (the Worker and the Node tests call the same code):
 * build the demo's small Fashion-MNIST ConViT trunk (or its DeiT twin) for the chosen classes, train it with
 * `@softbias/train`'s `fit` — checkpoints and the log through a `FitStorage`, stop through an AbortSignal,
 * resume from the stored checkpoint — and report per epoch what the demo report plots: loss, test top-1, the
 * gates σ(λ) and the nonlocality per layer (the models' own introspection, the report's protocol).
 *
 * There is no training loop here: every update is `fit`'s.
 */
import * as tf from '@tensorflow/tfjs-core';
import { crc32 } from '@softbias/tensor-ops';
import { labelNamesOf, readWeights, writeWeights } from '@softbias/tensor-ops/models';
import {
  ArrayDataset,
  DataLoader,
  FASHION_MNIST_CLASSES,
  FASHION_MNIST_MEAN,
  FASHION_MNIST_STD,
  readIdx,
  subset,
  subsamplePerClass,
  type ImageDataset,
} from '@softbias/data';
import { fit, type FitProgress, type FitStorage } from '@softbias/train';
import { exportOnnx } from '@softbias/onnx';
import { fashionMnistTrunk } from '@softbias/experiments';
import { createModel, type ConViT } from '@softbias/models-convit';

/** What the user picks; stored with the run, so a reload resumes the same run. */
export interface FinetuneConfig {
  /** 'convit_tiny' (GPSA in the first `localUpToLayer` blocks) or its DeiT twin (plain self-attention). */
  model: 'convit_tiny' | 'convit_tiny_deit';
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
}

export const FINETUNE_DEFAULTS: FinetuneConfig = {
  model: 'convit_tiny',
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
 * The user's images (already 28×28 grey, `IMG_SIZE`² bytes each) in 2–10 classes → the run's data. Every fifth
 * image of a class is held out for the accuracy (at least one per class when the class has two or more).
 */
export function userData(images: Uint8Array, labels: ArrayLike<number>, classNames: string[]): FinetuneData {
  const k = classNames.length;
  if (k < 2 || k > 10) throw new RangeError(`fine-tune: 2 to 10 classes, got ${k}`);
  const n = labels.length;
  if (images.length !== n * IMG_SIZE * IMG_SIZE) throw new RangeError(`fine-tune: ${n} labels but ${images.length / (IMG_SIZE * IMG_SIZE)} images`);
  const all = new ArrayDataset({ images, labels: Array.from(labels), imageShape: [IMG_SIZE, IMG_SIZE, 1], classNames, source: 'your images' });
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
  const trunk = fashionMnistTrunk({ imgSize: IMG_SIZE, embedDim: cfg.embedDim, depth: cfg.depth, numHeads: cfg.numHeads });
  return createModel(cfg.model, {
    ...trunk,
    numClasses,
    localUpToLayer: cfg.model === 'convit_tiny_deit' ? 0 : cfg.localUpToLayer,
    seed: cfg.seed,
  });
}

/** What the page shows after each epoch (and for epoch 0, the initialisation). */
export interface EpochReport {
  epoch: number;
  trainLoss: number;
  top1: number;
  /** Per layer: mean σ(λ) over heads (null: not a GPSA layer). */
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
  /** The trained weights (safetensors, timm keys, the class names in `__metadata__.labels`). */
  weights: Uint8Array;
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
export async function weightChecksum(model: ConViT): Promise<number> {
  let c = 0;
  for (const [, p] of model.namedParameters()) {
    const d = (await p.variable.data()) as Float32Array;
    c = crc32(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), c);
  }
  return c >>> 0;
}

const loaderOptions = (cfg: FinetuneConfig) => ({ mean: FASHION_MNIST_MEAN, std: FASHION_MNIST_STD, seed: cfg.seed });

/** Train (or resume) one run through `fit`. */
export async function runFinetune(cfg: FinetuneConfig, data: FinetuneData, io: FinetuneIo): Promise<FinetuneResult> {
  const model = buildModel(cfg, data.classNames.length);
  const n = Math.min(16, data.test.length);
  const probe = new DataLoader(subset(data.test, Int32Array.from({ length: n }, (_, i) => i)), { batchSize: n, shuffle: false, ...loaderOptions(cfg) });
  let probeX: tf.Tensor4D | undefined;
  try {
    for await (const b of probe.batches()) {
      b.y.dispose();
      probeX = b.x;
    }
    const px = probeX!;
    // The demo report's measurements (ExperimentResult's EpochPoint): the models' gates() and nonlocality().
    const report = async (epoch: number, trainLoss: number, top1: number): Promise<EpochReport> => {
      const gates = (await model.gates()).map(meanOrNull);
      const nonlocality = (await model.nonlocality(px, { input: 'patch-embedding' })).map(meanOrNull);
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
      data: new DataLoader(data.train, { batchSize: cfg.batchSize, ...loaderOptions(cfg), augment: { crop: { kind: 'pad-crop', padding: 2 }, hflip: true } }),
      epochs: cfg.epochs,
      numClasses: data.classNames.length,
      optimizer: { lr: cfg.lr, weightDecay: 0.05 },
      schedule: { warmupEpochs: Math.min(1, cfg.epochs / 4), minLr: cfg.lr * 0.01 },
      labelSmoothing: 0.1,
      clipGradNorm: 5,
      seed: cfg.seed,
      evaluate: { data: () => new DataLoader(data.test, { batchSize: 100, shuffle: false, ...loaderOptions(cfg) }).batches() },
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
    const weights = await writeWeights(model, {
      arch: cfg.model,
      family: 'convit',
      config: model.config,
      metadata: { labels: JSON.stringify(data.classNames) },
    });
    const history = [...(initial ? [initial] : []), ...result.history.map((r) => r['report'] as EpochReport).filter(Boolean)];
    return {
      status: result.status,
      step: result.step,
      ...(result.resumedFrom !== undefined ? { resumedFrom: result.resumedFrom } : {}),
      history,
      lastLoss,
      checksum,
      weights,
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

/**
 * Classify 28×28 grey images (uint8, N·784 bytes) with a run's weights (what `runFinetune` returns: the class
 * names are in the file's labels): the model rebuilt from `cfg`, the weights loaded strictly, the images
 * normalised exactly as training and evaluation did (the same DataLoader, no augmentation), softmax, top-k.
 */
export async function classifyImages(cfg: FinetuneConfig, weights: Uint8Array, images: Uint8Array, k = 3): Promise<Prediction[][]> {
  const px = IMG_SIZE * IMG_SIZE;
  const n = images.length / px;
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`classify: ${images.length} bytes is not a whole number of 28×28 images`);
  const file = await readWeights(weights);
  const classNames = labelNamesOf(file);
  if (!classNames || classNames.length < 2) throw new Error('classify: the weights carry no class names (labels)');
  const model = buildModel(cfg, classNames.length);
  try {
    await model.loadWeights(file);
    const ds = new ArrayDataset({ images, labels: new Array<number>(n).fill(0), imageShape: [IMG_SIZE, IMG_SIZE, 1], classNames });
    const out: Prediction[][] = [];
    for await (const b of new DataLoader(ds, { batchSize: 50, shuffle: false, dropLast: false, ...loaderOptions(cfg) }).batches()) {
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
 * this path): NHWC float32 `input` [batch, 28, 28, 1] normalised as in training, output `logits`
 * [batch, classes]; the class names in its metadata (`labels`).
 */
export async function finetunedOnnx(cfg: FinetuneConfig, weights: Uint8Array): Promise<Uint8Array> {
  const file = await readWeights(weights);
  const classNames = labelNamesOf(file);
  if (!classNames) throw new Error('ONNX export: the weights carry no class names (labels)');
  const model = buildModel(cfg, classNames.length);
  try {
    await model.loadWeights(file);
    return exportOnnx(model, { metadata: { labels: JSON.stringify(classNames), mean: String(FASHION_MNIST_MEAN), std: String(FASHION_MNIST_STD) } });
  } finally {
    model.dispose();
  }
}
