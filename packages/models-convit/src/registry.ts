/**
 * The registered ConViT models: the paper's ConViT-Ti/S/B (timm `convit_*`), the "+" models with 64 dims per
 * head, and the DeiT twin of each base model (the same trunk with every block MHSA: `localUpToLayer: 0`); and
 * softbias' own small Fashion-MNIST ConViT and its DeiT twin (`convit_fmnist`, `convit_fmnist_deit`: what
 * `softbias demo` trains and the web app fine-tunes).
 */
import { type PretrainedConfig, type PretrainedTag, imagenetConfig } from '@softbias/tensor-ops/models';
import type { ConvitConfig, ConvitOverrides } from './config.js';

/** The family name ConViT models register under in `@softbias/tensor-ops/models`' `models` registry. */
export const CONVIT_FAMILY = 'convit';

/** ConViT's registered names: their architecture arguments and pretrained config. */
export interface ModelEntry {
  name: string;
  description: string;
  /** Architecture arguments (embedDim is the total width). */
  args: ConvitOverrides;
  pretrained: PretrainedConfig;
  /** The released checkpoints (timm tags); the default first. Empty when none were released. */
  tags: readonly PretrainedTag[];
}

function data(weights: string | null): PretrainedConfig {
  return imagenetConfig({
    weights,
    // timm's convit cfgs: the facebookresearch/convit weights are released under Apache-2.0.
    license: weights ? 'apache-2.0' : null,
    firstConv: 'patch_embed.proj',
    classifier: 'head',
  });
}

/**
 * Fashion-MNIST's normalisation (the training set's pixel mean and std in [0, 1]; @softbias/data's
 * FASHION_MNIST_MEAN / FASHION_MNIST_STD, checked equal in the web app's spec), for every channel.
 */
const FMNIST_MEAN = 0.2860406;
const FMNIST_STD = 0.3530242;

/** The small Fashion-MNIST models' data config: 28×28 grey, the whole image (no eval crop), ten classes. */
function fashionMnist(): PretrainedConfig {
  return {
    inputSize: [1, 28, 28],
    cropPct: 1,
    interpolation: 'bilinear',
    mean: [FMNIST_MEAN, FMNIST_MEAN, FMNIST_MEAN],
    std: [FMNIST_STD, FMNIST_STD, FMNIST_STD],
    numClasses: 10,
    weights: null,
    license: null,
    firstConv: 'patch_embed.proj',
    classifier: 'head',
  };
}

/** The pretrained config of a model built from a bare config (no registered name): ImageNet's, at its size. */
export function defaultPretrainedConfig(config: Pick<ConvitConfig, 'inChans' | 'imgSize' | 'numClasses'>): PretrainedConfig {
  return { ...data(null), inputSize: [config.inChans, config.imgSize[0], config.imgSize[1]], numClasses: config.numClasses };
}

/**
 * timm's `default_cfgs` for ConViT: one checkpoint per released size, `<name>.fb_in1k` (the
 * facebookresearch/convit ImageNet-1k weights): 224 px, crop 0.875, bicubic, ImageNet mean / std, 1000
 * classes, a fixed input size.
 */
function tagsOf(name: string, pretrained: PretrainedConfig): readonly PretrainedTag[] {
  return pretrained.weights === null ? [] : [{ tag: 'fb_in1k', hubId: `timm/${name}.fb_in1k`, pretrainedConfig: pretrained }];
}

const trunk = { imgSize: 224, patchSize: 16, depth: 12, mlpRatio: 4, localityStrength: 1 } as const;

/**
 * The small Fashion-MNIST trunk (softbias demo's): 28×28 grey, 4 px patches (a 7×7 grid), 4 heads × 16 = 64
 * wide, depth 6, MLP ratio 2, stochastic depth 0.05, ten classes.
 */
const fmnist = { imgSize: 28, patchSize: 4, inChans: 1, numClasses: 10, embedDim: 64, depth: 6, numHeads: 4, mlpRatio: 2, dropPathRate: 0.05, localityStrength: 1 } as const;

const UNTAGGED: Omit<ModelEntry, 'tags'>[] = [
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
  {
    name: 'convit_fmnist',
    description:
      "softbias demo's Fashion-MNIST ConViT: 28×28 grey, 4 px patches, 4 heads × 16 = 64 wide, depth 6, GPSA in blocks 0–3; " +
      'no reference weights (the web app ships one `softbias demo` trained)',
    args: { ...fmnist, localUpToLayer: 4 },
    pretrained: fashionMnist(),
  },
  {
    name: 'convit_fmnist_deit',
    description: 'DeiT twin of convit_fmnist: the same trunk with MHSA everywhere (localUpToLayer 0); ConViT module tree',
    args: { ...fmnist, localUpToLayer: 0 },
    pretrained: fashionMnist(),
  },
];

const ENTRIES: ModelEntry[] = UNTAGGED.map((e) => ({ ...e, tags: tagsOf(e.name, e.pretrained) }));

/** The registered ConViT models by name (in registration order). */
export const CONVIT_MODELS: ReadonlyMap<string, ModelEntry> = new Map(ENTRIES.map((e) => [e.name, e]));

/**
 * @deprecated Use `models.get(name)` / `models.list({ family: 'convit' })` from `@softbias/tensor-ops/models`
 * (the one registry of every family); this alias goes in the next minor release.
 */
export const MODEL_REGISTRY: ReadonlyMap<string, ModelEntry> = CONVIT_MODELS;

function matches(filter: string): (n: string) => boolean {
  if (!filter.includes('*')) return (n) => n.includes(filter);
  const re = new RegExp(`^${filter.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  return (n) => re.test(n);
}

/** Registered ConViT names (optionally filtered by a substring or a `*` wildcard pattern). */
export function listModels(filter?: string): string[] {
  const names = [...CONVIT_MODELS.keys()];
  return filter ? names.filter(matches(filter)) : names;
}

/** The entry of a ConViT model name; throws listing the registered names (and pointing deit_* elsewhere). */
export function convitModelInfo(name: string): ModelEntry {
  const e = CONVIT_MODELS.get(name);
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

/** @deprecated Use `models.get(name)` from `@softbias/tensor-ops/models` (or `convitModelInfo` for the architecture arguments). */
export const getModelInfo: (name: string) => ModelEntry = convitModelInfo;
