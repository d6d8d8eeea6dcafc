/**
 * `softbias pretrain`: FCMAE masked pre-training of a ConvNeXt V2 encoder (sparse encoder over the visible
 * patches, light decoder, loss on the removed patches), then the encoder saved as a dense ConvNeXt V2
 * classifier checkpoint ready for `softbias train`-style fine-tuning.
 */
import * as tf from '@tensorflow/tfjs-core';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setupBackend, type BackendRequest } from '@softbias/tensor-ops';
import { DataLoader, subset, subsamplePerClass } from '@softbias/data';
import { AdamW, cosineSchedule, clipGradNorm } from '@softbias/train';
import { createFcmae } from '@softbias/models-convnextv2';
import { loadData, type DataChoice } from './commands.js';

export interface PretrainArgs extends DataChoice {
  epochs: number;
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
  backend: BackendRequest;
  progress: 'bar' | 'lines' | 'none';
}

export async function pretrain(a: PretrainArgs, log: (s: string) => void): Promise<{ losses: number[]; encoderPath: string }> {
  const info = await setupBackend(a.backend);
  log(`backend: ${info.backend} (${info.reason})`);
  const data = await loadData(a);
  const size = a.imgSize ?? 64;
  if (size % 32 !== 0) throw new Error(`pretrain: --img-size must be a multiple of 32 (FCMAE patches), got ${size}`);
  const picked = subsamplePerClass(data.train.labels, { fraction: a.fraction, seed: a.seed, numClasses: data.train.numClasses });
  const trainSet = subset(data.train, picked);
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
  mkdirSync(out, { recursive: true });
  try {
    const loader = new DataLoader(trainSet, { batchSize: a.batchSize, seed: a.seed, mean: data.mean, std: data.std, outputSize: size, dropLast: true, augment: { hflip: true } });
    const opt = new AdamW(fcmae, { lr: a.lr, weightDecay: 0.05 });
    const total = a.epochs * loader.batchesPerEpoch;
    const schedule = cosineSchedule({ baseLr: a.lr, totalSteps: total, warmupSteps: Math.min(loader.batchesPerEpoch, Math.floor(total / 4)) });
    const vars = opt.variables();
    const losses: number[] = [];
    let step = 0;
    log(`FCMAE: ${trainSet.length} images at ${size}×${size}, mask ratio ${a.maskRatio}, ${fcmae.numParameters().toLocaleString('en')} parameters, ${total} steps`);
    fcmae.train();
    for (let epoch = 0; epoch < a.epochs; epoch++) {
      let sum = 0;
      let n = 0;
      for await (const b of loader.batches()) {
        const { value, grads } = tf.variableGrads(() => fcmae.forward(b.x).loss as tf.Scalar, vars);
        const named = opt.gradsByName(grads);
        const clipped = clipGradNorm(named, 5);
        opt.applyGradients(clipped.grads, schedule(step));
        const l = (await value.data())[0]!;
        sum += l;
        n++;
        step++;
        tf.dispose([value, b.x, b.y, clipped.totalNorm, ...Object.values(grads), ...clipped.grads.values()]);
      }
      loader.nextEpoch();
      losses.push(sum / Math.max(1, n));
      log(`epoch ${epoch + 1}/${a.epochs}: masked-patch loss ${losses.at(-1)!.toFixed(4)}`);
    }
    fcmae.eval();
    await fcmae.saveWeights(join(out, 'fcmae.safetensors'));
    const classifier = fcmae.encoderToClassifier(data.train.numClasses, { seed: a.seed });
    const encoderPath = join(out, 'encoder-classifier.safetensors');
    await classifier.saveWeights(encoderPath);
    classifier.dispose();
    log(`weights: ${join(out, 'fcmae.safetensors')}; encoder as a ConvNeXt V2 classifier: ${encoderPath}`);
    return { losses, encoderPath };
  } finally {
    fcmae.dispose();
  }
}
