/**
 * A training run for the SIGKILL/resume test, run as its own Node process (bundled by the test with esbuild):
 *   node resume-child.mjs <outDir> fresh|resume <embedded Fashion-MNIST dir>
 * Trains a tiny ViT on 120 embedded Fashion-MNIST images on the cpu backend with every stochastic option on
 * (augmentation, mixup/cutmix, drop path, EMA, clipping, label smoothing), checkpointing every 4 updates. Prints
 * `STEP n` after each update and writes `<outDir>/final.safetensors` (weights, moments, EMA) at the end.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setupBackend } from '@softbias/tensor-ops';
import { loadFashionMnist, subset, subsamplePerClass, DataLoader, FASHION_MNIST_MEAN, FASHION_MNIST_STD } from '@softbias/data';
import { fit, checkpointBytes } from '@softbias/train';
import { TinyViT } from './tiny-model.js';

const [outDir, mode, embedded] = process.argv.slice(2) as [string, string, string];
await setupBackend('cpu');
// Bundled into .tmp/, this script passes the embedded subset's folder explicitly.
const full = await loadFashionMnist({ dir: embedded });
const ds = subset(full, subsamplePerClass(full.labels, { fraction: 0.04, seed: 1 }));
const loader = new DataLoader(ds, {
  batchSize: 12,
  seed: 5,
  dropLast: true,
  augment: { crop: { kind: 'pad-crop', padding: 2 }, hflip: true },
  mean: FASHION_MNIST_MEAN,
  std: FASHION_MNIST_STD,
});
const model = new TinyViT({ imgSize: 28, patchSize: 7, inChans: 1, dim: 24, depth: 2, heads: 2, numClasses: 10, dropPath: 0.2, seed: 3 });
const r = await fit({
  model,
  data: loader,
  epochs: 3,
  numClasses: 10,
  optimizer: { lr: 2e-3, weightDecay: 0.05 },
  schedule: { warmupEpochs: 1, warmupInitLr: 1e-5, minLr: 1e-5 },
  labelSmoothing: 0.1,
  clipGradNorm: 1,
  mixup: { mixupAlpha: 0.8, cutmixAlpha: 1 },
  ema: { decay: 0.9 },
  checkpoint: { path: join(outDir, 'ckpt.safetensors'), everySteps: 4 },
  resume: mode === 'resume',
  log: join(outDir, 'log.jsonl'),
  progress: 'none',
  onProgress: (p) => process.stdout.write(`STEP ${p.step}\n`),
});
const bytes = await checkpointBytes({ model, optimizer: r.optimizer, ema: r.ema!, step: r.step });
writeFileSync(join(outDir, 'final.safetensors'), bytes);
process.stdout.write(`DONE ${r.status} ${r.step}\n`);
