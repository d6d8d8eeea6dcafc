/**
 * timm's eval transform, for every family: resize (the short side to ⌊size / cropPct⌋, bicubic with
 * antialiasing, as PIL / torchvision), centre crop, scale to [0, 1], normalise with mean / std →
 * NHWC float32 [B, H, W, 3], or [B, H, W, 1] for a model that takes grey images (its `inputSize[0]` is 1):
 * then the RGB image becomes its luma (ITU-R BT.601: 0.299 R + 0.587 G + 0.114 B, as PIL's convert('L')),
 * normalised with `mean[0]` / `std[0]`. A grey image (1 channel) is taken as R = G = B.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { PretrainedConfig } from './pretrained.js';
import { resampleBicubic, resampleWeights } from './resample.js';

/**
 * An RGB(A) or grey image: ImageData-like (`data` row-major H×W×channels; bytes 0–255, Float32Array 0–1), or a
 * tensor [H, W, 1|3|4] / [B, H, W, 1|3|4] (float32 0–1, integer dtypes 0–255).
 */
export type ImageInput =
  | { data: Uint8Array | Uint8ClampedArray | Float32Array; width: number; height: number; channels?: number }
  | tf.Tensor;

/** The numbers the transform needs. */
export interface PreprocessConfig {
  /** [H, W] of the model input. */
  size: readonly [number, number];
  mean: readonly [number, number, number];
  std: readonly [number, number, number];
  cropPct: number;
  /** timm's `crop_mode`: 'center' (default, the aspect ratio kept) or 'squash' (both sides resized). */
  cropMode?: 'center' | 'squash';
  /** Channels of the model input: 3 (default) or 1 (grey: the luma of an RGB image). */
  channels?: 1 | 3;
}

/** Replace parts of a model's transform. */
export interface PreprocessOverrides {
  /** Output size (a square side or [H, W]). */
  size?: number | readonly [number, number];
  cropPct?: number;
  cropMode?: 'center' | 'squash';
  mean?: readonly [number, number, number];
  std?: readonly [number, number, number];
}

/** What a transform can be taken from: a model, its pretrained config, or the numbers themselves. */
export type PreprocessSource = PreprocessConfig | PretrainedConfig | { readonly pretrainedConfig: PretrainedConfig };

function isPretrained(c: object): c is PretrainedConfig {
  return 'inputSize' in c;
}

/** The transform's numbers for a model / pretrained config, with `overrides` applied and checked. */
export function preprocessConfig(source: PreprocessSource, overrides: PreprocessOverrides = {}): PreprocessConfig {
  const base: PreprocessConfig =
    'pretrainedConfig' in source
      ? fromPretrained(source.pretrainedConfig)
      : isPretrained(source)
        ? fromPretrained(source)
        : source;
  const s = overrides.size;
  const size: readonly [number, number] = s === undefined ? base.size : typeof s === 'number' ? [s, s] : [s[0], s[1]];
  const cfg: PreprocessConfig = {
    size,
    cropPct: overrides.cropPct ?? base.cropPct,
    mean: overrides.mean ?? base.mean,
    std: overrides.std ?? base.std,
  };
  const cropMode = overrides.cropMode ?? base.cropMode;
  if (cropMode !== undefined) {
    if (cropMode !== 'center' && cropMode !== 'squash') throw new Error(`preprocess: cropMode must be 'center' or 'squash', got ${JSON.stringify(cropMode)}`);
    if (cropMode === 'squash') cfg.cropMode = cropMode;
  }
  if (!size.every((n) => Number.isInteger(n) && n >= 1)) throw new Error(`preprocess: size must be positive integers, got [${size}]`);
  if (base.channels !== undefined && base.channels !== 1 && base.channels !== 3) {
    throw new Error(`preprocess: the model takes ${base.channels}-channel images; the transform makes 1 (grey) or 3 (RGB)`);
  }
  if (base.channels === 1) cfg.channels = 1;
  if (!(cfg.cropPct > 0 && cfg.cropPct <= 1)) throw new Error(`preprocess: cropPct must be in (0, 1], got ${cfg.cropPct}`);
  return cfg;
}

function fromPretrained(p: PretrainedConfig): PreprocessConfig {
  return {
    size: [p.inputSize[1], p.inputSize[2]],
    mean: p.mean,
    std: p.std,
    cropPct: p.cropPct,
    ...(p.cropMode ? { cropMode: p.cropMode } : {}),
    ...(p.inputSize[0] !== 3 ? { channels: p.inputSize[0] as 1 | 3 } : {}),
  };
}

/** Python's round(): halves go to the even neighbour. */
function pyRound(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * The resize target (before the crop) for an image of h×w, as timm's eval transform computes it
 * ('squash': both sides to ⌊size / cropPct⌋, whatever the aspect ratio).
 */
export function resizeTarget(
  h: number,
  w: number,
  size: readonly [number, number],
  cropPct: number,
  cropMode: 'center' | 'squash' = 'center',
): [number, number] {
  const scale: [number, number] = [Math.floor(size[0] / cropPct), Math.floor(size[1] / cropPct)];
  if (cropMode === 'squash') return scale;
  if (scale[0] === scale[1]) {
    // torchvision Resize(int): the short side becomes `scale`, the long side int(scale · long / short).
    const s = scale[0];
    if (w <= h) return [Math.trunc((s * h) / w), s];
    return [s, Math.trunc((s * w) / h)];
  }
  // timm ResizeKeepRatio (longest = 0): divide both sides by the smaller of the two ratios, then round.
  const ratio = Math.min(h / scale[0], w / scale[1]);
  return [pyRound(h / ratio), pyRound(w / ratio)];
}

/** The dense [outSize, inSize] matrix of the separable resampling weights. */
function resampleMatrix(inSize: number, outSize: number): tf.Tensor2D {
  const m = new Float32Array(outSize * inSize);
  resampleWeights(inSize, outSize).forEach(({ start, weights }, i) => {
    for (let j = 0; j < weights.length; j++) m[i * inSize + start + j] = weights[j]!;
  });
  return tf.tensor2d(m, [outSize, inSize]);
}

function cropOffsets(rh: number, rw: number, size: readonly [number, number]): [number, number] {
  const [th, tw] = size;
  if (rh < th || rw < tw) {
    throw new Error(`preprocess: the resized image ${rh}×${rw} is smaller than the crop ${th}×${tw}`);
  }
  return [Math.trunc(pyRound((rh - th) / 2)), Math.trunc(pyRound((rw - tw) / 2))];
}

/** BT.601 luma weights (PIL's convert('L')). */
const LUMA = [0.299, 0.587, 0.114] as const;

/** One tensor image [H, W, 1|3|4]: the resampling as dense matmuls on the tensor's backend (no read-back). */
function preprocessTensor(image: tf.Tensor, cfg: PreprocessConfig): tf.Tensor4D {
  const [h, w, c] = image.shape as [number, number, number];
  const [rh, rw] = resizeTarget(h, w, cfg.size, cfg.cropPct, cfg.cropMode);
  const [top, left] = cropOffsets(rh, rw, cfg.size);
  const [th, tw] = cfg.size;
  return tf.tidy(() => {
    let x = tf.cast(c === 4 ? tf.slice(image, [0, 0, 0], [h, w, 3]) : c === 1 ? tf.tile(image, [1, 1, 3]) : image, 'float32');
    if (image.dtype !== 'float32') x = tf.div(x, 255);
    if (rh !== h || rw !== w) {
      // Rows: [rh, h] · [h, w·3]; columns: [rw, w] · [w, rh·3].
      const rows = tf.reshape(tf.matMul(resampleMatrix(h, rh), tf.reshape(x, [h, w * 3])), [rh, w, 3]);
      const t = tf.reshape(tf.transpose(rows, [1, 0, 2]), [w, rh * 3]);
      const cols = tf.reshape(tf.matMul(resampleMatrix(w, rw), t), [rw, rh, 3]);
      x = tf.transpose(cols, [1, 0, 2]);
    }
    const crop = tf.slice(x, [top, left, 0], [th, tw, 3]);
    if (cfg.channels === 1) {
      const grey = tf.sum(tf.mul(crop, tf.tensor1d([...LUMA])), -1, true);
      return tf.reshape(tf.div(tf.sub(grey, cfg.mean[0]), cfg.std[0]), [1, th, tw, 1]) as tf.Tensor4D;
    }
    const y = tf.div(tf.sub(crop, tf.tensor1d([...cfg.mean])), tf.tensor1d([...cfg.std]));
    return tf.reshape(y, [1, th, tw, 3]) as tf.Tensor4D;
  });
}

/**
 * Images → [B, H, W, 3] float32, normalised, for a model (or its pretrained config, or explicit numbers).
 * uint8 / int inputs are 0–255; float32 inputs are taken as 0–1. An alpha channel is dropped. The resize is
 * computed in floating point (no rounding to uint8 in between). Host images (ImageData-like) are resampled
 * on the host; tensors on their backend, each image of a batch alone.
 */
export function preprocess(image: ImageInput, source: PreprocessSource, overrides: PreprocessOverrides = {}): tf.Tensor4D {
  const cfg = preprocessConfig(source, overrides);
  if (image instanceof tf.Tensor) {
    const ch = image.shape[image.rank - 1];
    if ((image.rank !== 3 && image.rank !== 4) || (ch !== 1 && ch !== 3 && ch !== 4) || image.shape.some((d) => d < 1)) {
      throw new Error(`preprocess: expected an image tensor [H, W, 1|3|4] or [B, H, W, 1|3|4], got shape [${image.shape}]`);
    }
    if (image.rank === 3) return preprocessTensor(image, cfg);
    return tf.tidy(() => tf.concat(tf.unstack(image).map((im) => preprocessTensor(im, cfg)), 0) as tf.Tensor4D);
  }
  if (image === null || typeof image !== 'object' || !('data' in image)) {
    throw new Error('preprocess: expected an ImageData-like { data, width, height } or an image tensor');
  }
  const { data, width: w, height: h } = image;
  if (!Number.isInteger(w) || !Number.isInteger(h) || w < 1 || h < 1) {
    throw new Error(`preprocess: width and height must be positive integers, got ${w}×${h}`);
  }
  const c = image.channels ?? data.length / (w * h);
  if ((c !== 1 && c !== 3 && c !== 4) || data.length !== w * h * c) {
    throw new Error(`preprocess: expected ${w}×${h}×(1, 3 or 4) values (grey, RGB or RGBA, row-major), got ${data.length}`);
  }
  const scale = data instanceof Float32Array ? 1 : 1 / 255;
  const rgb = new Float32Array(h * w * 3);
  for (let i = 0; i < h * w; i++) for (let k = 0; k < 3; k++) rgb[i * 3 + k] = data[i * c + (c === 1 ? 0 : k)]! * scale;
  const [rh, rw] = resizeTarget(h, w, cfg.size, cfg.cropPct, cfg.cropMode);
  const [top, left] = cropOffsets(rh, rw, cfg.size);
  const resized = rh === h && rw === w ? rgb : resampleBicubic(rgb, [h, w, 3], [rh, rw]);
  const [th, tw] = cfg.size;
  if (cfg.channels === 1) {
    const grey = new Float32Array(th * tw);
    for (let y = 0; y < th; y++) {
      for (let x = 0; x < tw; x++) {
        const src = ((top + y) * rw + left + x) * 3;
        const luma = LUMA[0] * resized[src]! + LUMA[1] * resized[src + 1]! + LUMA[2] * resized[src + 2]!;
        grey[y * tw + x] = (luma - cfg.mean[0]!) / cfg.std[0]!;
      }
    }
    return tf.tensor4d(grey, [1, th, tw, 1], 'float32');
  }
  const out = new Float32Array(th * tw * 3);
  for (let y = 0; y < th; y++) {
    for (let x = 0; x < tw; x++) {
      const src = ((top + y) * rw + left + x) * 3;
      const dst = (y * tw + x) * 3;
      for (let k = 0; k < 3; k++) out[dst + k] = (resized[src + k]! - cfg.mean[k]!) / cfg.std[k]!;
    }
  }
  return tf.tensor4d(out, [1, th, tw, 3], 'float32');
}
