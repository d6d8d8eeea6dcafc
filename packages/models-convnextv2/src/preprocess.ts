/**
 * This package's first preprocessing entry point, now timm's eval transform from `@softbias/tensor-ops/models`
 * (antialiased bicubic resize of the short side to ⌊size / cropPct⌋, centre crop, ImageNet normalisation),
 * kept for its callers: pixel values are 0…255 here whatever the dtype.
 */
import * as tf from '@tensorflow/tfjs-core';
import { preprocess as sharedPreprocess } from '@softbias/tensor-ops/models';
import { IMAGENET_MEAN, IMAGENET_STD, type PretrainedConfig } from './config.js';

/**
 * Pixels with values 0…255: a tensor [H, W, 3|4] or [B, H, W, 3|4], or ImageData-like RGBA/RGB bytes.
 * @deprecated Use `ImageInput` from `@softbias/tensor-ops/models` (float32 pixels 0–1 there).
 */
export type ImageInput =
  | tf.Tensor
  | { data: Uint8ClampedArray | Uint8Array | Float32Array; width: number; height: number; channels?: 3 | 4 };

/** @deprecated Use `PreprocessOverrides` from `@softbias/tensor-ops/models`. */
export interface PreprocessOptions {
  /** Output size (square number or [H, W]). Default: the model's `inputSize` (224). */
  size?: number | [number, number];
  /** Centre-crop fraction; 1 = resize to `size` directly after matching the shorter side. Default 0.875. */
  cropPct?: number;
  mean?: readonly [number, number, number];
  std?: readonly [number, number, number];
}

/**
 * Preprocess an image (or batch) for a model with `config`: → [B, H, W, 3] float32, normalised.
 * @deprecated Use `preprocess(image, model)` from `@softbias/tensor-ops/models`, the one transform of every
 * family (float32 pixels are 0–1 there; here every dtype is 0…255).
 */
export function preprocess(image: ImageInput, opts: PreprocessOptions = {}, config?: Partial<PretrainedConfig>): tf.Tensor4D {
  const size = opts.size ?? config?.inputSize ?? [224, 224];
  const source = {
    size: (typeof size === 'number' ? [size, size] : [size[0], size[1]]) as [number, number],
    cropPct: opts.cropPct ?? config?.cropPct ?? 0.875,
    mean: opts.mean ?? config?.mean ?? IMAGENET_MEAN,
    std: opts.std ?? config?.std ?? IMAGENET_STD,
  };
  if (image instanceof tf.Tensor) {
    if (image.dtype !== 'float32') return sharedPreprocess(image, source);
    return tf.tidy(() => sharedPreprocess(tf.div(image, 255), source));
  }
  if (image !== null && typeof image === 'object' && image.data instanceof Float32Array) {
    const data = new Float32Array(image.data.length);
    for (let i = 0; i < data.length; i++) data[i] = image.data[i]! / 255;
    return sharedPreprocess({ ...image, data }, source);
  }
  return sharedPreprocess(image, source);
}
