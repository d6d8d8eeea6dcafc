/**
 * What the page does with a model, free of the DOM: load one from safetensors bytes (ConViT or ConvNeXt V2,
 * recognised from the file), classify a preprocessed image, and read its gates and attention maps.
 */
import * as tf from '@tensorflow/tfjs-core';
import { parseSafetensors, type SafetensorsFile } from '@softbias/tensor-ops';
import { ConVit, loadModel as loadConvit } from '@softbias/models-convit';
import { ConvNeXtV2, loadModel as loadConvnext } from '@softbias/models-convnextv2';

export type DemoModel =
  | { kind: 'convit'; model: ConVit; labels: string[] | null; description: string }
  | { kind: 'convnextv2'; model: ConvNeXtV2; labels: string[] | null; description: string };

/** Which family a weights file holds: its saved config, else its timm / official key names. */
export function familyOf(file: SafetensorsFile): 'convit' | 'convnextv2' {
  const names = new Set(file.names());
  const config = file.metadata['config'];
  if (config) {
    try {
      const c = JSON.parse(config) as { architecture?: string };
      if (c.architecture === 'convnextv2') return 'convnextv2';
      if (c.architecture === 'fcmae') throw new Error('this file holds an FCMAE pre-training model: fine-tune it into a classifier first');
    } catch (e) {
      if (!(e instanceof SyntaxError)) throw e;
    }
  }
  if (file.metadata['library'] === '@softbias/models-convit' || names.has('cls_token') || names.has('blocks.0.attn.proj.weight')) {
    return 'convit';
  }
  if (names.has('stem.0.weight') || names.has('downsample_layers.0.0.weight')) return 'convnextv2';
  throw new Error(
    'not a ConViT or ConvNeXt V2 checkpoint: expected timm names such as cls_token / blocks.0.attn.* (ConViT) or ' +
      'stem.0.weight / downsample_layers.0.0.weight (ConvNeXt V2)',
  );
}

/** Class names stored in `__metadata__.labels` (a JSON array of strings), when they fit the classifier. */
function labelsOf(file: SafetensorsFile, numClasses: number): string[] | null {
  const raw = file.metadata['labels'];
  if (!raw) return null;
  try {
    const l = JSON.parse(raw) as unknown;
    if (Array.isArray(l) && l.length === numClasses && l.every((s) => typeof s === 'string')) return l as string[];
  } catch {
    /* not JSON: ignore */
  }
  return null;
}

export async function loadDemoModel(bytes: Uint8Array): Promise<DemoModel> {
  const file = parseSafetensors(bytes);
  if (familyOf(file) === 'convit') {
    const model = await loadConvit(file);
    const c = model.config;
    const gpsa = model.blocks.items.filter((b) => b.attn.kind === 'gpsa').length;
    return {
      kind: 'convit',
      model,
      labels: labelsOf(file, model.numClasses),
      description:
        `${model.name}: ${c.imgSize[0]}×${c.imgSize[1]} input, ${model.gridSize[0]}×${model.gridSize[1]} patches of ${c.patchSize} px, ` +
        `${c.embedDim} wide, ${c.numHeads} heads, ${c.depth} blocks (${gpsa} GPSA), ${model.numClasses} classes, ` +
        `${(model.numParameters() / 1e6).toFixed(2)} M parameters`,
    };
  }
  const model = await loadConvnext(file);
  const c = model.config;
  return {
    kind: 'convnextv2',
    model,
    labels: labelsOf(file, model.numClasses),
    description:
      `ConvNeXt V2 (${c.name ?? 'custom'}): depths ${c.depths.join('-')}, dims ${c.dims.join('-')}, ${model.numClasses} classes, ` +
      `${(model.numParameters() / 1e6).toFixed(2)} M parameters (no attention maps: a pure ConvNet)`,
  };
}

/** An RGBA image as the browser decodes it. */
export interface Rgba {
  data: Uint8ClampedArray | Uint8Array;
  width: number;
  height: number;
}

/** The model's eval transform (resize, crop, normalise) → [1, H, W, 3]. */
export function preprocessFor(m: DemoModel, image: Rgba): tf.Tensor4D {
  const input = { data: image.data, width: image.width, height: image.height, channels: 4 as const };
  return m.kind === 'convit' ? m.model.preprocess(input) : m.model.preprocess(input);
}

/** The preprocessed input back in [0, 1] RGB (for display), [H, W, 3] row-major. */
export async function displayPixels(m: DemoModel, x: tf.Tensor4D): Promise<{ rgb: Float32Array; height: number; width: number }> {
  const p = m.kind === 'convit' ? m.model.pretrainedConfig : m.model.pretrained;
  const mean = p?.mean ?? [0.485, 0.456, 0.406];
  const std = p?.std ?? [0.229, 0.224, 0.225];
  const data = (await x.data()) as Float32Array;
  const [, height, width] = x.shape;
  const rgb = new Float32Array(height * width * 3);
  for (let i = 0; i < rgb.length; i++) rgb[i] = Math.min(1, Math.max(0, data[i]! * std[i % 3]! + mean[i % 3]!));
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
export async function attentionOf(model: ConVit, x: tf.Tensor4D): Promise<LayerMaps[]> {
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
