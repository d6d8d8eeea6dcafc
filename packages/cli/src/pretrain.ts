/**
 * `softbias pretrain`: FCMAE masked pre-training of a ConvNeXt V2 encoder (sparse encoder over the visible
 * patches, light decoder, loss on the removed patches) through `fit({ loss })` — so it stops within one update
 * on Ctrl-C with a checkpoint, logs JSON lines, and `--resume` continues bit for bit — then the encoder saved as
 * a dense ConvNeXt V2 classifier checkpoint ready for `softbias train`-style fine-tuning.
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { BackendRequest } from '@softbias/tensor-ops';
import { startBackend } from './backend-start.js';
import { DataLoader, subset, subsamplePerClass } from '@softbias/data';
import { fit, type FitProgress } from '@softbias/train';
import { createFcmae } from '@softbias/models-convnextv2';
import { loadData, type DataChoice } from './commands.js';

export interface PretrainArgs extends DataChoice {
  epochs: number;
  /** Fraction of the patches removed (and reconstructed), in (0, 1). */
  maskRatio: number;
  depths: number[];
  dims: number[];
  batchSize: number;
  lr: number;
  seed: number;
  fraction: number;
  /** Images are resized to this square size (a multiple of 32: FCMAE masks 32×32 patches). Default 64. */
  imgSize?: number;
  out: string;
  /** The backend's full story (why `auto` skipped each backend, Dawn's warnings). */
  verbose?: boolean;
  backend: BackendRequest;
  progress: 'bar' | 'lines' | 'none';
  /** Continue from `<out>/checkpoint.safetensors` when it exists. Default false. */
  resume?: boolean;
  /** Resume even though the settings differ from the checkpoint's (listed in a warning). */
  allowSettingsChange?: boolean;
}

/** Programmatic hooks (the command line uses neither). */
export interface PretrainHooks {
  /** Stop within one update, with a checkpoint (as Ctrl-C does). */
  signal?: AbortSignal;
  onProgress?: (p: FitProgress) => void;
}

export interface PretrainOutcome {
  status: 'completed' | 'aborted';
  step: number;
  /** Mean masked-patch loss per completed epoch. */
  losses: number[];
  /** The encoder as a ConvNeXt V2 classifier (written when the run completed). */
  encoderPath?: string;
  /** The signal that stopped the run (SIGINT: exit 130, SIGTERM: exit 143). */
  signal?: 'SIGINT' | 'SIGTERM';
}

/** Settings under which the FCMAE loss is undefined or the run cannot train, refused before any work. */
function checkSettings(a: PretrainArgs, size: number): void {
  if (!(a.maskRatio > 0 && a.maskRatio < 1)) {
    throw new RangeError(
      `pretrain: --mask-ratio must be in (0, 1), got ${a.maskRatio}: ` +
        (a.maskRatio === 0 ? 'with no patch removed there is nothing to reconstruct (the loss is 0/0)' : a.maskRatio >= 1 ? 'with every patch removed the encoder sees nothing' : 'not a ratio'),
    );
  }
  if (!(Number.isInteger(size) && size >= 32 && size % 32 === 0)) throw new RangeError(`pretrain: --img-size must be a positive multiple of 32 (FCMAE patches), got ${size}`);
  if (!(Number.isInteger(a.batchSize) && a.batchSize > 0)) throw new RangeError(`pretrain: --batch-size must be a positive integer, got ${a.batchSize}`);
}

export async function pretrain(a: PretrainArgs, log: (s: string) => void, hooks: PretrainHooks = {}): Promise<PretrainOutcome> {
  const size = a.imgSize ?? 64;
  checkSettings(a, size);
  await startBackend(a.backend, { verbose: a.verbose ?? false, log });
  const data = await loadData(a);
  const picked = subsamplePerClass(data.train.labels, { fraction: a.fraction, seed: a.seed, numClasses: data.train.numClasses });
  const trainSet = subset(data.train, picked);
  if (trainSet.length < a.batchSize) {
    throw new RangeError(`pretrain: --batch-size ${a.batchSize} is larger than the ${trainSet.length} training images (full batches only): no update to train; lower --batch-size or raise --fraction`);
  }
  const loader = new DataLoader(trainSet, { batchSize: a.batchSize, seed: a.seed, mean: data.mean, std: data.std, outputSize: size, dropLast: true, augment: { hflip: true } });
  const C = data.train.imageShape[2];
  const fcmae = createFcmae({
    imgSize: size,
    inChans: C,
    depths: a.depths,
    dims: a.dims,
    decoderDepth: 1,
    decoderEmbedDim: Math.max(64, a.dims[3]!),
    maskRatio: a.maskRatio,
    normPixLoss: true,
    seed: a.seed,
  });
  const out = resolve(a.out);
  const controller = new AbortController();
  let stoppedBy: 'SIGINT' | 'SIGTERM' | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    stoppedBy ??= sig === 'SIGTERM' ? 'SIGTERM' : 'SIGINT';
    controller.abort();
  };
  const onHook = () => controller.abort();
  hooks.signal?.addEventListener('abort', onHook, { once: true });
  if (hooks.signal?.aborted) controller.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    mkdirSync(out, { recursive: true });
    const perEpoch = loader.batchesPerEpoch;
    const total = a.epochs * perEpoch;
    log(`FCMAE: ${trainSet.length} images at ${size}×${size}, mask ratio ${a.maskRatio}, ${fcmae.numParameters().toLocaleString('en')} parameters, ${total} steps`);
    const checkpointPath = join(out, 'checkpoint.safetensors');
    const result = await fit({
      model: fcmae,
      data: loader,
      epochs: a.epochs,
      // The mean loss over the removed patches; the masks come from the model's seeded generator (checkpointed).
      loss: (_model, b) => fcmae.computeLoss(b.x),
      optimizer: { lr: a.lr, weightDecay: 0.05 },
      schedule: { warmupEpochs: Math.min(perEpoch, Math.floor(total / 4)) / perEpoch },
      clipGradNorm: 5,
      seed: a.seed,
      checkpoint: { path: checkpointPath, everyEpochs: 1 },
      resume: a.resume ?? false,
      allowSettingsChange: a.allowSettingsChange ?? false,
      log: join(out, 'log.jsonl'),
      progress: a.progress,
      signal: controller.signal,
      ...(hooks.onProgress ? { onProgress: hooks.onProgress } : {}),
      onEpochEnd: ({ epoch, record }) => log(`epoch ${epoch + 1}/${a.epochs}: masked-patch loss ${record.trainLoss.toFixed(4)}`),
    });
    result.optimizer.dispose();
    const losses = result.history.map((r) => r.trainLoss);
    if (result.status === 'aborted') {
      log(`aborted${stoppedBy ? ` (${stoppedBy})` : ''} at step ${result.step}; checkpoint ${checkpointPath} (continue with --resume)`);
      return { status: 'aborted', step: result.step, losses, ...(stoppedBy ? { signal: stoppedBy } : {}) };
    }
    await fcmae.saveWeights(join(out, 'fcmae.safetensors'));
    const classifier = fcmae.encoderToClassifier(data.train.numClasses, { seed: a.seed });
    const encoderPath = join(out, 'encoder-classifier.safetensors');
    try {
      await classifier.saveWeights(encoderPath);
    } finally {
      classifier.dispose();
    }
    log(`weights: ${join(out, 'fcmae.safetensors')}; encoder as a ConvNeXt V2 classifier: ${encoderPath}`);
    return { status: 'completed', step: result.step, losses, encoderPath };
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    hooks.signal?.removeEventListener('abort', onHook);
    fcmae.dispose();
  }
}
