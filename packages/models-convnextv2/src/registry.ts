/**
 * The ConvNeXt V2 family, its sizes and the FCMAE file family for the one model registry of
 * `@softbias/tensor-ops/models`. `model.ts` registers them when it is evaluated (importing the package does
 * it); `registerConvNeXtV2(registry)` puts them into another registry.
 */
import {
  type ModelEntry,
  type ModelFamily,
  type ModelRegistry,
  type PretrainedConfig,
  type PretrainedTag,
  type VisionModel,
  imagenetConfig,
  models,
} from '@softbias/tensor-ops/models';
import { FAMILY, MODELS } from './config.js';
import { modelFromWeights } from './load.js';
import { createModel, type CreateModelOptions } from './model.js';

export const convnextv2Family: ModelFamily<VisionModel> = {
  name: FAMILY,
  description: 'ConvNeXt V2 classifier (timm convnextv2_*)',
  recognises: (names) => names.has('stem.0.weight') || names.has('downsample_layers.0.0.weight'),
  fromFile: (w, opts) => modelFromWeights(w, { ...opts, overrides: opts.overrides as CreateModelOptions | undefined }),
};

export const fcmaeFamily: ModelFamily<VisionModel> = {
  name: 'fcmae',
  description: 'FCMAE pre-training model (a ConvNeXt V2 encoder and decoder)',
  recognises: (names) => names.has('mask_token'),
  refusal:
    'a pre-training model, not a classifier: load it with loadFcmae (@softbias/models-convnextv2/fcmae) and turn its ' +
    'encoder into a classifier with encoderToClassifier',
};

/** Sizes with ImageNet-22k → 1k fine-tunes in timm at 224 and 384 px (huge: at 384 and 512 px only). */
const IN22K = new Set(['nano', 'tiny', 'base', 'large']);

/**
 * Every ConvNeXt V2 checkpoint timm lists for a size (timm's `default_cfgs`), the default
 * (`fcmae_ft_in1k`) first: the ImageNet-1k fine-tune, the ImageNet-22k → 1k fine-tunes (224 px, and 384 /
 * 512 px with crop 1.0 and 'squash' resizing), and the FCMAE pre-trained encoder (`fcmae`: no classifier and
 * no final norm). All CC-BY-NC-4.0 (timm's _cfgv2: 224 px, crop 0.875, bicubic, ImageNet mean / std).
 */
export function convnextv2Tags(name: string): PretrainedTag[] {
  const size = name.slice('convnextv2_'.length);
  const tag = (t: string, over: Partial<PretrainedConfig>, extra: Partial<PretrainedTag> = {}): PretrainedTag => ({
    tag: t,
    hubId: `timm/${name}.${t}`,
    pretrainedConfig: imagenetConfig({
      weights: `timm/${name}.${t}`,
      license: 'CC-BY-NC-4.0',
      firstConv: 'stem.0',
      classifier: 'head.fc',
      ...over,
    }),
    ...extra,
  });
  const small = size === 'atto' || size === 'femto' || size === 'pico';
  const hi = (px: number) => tag(`fcmae_ft_in22k_in1k_${px}`, { inputSize: [3, px, px], cropPct: 1, cropMode: 'squash' });
  return [
    tag('fcmae_ft_in1k', { testInputSize: [3, 288, 288], testCropPct: small ? 0.95 : 1 }),
    ...(IN22K.has(size) ? [tag('fcmae_ft_in22k_in1k', { testInputSize: [3, 288, 288], testCropPct: 1 }), hi(384)] : []),
    ...(size === 'huge' ? [hi(384), hi(512)] : []),
    tag(
      'fcmae',
      { numClasses: 0 },
      {
        encoderOnly: {
          absent: ['head.norm.', 'head.fc.'],
          note: 'an FCMAE pre-trained encoder (no classifier and no final norm: head.norm keeps its initial ones / zeros)',
        },
      },
    ),
  ];
}

/** The registry entries of the registered sizes. */
export const CONVNEXTV2_ENTRIES: readonly ModelEntry<VisionModel>[] = MODELS.map((e) => ({
  name: e.name,
  family: FAMILY,
  description: `ConvNeXt V2 ${e.name.slice('convnextv2_'.length)}: depths ${e.depths.join('-')}, dims ${e.dims.join('-')} (${e.paperParamsM} M parameters)`,
  pretrainedConfig: e.pretrainedConfig,
  tags: convnextv2Tags(e.name),
  create: (overrides = {}) => createModel(e.name, overrides as CreateModelOptions),
}));

/** Register the families and sizes (idempotent: the same objects again are a no-op). */
export function registerConvNeXtV2(registry: ModelRegistry<VisionModel> = models): void {
  registry.registerFamily(convnextv2Family);
  registry.registerFamily(fcmaeFamily);
  registry.register(...CONVNEXTV2_ENTRIES);
}
