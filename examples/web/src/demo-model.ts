/**
 * What the page does with a model, free of the DOM: load one from safetensors bytes (any registered family,
 * through the one registry of `@softbias/tensor-ops/models`), classify a preprocessed image, and read a
 * ConViT's gates and attention maps.
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  labelNamesFor,
  models,
  preprocess,
  readWeights,
  type PretrainedConfig,
  type VisionModel,
} from '@softbias/tensor-ops/models';
import { ConViT } from '@softbias/models-convit'; // also registers the ConViT family
import { ConvNeXtV2 } from '@softbias/models-convnextv2'; // also registers ConvNeXt V2 (and FCMAE files)

/** The demo's ConViT trained on Fashion-MNIST (`softbias demo`'s model, float16; scripts/make-assets.mjs), relative to the page. */
export const SHIPPED_MODEL = 'models/fashion-mnist-convit.safetensors';

/** `pretrained`: the eval transform's numbers (the model's, with the file's own `pretrained_cfg` over them). */
export type DemoModel =
  | { kind: 'convit'; model: ConViT; labels: string[] | null; pretrained: PretrainedConfig; description: string }
  | { kind: 'classifier'; family: string; model: VisionModel; labels: string[] | null; pretrained: PretrainedConfig; description: string };

/**
 * Class names for the top-5: the file's own (`__metadata__.labels` / its config, remembered by
 * `models.fromFile`), else ImageNet-1k's for a 1000-class model (`labelNamesFor`, what `classify` uses).
 */
function labelsOf(model: VisionModel): string[] | null {
  const l = labelNamesFor(model); // names that do not fit the classifier are not used: 'class i'
  return l ? [...l] : null;
}

function describe(model: VisionModel, family: string): string {
  const params = `${(model.numParameters() / 1e6).toFixed(2)} M parameters`;
  if (model instanceof ConViT) {
    const c = model.config;
    const gpsa = model.blocks.items.filter((b) => b.attn.kind === 'gpsa').length;
    return (
      `${model.name}: ${c.imgSize[0]}×${c.imgSize[1]} input, ${model.gridSize[0]}×${model.gridSize[1]} patches of ${c.patchSize} px, ` +
      `${c.embedDim} wide, ${c.numHeads} heads, ${c.depth} blocks (${gpsa} GPSA), ${model.numClasses} classes, ${params}`
    );
  }
  if (model instanceof ConvNeXtV2) {
    const c = model.config;
    return (
      `ConvNeXt V2 (${c.name ?? 'custom'}): depths ${c.depths.join('-')}, dims ${c.dims.join('-')}, ${model.numClasses} classes, ` +
      `${params} (no attention maps: a pure ConvNet)`
    );
  }
  return `${family}: ${model.numClasses} classes, ${params}`;
}

/** Rebuild the model a weights file holds (its family told by the registry), with its class names. */
export async function loadDemoModel(bytes: Uint8Array): Promise<DemoModel> {
  const file = await readWeights(bytes);
  const family = models.familyOf(file).name;
  const model = await models.fromFile(file);
  const labels = labelsOf(model);
  // The preprocessing it was trained with: `models.fromFile` restores the file's `__metadata__.pretrained_cfg`.
  const pretrained = model.pretrainedConfig;
  const description = describe(model, family);
  if (model instanceof ConViT) return { kind: 'convit', model, labels, pretrained, description };
  return { kind: 'classifier', family, model, labels, pretrained, description };
}

/** An RGBA image as the browser decodes it. */
export interface Rgba {
  data: Uint8ClampedArray | Uint8Array;
  width: number;
  height: number;
}

/** Input channels the model takes (1: grey, e.g. the demo's Fashion-MNIST ConViT; else 3). */
export function inputChannels(m: DemoModel): number {
  const c = (m.model as { config?: { inChans?: unknown } }).config?.inChans;
  return typeof c === 'number' ? c : 3;
}

/** ITU-R BT.601 luma weights: RGB → grey for a one-channel model. */
const LUMA = [0.299, 0.587, 0.114] as const;

/**
 * The model's eval transform (timm's: resize, crop, normalise; the same for every family) → [1, H, W, C]. A
 * grey model (C = 1) gets the luma of the normalised RGB (normalised with its one mean and std, the same on
 * each channel, so this is the normalised luma of the resized image: a grey image's own values).
 */
export function preprocessFor(m: DemoModel, image: Rgba): tf.Tensor4D {
  const input = { data: image.data, width: image.width, height: image.height, channels: 4 };
  const size = m.kind === 'convit' ? { size: m.model.config.imgSize } : {};
  if (inputChannels(m) !== 1) return preprocess(input, m.pretrained, size);
  const { mean, std } = m.pretrained;
  const m0 = mean[0]!;
  const s0 = std[0]!;
  return tf.tidy(() => {
    const rgb = preprocess(input, m.pretrained, { ...size, mean: [m0, m0, m0], std: [s0, s0, s0] });
    return tf.sum(tf.mul(rgb, LUMA as unknown as number[]), -1, true) as tf.Tensor4D;
  });
}

/** The preprocessed input back in [0, 1] RGB (for display), [H, W, 3] row-major. */
export async function displayPixels(m: DemoModel, x: tf.Tensor4D): Promise<{ rgb: Float32Array; height: number; width: number }> {
  const { mean, std } = m.pretrained;
  const data = (await x.data()) as Float32Array;
  const [, height, width, c] = x.shape;
  const rgb = new Float32Array(height * width * 3);
  for (let i = 0; i < rgb.length; i++) {
    // A grey input is drawn as grey (its one channel on R, G and B).
    const k = c === 1 ? 0 : i % 3;
    const v = c === 1 ? data[Math.floor(i / 3)]! : data[i]!;
    rgb[i] = Math.min(1, Math.max(0, v * std[k]! + mean[k]!));
  }
  return { rgb, height, width };
}

export interface Prediction {
  index: number;
  label: string;
  probability: number;
  logit: number;
}

export async function classify(m: DemoModel, x: tf.Tensor4D): Promise<{ logits: Float32Array; top5: Prediction[] }> {
  const logitsT = m.model.forward(x);
  const probsT = tf.softmax(logitsT);
  const logits = (await logitsT.data()) as Float32Array;
  const probs = (await probsT.data()) as Float32Array;
  tf.dispose([logitsT, probsT]);
  const order = Array.from(logits.keys()).sort((a, b) => logits[b]! - logits[a]!);
  const top5 = order.slice(0, 5).map((index) => ({
    index,
    label: m.labels?.[index] ?? `class ${index}`,
    probability: probs[index]!,
    logit: logits[index]!,
  }));
  return { logits, top5 };
}

/** One layer's attention for one image, on the host: maps [heads, T, T] (T = prefix + patches). */
export interface LayerMaps {
  layer: number;
  kind: string;
  heads: number;
  /** Tokens before the patches on both axes (1 = the class token, MHSA layers after the GPSA ones). */
  prefix: number;
  tokens: number;
  mixed: Float32Array;
  /** GPSA only: content and positional attention over the patches, [heads, N, N]. */
  content: Float32Array | null;
  positional: Float32Array | null;
}

/** Every attention layer's maps for a single image x [1, H, W, 3]. */
export async function attentionOf(model: ConViT, x: tf.Tensor4D): Promise<LayerMaps[]> {
  const maps = model.attentionMaps(x);
  const out: LayerMaps[] = [];
  try {
    for (const m of maps) {
      const [, heads, tokens] = m.mixed.shape as [number, number, number, number];
      out.push({
        layer: m.layer,
        kind: m.kind,
        heads,
        prefix: m.numPrefixTokens,
        tokens,
        mixed: (await m.mixed.data()) as Float32Array,
        content: m.content ? ((await m.content.data()) as Float32Array) : null,
        positional: m.positional ? ((await m.positional.data()) as Float32Array) : null,
      });
    }
  } finally {
    for (const m of maps) tf.dispose([m.mixed, m.content, m.positional].filter((t): t is tf.Tensor => t !== null));
  }
  return out;
}

export type Which = 'mixed' | 'content' | 'positional';

/**
 * The attention of query patch (row, col) over the key patches, one [rows·cols] map per head. `content` and
 * `positional` exist for GPSA layers only (others fall back to `mixed`).
 */
export function queryMaps(l: LayerMaps, grid: readonly [number, number], row: number, col: number, which: Which): Float32Array[] {
  const [rows, cols] = grid;
  const n = rows * cols;
  const src = which === 'content' && l.content ? l.content : which === 'positional' && l.positional ? l.positional : l.mixed;
  const prefix = src === l.mixed ? l.prefix : 0;
  const T = src === l.mixed ? l.tokens : n;
  const q = prefix + row * cols + col;
  const out: Float32Array[] = [];
  for (let h = 0; h < l.heads; h++) {
    const base = (h * T + q) * T + prefix;
    out.push(src.slice(base, base + n));
  }
  return out;
}
