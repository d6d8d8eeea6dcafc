/**
 * `classify(model, image, { topK })`: timm's eval transform from the model's pretrained config (the shared
 * `preprocess`), the forward pass, softmax and class names, for any classifier of the model contract.
 *
 * Images: an `ImageData` (or any `{ data, width, height, channels? }`, e.g. `@softbias/data`'s decoded PNG /
 * JPEG, gray included), a canvas / `OffscreenCanvas`, an `HTMLImageElement` / `ImageBitmap` /
 * `HTMLVideoElement` (drawn to a canvas), or a float32 tensor [H, W, 3|4] / [B, H, W, 3|4] of 0–1 pixels.
 * Files and bytes are decoded by `@softbias/data` (`decodeImageFile(path)`, `decodeImage(bytes)`): this
 * package is below it in the package graph and decodes nothing itself.
 */
import * as tf from '@tensorflow/tfjs-core';
import { InputError, assertImageBatch } from '../input.js';
import type { VisionModel } from './contract.js';
import { labelNamesFor } from './labels.js';
import { type ImageInput, type PreprocessOverrides, preprocess } from './preprocess.js';

/** Pixels with 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA) channels, row-major; bytes 0–255, Float32Array 0–1. */
export interface PixelImage {
  data: Uint8Array | Uint8ClampedArray | Float32Array;
  width: number;
  height: number;
  channels?: number;
}

/** Something that draws onto a 2D canvas: `HTMLImageElement`, `ImageBitmap`, `HTMLVideoElement`, `SVGImageElement`… */
export interface DrawableImage {
  readonly width: number;
  readonly height: number;
  readonly naturalWidth?: number;
  readonly naturalHeight?: number;
  readonly videoWidth?: number;
  readonly videoHeight?: number;
}

/** A canvas (`HTMLCanvasElement`, `OffscreenCanvas`): its 2D context's pixels are read. */
export interface CanvasLike {
  readonly width: number;
  readonly height: number;
  getContext(kind: '2d'): unknown;
}

export type ClassifyImage = PixelImage | tf.Tensor | CanvasLike | DrawableImage;

export interface ClassifyOptions extends PreprocessOverrides {
  /** How many classes to return, best first (default 5; at most `numClasses`). */
  topK?: number;
  /** Class names (length `numClasses`), instead of the checkpoint's own or ImageNet-1k's. */
  labels?: readonly string[];
}

export interface Prediction {
  /** The class name ('class <index>' when the model has none). */
  label: string;
  index: number;
  /** Softmax probability. */
  score: number;
}

interface Ctx2d {
  drawImage(image: unknown, x: number, y: number): void;
  getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray; width: number; height: number };
}

function isPixelImage(x: object): x is PixelImage {
  const d = (x as PixelImage).data;
  return d instanceof Uint8Array || d instanceof Uint8ClampedArray || d instanceof Float32Array;
}

function context2d(canvas: CanvasLike, what: string): Ctx2d {
  const ctx = canvas.getContext('2d') as Ctx2d | null;
  if (!ctx || typeof ctx.getImageData !== 'function') throw new InputError(`classify: cannot read the pixels of ${what} (no 2D context)`);
  return ctx;
}

/** A drawable's pixels through a canvas of its size (OffscreenCanvas, else a DOM canvas). */
function drawToPixels(image: DrawableImage): PixelImage {
  const w = image.naturalWidth || image.videoWidth || image.width;
  const h = image.naturalHeight || image.videoHeight || image.height;
  if (!(w > 0 && h > 0)) throw new InputError(`classify: the image has no pixels yet (${w}×${h}); wait for it to load (await img.decode())`);
  const g = globalThis as { OffscreenCanvas?: new (w: number, h: number) => CanvasLike; document?: { createElement(t: 'canvas'): CanvasLike & { width: number; height: number } } };
  let canvas: CanvasLike;
  if (g.OffscreenCanvas) canvas = new g.OffscreenCanvas(w, h);
  else if (g.document) {
    const c = g.document.createElement('canvas');
    c.width = w;
    c.height = h;
    canvas = c;
  } else {
    throw new InputError(
      'classify: no canvas to draw this image on (Node?); decode files with @softbias/data: classify(model, await decodeImageFile(path))',
    );
  }
  const ctx = context2d(canvas, 'the image');
  ctx.drawImage(image, 0, 0);
  return ctx.getImageData(0, 0, w, h);
}

/** Gray / gray + alpha → RGB (the shared preprocess takes 3 or 4 channels). */
function toRgb(img: PixelImage): ImageInput {
  const { width: w, height: h, data } = img;
  if (!Number.isInteger(w) || !Number.isInteger(h) || w < 1 || h < 1) {
    throw new InputError(`classify: width and height must be positive integers, got ${w}×${h}`);
  }
  const c = img.channels ?? data.length / (w * h);
  if (c !== 1 && c !== 2) return { data, width: w, height: h, channels: c };
  if (data.length !== w * h * c) throw new InputError(`classify: expected ${w}×${h}×${c} values, got ${data.length}`);
  const out = new (data instanceof Float32Array ? Float32Array : Uint8Array)(w * h * 3);
  for (let i = 0; i < w * h; i++) out.fill(data[i * c]!, 3 * i, 3 * i + 3);
  return { data: out, width: w, height: h, channels: 3 };
}

/** Any accepted image → what `preprocess` takes (tensors checked: float32, a non-empty batch). */
function toImageInput(image: ClassifyImage): ImageInput {
  if (image === null || image === undefined || typeof image !== 'object') {
    if (typeof image === 'string') {
      throw new InputError(
        `classify: got a path ('${image}'); decode it with @softbias/data: classify(model, await decodeImageFile(path))`,
      );
    }
    throw new InputError(`classify: expected an image (ImageData, canvas, image element, ImageBitmap, decoded pixels or a tensor), got ${image === null ? 'null' : typeof image}`);
  }
  if (image instanceof tf.Tensor || ('dataId' in image && 'dtype' in image)) {
    // One rule for tensors at every model entry: float32 only (int / bool refused with the conversion to use).
    assertImageBatch(image, { name: 'classify' });
    return image as tf.Tensor;
  }
  if (image instanceof Uint8Array || image instanceof ArrayBuffer) {
    throw new InputError('classify: got encoded bytes; decode them with @softbias/data: classify(model, await decodeImage(bytes))');
  }
  if (isPixelImage(image)) return toRgb(image);
  if (typeof (image as CanvasLike).getContext === 'function') {
    const c = image as CanvasLike;
    return context2d(c, 'the canvas').getImageData(0, 0, c.width, c.height);
  }
  if (typeof (image as DrawableImage).width === 'number') return drawToPixels(image as DrawableImage);
  throw new InputError('classify: expected an image (ImageData, canvas, image element, ImageBitmap, decoded pixels or a tensor)');
}

/**
 * Class probabilities of images: [B, numClasses] softmax of the model's logits on the preprocessed images
 * (a tensor the caller disposes). `overrides` change the transform (size, cropPct, mean, std).
 */
export function predictProbabilities(model: VisionModel, image: ClassifyImage, overrides: PreprocessOverrides = {}): tf.Tensor2D {
  if (!(model.numClasses > 0)) {
    throw new InputError(`classify: the model has no classifier (numClasses ${model.numClasses}); resetClassifier(n) or load a classifier checkpoint`);
  }
  const input = toImageInput(image);
  const x = preprocess(input, model, overrides);
  try {
    return tf.tidy(() => tf.softmax(model.forward(x) as tf.Tensor2D));
  } finally {
    x.dispose();
  }
}

/**
 * The `topK` best classes of each image of a batch (a [B, H, W, C] tensor or a list of images), best first.
 */
export async function classifyBatch(
  model: VisionModel,
  images: tf.Tensor | readonly ClassifyImage[],
  opts: ClassifyOptions = {},
): Promise<Prediction[][]> {
  const { topK = 5, labels, ...overrides } = opts;
  if (!(model.numClasses > 0)) {
    throw new InputError(`classify: the model has no classifier (numClasses ${model.numClasses}); resetClassifier(n) or load a classifier checkpoint`);
  }
  const names = labelNamesFor(model, labels);
  if (!Number.isInteger(topK) || topK < 1) throw new RangeError(`classify: topK must be a positive integer, got ${topK}`);
  const k = Math.min(topK, model.numClasses);
  const list = Array.isArray(images) ? images : [images as tf.Tensor];
  if (list.length === 0) throw new InputError('classify: no images given');
  const out: Prediction[][] = [];
  for (const image of list) {
    const probs = predictProbabilities(model, image, overrides);
    const top = tf.topk(probs, k);
    try {
      const [values, indices] = await Promise.all([top.values.data(), top.indices.data()]);
      const b = probs.shape[0];
      for (let i = 0; i < b; i++) {
        const row: Prediction[] = [];
        for (let j = 0; j < k; j++) {
          const index = indices[i * k + j]!;
          row.push({ label: names?.[index] ?? `class ${index}`, index, score: values[i * k + j]! });
        }
        out.push(row);
      }
    } finally {
      tf.dispose([probs, top.values, top.indices]);
    }
  }
  return out;
}

/**
 * The `topK` (default 5) best classes of one image, best first: `{ label, index, score }` with the softmax
 * probability and the class name (the checkpoint's own names, else ImageNet-1k's for a 1000-class model).
 */
export async function classify(model: VisionModel, image: ClassifyImage, opts: ClassifyOptions = {}): Promise<Prediction[]> {
  if (image instanceof tf.Tensor && image.rank === 4 && image.shape[0] !== 1) {
    throw new InputError(`classify: one image at a time (got a batch [${image.shape}]); use classifyBatch for batches`);
  }
  const [first] = await classifyBatch(model, [image], opts);
  return first!;
}
