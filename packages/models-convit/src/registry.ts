/**
 * The registered ConViT models: the paper's ConViT-Ti/S/B (timm `convit_*`), the "+" models with 64 dims per
 * head, and the DeiT twin of each base model (the same trunk with every block MHSA: `localUpToLayer: 0`).
 */
import type { ConvitOverrides } from './config.js';

export const IMAGENET_DEFAULT_MEAN: readonly [number, number, number] = [0.485, 0.456, 0.406];
export const IMAGENET_DEFAULT_STD: readonly [number, number, number] = [0.229, 0.224, 0.225];

/** Data config of a model, as timm's pretrained cfg. */
export interface PretrainedConfig {
  /** [C, H, W] of the reference weights. */
  inputSize: readonly [number, number, number];
  mean: readonly [number, number, number];
  std: readonly [number, number, number];
  /** Eval crop fraction: resize the short side to size / cropPct, then center-crop `size`. */
  cropPct: number;
  interpolation: 'bicubic';
  numClasses: number;
  /** Where timm's reference weights live (Hugging Face hub id), or null when none were released. */
  weights: string | null;
  /** Licence of those weights, or null when there are none. */
  license: string | null;
  firstConv: 'patch_embed.proj';
  classifier: 'head';
}

export interface ModelEntry {
  name: string;
  description: string;
  /** Architecture arguments (embedDim is the total width). */
  args: ConvitOverrides;
  pretrained: PretrainedConfig;
}

function data(weights: string | null): PretrainedConfig {
  return {
    inputSize: [3, 224, 224],
    mean: IMAGENET_DEFAULT_MEAN,
    std: IMAGENET_DEFAULT_STD,
    cropPct: 0.875,
    interpolation: 'bicubic',
    numClasses: 1000,
    weights,
    // timm's convit cfgs: the facebookresearch/convit weights are released under Apache-2.0.
    license: weights ? 'apache-2.0' : null,
    firstConv: 'patch_embed.proj',
    classifier: 'head',
  };
}

const trunk = { imgSize: 224, patchSize: 16, depth: 12, mlpRatio: 4, localityStrength: 1 } as const;

const ENTRIES: ModelEntry[] = [
  {
    name: 'convit_tiny',
    description: 'ConViT-Ti: 4 heads × 48 = 192 wide, GPSA in blocks 0–9 (timm convit_tiny)',
    args: { ...trunk, embedDim: 192, numHeads: 4, localUpToLayer: 10 },
    pretrained: data('timm/convit_tiny.fb_in1k'),
  },
  {
    name: 'convit_small',
    description: 'ConViT-S: 9 heads × 48 = 432 wide, GPSA in blocks 0–9 (timm convit_small)',
    args: { ...trunk, embedDim: 432, numHeads: 9, localUpToLayer: 10 },
    pretrained: data('timm/convit_small.fb_in1k'),
  },
  {
    name: 'convit_base',
    description: 'ConViT-B: 16 heads × 48 = 768 wide, GPSA in blocks 0–9 (timm convit_base)',
    args: { ...trunk, embedDim: 768, numHeads: 16, localUpToLayer: 10 },
    pretrained: data('timm/convit_base.fb_in1k'),
  },
  {
    name: 'convit_tiny_plus',
    description: 'ConViT-Ti+ (paper): 4 heads × 64 = 256 wide, GPSA in blocks 0–9; no reference weights',
    args: { ...trunk, embedDim: 256, numHeads: 4, localUpToLayer: 10 },
    pretrained: data(null),
  },
  {
    name: 'convit_small_plus',
    description: 'ConViT-S+ (paper): 9 heads × 64 = 576 wide, GPSA in blocks 0–9; no reference weights',
    args: { ...trunk, embedDim: 576, numHeads: 9, localUpToLayer: 10 },
    pretrained: data(null),
  },
  {
    name: 'convit_base_plus',
    description: 'ConViT-B+ (paper): 16 heads × 64 = 1024 wide, GPSA in blocks 0–9; no reference weights',
    args: { ...trunk, embedDim: 1024, numHeads: 16, localUpToLayer: 10 },
    pretrained: data(null),
  },
  {
    name: 'convit_tiny_deit',
    description: 'DeiT twin of convit_tiny: the same trunk with MHSA everywhere (localUpToLayer 0); ConViT module tree',
    args: { ...trunk, embedDim: 192, numHeads: 4, localUpToLayer: 0 },
    pretrained: data(null),
  },
  {
    name: 'convit_small_deit',
    description: 'DeiT twin of convit_small: the same trunk with MHSA everywhere (localUpToLayer 0); ConViT module tree',
    args: { ...trunk, embedDim: 432, numHeads: 9, localUpToLayer: 0 },
    pretrained: data(null),
  },
  {
    name: 'convit_base_deit',
    description: 'DeiT twin of convit_base: the same trunk with MHSA everywhere (localUpToLayer 0); ConViT module tree',
    args: { ...trunk, embedDim: 768, numHeads: 16, localUpToLayer: 0 },
    pretrained: data(null),
  },
];

export const MODEL_REGISTRY: ReadonlyMap<string, ModelEntry> = new Map(ENTRIES.map((e) => [e.name, e]));

/** Registered model names (optionally filtered by a substring or a `*` wildcard pattern). */
export function listModels(filter?: string): string[] {
  const names = [...MODEL_REGISTRY.keys()];
  if (!filter) return names;
  if (!filter.includes('*')) return names.filter((n) => n.includes(filter));
  const re = new RegExp(`^${filter.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  return names.filter((n) => re.test(n));
}

/** The registry entry of a model name; throws listing the registered names. */
export function getModelInfo(name: string): ModelEntry {
  const e = MODEL_REGISTRY.get(name);
  if (!e) {
    if (/^deit/.test(name)) {
      throw new Error(
        `'${name}' is a timm VisionTransformer (DeiT) model, not part of @softbias/models-convit; ` +
          `the DeiT twins here are ${listModels('*_deit').join(', ')} (ConViT's module tree with localUpToLayer 0)`,
      );
    }
    throw new Error(`unknown ConViT model '${name}'; registered: ${listModels().join(', ')}`);
  }
  return e;
}
