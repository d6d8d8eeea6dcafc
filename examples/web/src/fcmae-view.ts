/**
 * The FCMAE tab's computation, free of the DOM: a ConvNeXt V2 FCMAE (random or loaded) on one image with a
 * seeded random mask at a chosen ratio — the mask, the visible input, the reconstruction (un-normalised per
 * patch when the model trains with norm-pix loss, as the reference visualises it) and the loss of every patch.
 * Everything comes from the model's own methods (forward, lossPerPatch, patchify / unpatchify); nothing of
 * FCMAE is re-implemented here.
 */
import * as tf from '@tensorflow/tfjs-core';
import { randomMaskData } from '@softbias/sparse-conv';
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
