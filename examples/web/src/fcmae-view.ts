/**
 * The FCMAE tab's computation, free of the DOM: a ConvNeXt V2 FCMAE (random or loaded) on one image with a
 * seeded random mask at a chosen ratio — the mask, the visible input, the reconstruction (un-normalised per
 * patch when the model trains with norm-pix loss, as the reference visualises it) and the loss of every patch.
 * Everything comes from the model's own methods (forward, lossPerPatch, patchify / unpatchify); nothing of
 * FCMAE is re-implemented here.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '@softbias/tensor-ops';
import { randomMaskData } from '@softbias/sparse-conv';
import { ArrayDataset, DataLoader } from '@softbias/data';
import { constantSchedule, fit } from '@softbias/train';
import { createFcmae, loadFcmae, type Fcmae } from '@softbias/models-convnextv2/fcmae';
import type { Rgba } from './demo-model.js';

/** ImageNet's mean and std (what FCMAE pre-trains with). */
export const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
export const IMAGENET_STD = [0.229, 0.224, 0.225] as const;

/** A small random FCMAE for the page: ConvNeXt V2 atto encoder, one 64-wide decoder block, 128×128 input (4×4 patches of 32 px). */
export function randomFcmae(seed = 0): Fcmae {
  return createFcmae({ model: 'convnextv2_atto', imgSize: 128, decoderDepth: 1, decoderEmbedDim: 64, normPixLoss: true, seed });
}

export async function loadFcmaeBytes(bytes: Uint8Array): Promise<Fcmae> {
  return loadFcmae(bytes);
}

/** Centre-crop to a square, resize to the model's input and normalise → [1, S, S, 3]. */
export function fcmaeInput(model: Fcmae, image: Rgba): tf.Tensor4D {
  const [H, W] = model.config.imgSize;
  return tf.tidy(() => {
    const rgba = tf.tensor3d(Float32Array.from(image.data), [image.height, image.width, 4]);
    const side = Math.min(image.height, image.width);
    const top = Math.floor((image.height - side) / 2);
    const left = Math.floor((image.width - side) / 2);
    const rgb = tf.slice(rgba, [top, left, 0], [side, side, 3]);
    const resized = tf.image.resizeBilinear(tf.expandDims(rgb, 0) as tf.Tensor4D, [H, W], false, true);
    return tf.div(tf.sub(tf.div(resized, 255), IMAGENET_MEAN as unknown as number[]), IMAGENET_STD as unknown as number[]) as tf.Tensor4D;
  });
}

export interface FcmaeView {
  grid: [number, number];
  patchSize: number;
  height: number;
  width: number;
  /** [L], 1 = removed. */
  mask: Float32Array;
  removed: number;
  /** Mean loss over removed patches (the training loss). */
  loss: number;
  /** [L]: every patch's mean squared error (removed and visible). */
  perPatch: Float32Array;
  /** [H, W, 3] in [0, 1]: the input, the visible part (removed patches grey), the reconstruction, and visible + reconstructed. */
  input: Float32Array;
  visible: Float32Array;
  reconstruction: Float32Array;
  composite: Float32Array;
  normPixLoss: boolean;
}

const toDisplay = (x: tf.Tensor): tf.Tensor => tf.clipByValue(tf.add(tf.mul(x, IMAGENET_STD as unknown as number[]), IMAGENET_MEAN as unknown as number[]), 0, 1);

/** Run the model on x [1, H, W, 3] with a random mask at `ratio` (seeded) and read everything the tab draws. */
export async function fcmaeView(model: Fcmae, x: tf.Tensor4D, ratio: number, seed: number): Promise<FcmaeView> {
  const grid = model.gridOf(x);
  const p = model.config.patchSize;
  const L = grid[0] * grid[1];
  const mask = randomMaskData({ batch: 1, numPatches: grid, ratio, rng: seed });
  const out = model.forward(x, { mask });
  try {
    const [H, W] = [x.shape[1], x.shape[2]];
    const normPix = model.config.normPixLoss;
    const images = tf.tidy(() => {
      const perPatch = model.lossPerPatch(x, out.pred);
      let predPatches = tf.reshape(out.pred, [1, L, p * p * model.config.inChans]);
      if (normPix) {
        // The prediction is of per-patch normalised pixels: back to pixels with each patch's own statistics.
        const t = model.patchify(x);
        const n = t.shape[2]!;
        const mean = tf.mean(t, -1, true);
        const std = tf.sqrt(tf.add(tf.div(tf.sum(tf.square(tf.sub(t, mean)), -1, true), n - 1), 1e-6));
        predPatches = tf.add(tf.mul(predPatches, std), mean);
      }
      const recon = model.unpatchify(predPatches, grid);
      // The mask at pixel resolution [1, H, W, 1].
      const m = tf.reshape(tf.tensor2d(mask, [1, L]), [1, grid[0], 1, grid[1], 1, 1]);
      const mPix = tf.reshape(tf.tile(m, [1, 1, p, 1, p, 1]), [1, H, W, 1]);
      const keep = tf.sub(1, mPix);
      const input = toDisplay(x);
      const grey = tf.fill([1, H, W, 3], 0.5);
      return {
        perPatch,
        input,
        visible: tf.add(tf.mul(input, keep), tf.mul(grey, mPix)),
        reconstruction: toDisplay(recon),
        composite: tf.add(tf.mul(input, keep), tf.mul(toDisplay(recon), mPix)),
      };
    });
    try {
      const read = async (t: tf.Tensor) => (await t.data()) as Float32Array;
      return {
        grid,
        patchSize: p,
        height: H,
        width: W,
        mask,
        removed: mask.reduce((a, v) => a + v, 0),
        loss: (await out.loss.data())[0]!,
        perPatch: await read(images.perPatch),
        input: await read(images.input),
        visible: await read(images.visible),
        reconstruction: await read(images.reconstruction),
        composite: await read(images.composite),
        normPixLoss: normPix,
      };
    } finally {
      tf.dispose(Object.values(images));
    }
  } finally {
    tf.dispose([out.loss, out.pred, out.mask]);
  }
}

// ------------------------------------------------------------------------------------ pre-training steps

/** Centre-crop an RGBA image to a square and resize it (bilinear, half-pixel centres) to size×size RGB bytes: a training image. */
export function trainingImage(image: Rgba, size: number): Uint8Array {
  const side = Math.min(image.height, image.width);
  const top = Math.floor((image.height - side) / 2);
  const left = Math.floor((image.width - side) / 2);
  const out = new Uint8Array(size * size * 3);
  const scale = side / size;
  for (let y = 0; y < size; y++) {
    const sy = Math.min(Math.max((y + 0.5) * scale - 0.5, 0), side - 1);
    const y0 = Math.floor(sy);
    const y1 = Math.min(y0 + 1, side - 1);
    const fy = sy - y0;
    for (let x = 0; x < size; x++) {
      const sx = Math.min(Math.max((x + 0.5) * scale - 0.5, 0), side - 1);
      const x0 = Math.floor(sx);
      const x1 = Math.min(x0 + 1, side - 1);
      const fx = sx - x0;
      for (let c = 0; c < 3; c++) {
        const at = (yy: number, xx: number) => image.data[((top + yy) * image.width + left + xx) * 4 + c]!;
        const v = (1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x1)) + fy * ((1 - fx) * at(y1, x0) + fx * at(y1, x1));
        out[(y * size + x) * 3 + c] = Math.round(v);
      }
    }
  }
  return out;
}

/** A few FCMAE pre-training steps: what the page's Worker runs and the Node test repeats. */
export interface PretrainSpec {
  /** The model's safetensors (`Fcmae.saveWeights()`). */
  weights: Uint8Array;
  /** `count` RGB images of the model's input size, row-major [count, H, W, 3] bytes (`trainingImage`); each step trains on all of them. */
  images: Uint8Array;
  count: number;
  steps: number;
  lr: number;
  /** Share of the patches removed in each step's masks. */
  ratio: number;
  /** Seed of the masks, the batch order and fit's own randomness. */
  seed: number;
}

export interface PretrainResult {
  /** The loss of every step (mean over the removed patches). */
  losses: number[];
  /** The trained weights (safetensors, as `Fcmae.saveWeights()` writes them). */
  weights: Uint8Array;
}

/**
 * Train the model the spec's weights hold for `steps` updates through `@softbias/train`'s `fit({ loss })` with
 * FCMAE's own loss (`computeLoss`: sparse encoder over the visible patches, decoder, loss on the removed ones;
 * norm-pix as the model is configured) — as `softbias pretrain` does: AdamW with weight decay 0.05, gradients
 * clipped at 5; a constant learning rate (a few steps: no warm-up or decay). One batch (all the images) per
 * epoch, so `steps` epochs. No training loop here.
 */
export async function fcmaePretrain(spec: PretrainSpec, onStep?: (step: number, loss: number) => void): Promise<PretrainResult> {
  const model = await loadFcmae(spec.weights);
  try {
    const [H, W] = model.config.imgSize;
    if (!(spec.count >= 1) || spec.images.length !== spec.count * H * W * 3) {
      throw new RangeError(`FCMAE pre-training: ${spec.count} images of ${H}×${W}×3 bytes expected, got ${spec.images.length} bytes`);
    }
    if (!(spec.ratio > 0 && spec.ratio < 1)) throw new RangeError(`FCMAE pre-training: the mask ratio must be in (0, 1), got ${spec.ratio}`);
    if (!(Number.isInteger(spec.steps) && spec.steps >= 1)) throw new RangeError(`FCMAE pre-training: steps must be a positive integer, got ${spec.steps}`);
    const data = new ArrayDataset({
      images: spec.images,
      labels: new Array<number>(spec.count).fill(0),
      imageShape: [H, W, 3],
      classNames: ['image'],
      source: 'your images',
    });
    const loader = new DataLoader(data, { batchSize: spec.count, seed: spec.seed, mean: IMAGENET_MEAN, std: IMAGENET_STD, dropLast: true });
    const rng = new Rng(spec.seed);
    const losses: number[] = [];
    const result = await fit({
      model,
      data: loader,
      epochs: spec.steps,
      // FCMAE's masked reconstruction loss, the masks drawn at the page's ratio from a seeded generator.
      loss: (_m, b) => model.computeLoss(b.x, { mask: randomMaskData({ batch: b.x.shape[0]!, numPatches: model.gridOf(b.x), ratio: spec.ratio, rng }) }),
      optimizer: { lr: spec.lr, weightDecay: 0.05 },
      schedule: constantSchedule(spec.lr),
      clipGradNorm: 5,
      seed: spec.seed,
      progress: 'none',
      onProgress: (p) => {
        if (p.phase !== 'train') return;
        losses.push(p.loss);
        onStep?.(p.step, p.loss);
      },
    });
    result.optimizer.dispose();
    return { losses, weights: await model.saveWeights() };
  } finally {
    model.dispose();
  }
}
