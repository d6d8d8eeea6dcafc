/**
 * Evaluation preprocessing as timm's for these weights: resize the shorter side to ⌊size / cropPct⌋, centre
 * crop `size`, scale to [0, 1], normalise with the ImageNet mean / std. Resizing is bilinear (tfjs has no
 * bicubic resize; timm's reference uses bicubic, so expect small differences in the logits).
 */
import * as tf from '@tensorflow/tfjs-core';
import { IMAGENET_MEAN, IMAGENET_STD, type PretrainedConfig } from './config.js';

/** Pixels with values 0…255: a tensor [H, W, 3|4] or [B, H, W, 3|4], or ImageData-like RGBA/RGB bytes. */
export type ImageInput =
  | tf.Tensor
  | { data: Uint8ClampedArray | Uint8Array | Float32Array; width: number; height: number; channels?: 3 | 4 };

export interface PreprocessOptions {
  /** Output size (square number or [H, W]). Default: the model's `inputSize` (224). */
  size?: number | [number, number];
  /** Centre-crop fraction; 1 = resize to `size` directly after matching the shorter side. Default 0.875. */
  cropPct?: number;
  mean?: readonly [number, number, number];
  std?: readonly [number, number, number];
}

function toPixels(image: ImageInput): tf.Tensor4D {
  if (image instanceof tf.Tensor) {
    if ((image.rank !== 3 && image.rank !== 4) || (image.shape[image.rank - 1] !== 3 && image.shape[image.rank - 1] !== 4)) {
      throw new Error(`preprocess: expected an image of shape [H, W, 3|4] or [B, H, W, 3|4], got [${image.shape}]`);
    }
    const x = image.rank === 3 ? tf.expandDims(image, 0) : image;
    const rgb = x.shape[3] === 4 ? tf.slice(x, [0, 0, 0, 0], [x.shape[0]!, x.shape[1]!, x.shape[2]!, 3]) : x;
    return tf.cast(rgb, 'float32') as tf.Tensor4D;
  }
  const { data, width, height } = image;
  const ch = image.channels ?? (data.length === width * height * 4 ? 4 : 3);
  if (data.length !== width * height * ch) {
    throw new Error(`preprocess: ${data.length} values do not make a ${height}×${width} image with ${ch} channels`);
  }
  const t = tf.tensor4d(Float32Array.from(data), [1, height, width, ch]);
  return (ch === 4 ? tf.slice(t, [0, 0, 0, 0], [1, height, width, 3]) : t) as tf.Tensor4D;
}

/** Preprocess an image (or batch) for a model with `config`: → [B, H, W, 3] float32, normalised. */
export function preprocess(image: ImageInput, opts: PreprocessOptions = {}, config?: Partial<PretrainedConfig>): tf.Tensor4D {
  const size = opts.size ?? config?.inputSize ?? [224, 224];
  const [th, tw] = typeof size === 'number' ? [size, size] : size;
  const cropPct = opts.cropPct ?? config?.cropPct ?? 0.875;
  if (!(cropPct > 0 && cropPct <= 1)) throw new Error(`preprocess: cropPct must be in (0, 1], got ${cropPct}`);
  const mean = opts.mean ?? config?.mean ?? IMAGENET_MEAN;
  const std = opts.std ?? config?.std ?? IMAGENET_STD;
  return tf.tidy(() => {
    const x = toPixels(image);
    const [, h, w] = x.shape;
    // Shorter side → ⌊size / cropPct⌋ (timm: scale_size = floor(img_size / crop_pct); torchvision Resize(int)).
    const scale = Math.floor(Math.min(th, tw) / cropPct);
    const [rh, rw] = h <= w ? [scale, Math.floor((scale * w) / h)] : [Math.floor((scale * h) / w), scale];
    if (rh < th || rw < tw) throw new Error(`preprocess: resized image ${rh}×${rw} is smaller than the crop ${th}×${tw}`);
    const resized = rh === h && rw === w ? x : tf.image.resizeBilinear(x, [rh, rw], false, true);
    const top = Math.round((rh - th) / 2);
    const left = Math.round((rw - tw) / 2);
    const crop = tf.slice(resized, [0, top, left, 0], [x.shape[0], th, tw, 3]);
    const m = tf.tensor1d(mean.map((v) => v * 255));
    const s = tf.tensor1d(std.map((v) => v * 255));
    return tf.div(tf.sub(crop, m), s) as tf.Tensor4D;
  });
}
