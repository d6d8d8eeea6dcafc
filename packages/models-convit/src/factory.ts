/**
 * Building ConViT models: by registered name (`createModel`), from a weights file (`loadModel`), and the
 * registration of the family and its names into `@softbias/tensor-ops/models`' one `models` registry.
 */
import type * as tf from '@tensorflow/tfjs-core';
import {
  type FeatureInfo,
  type FeaturesOnlyOptions,
  type FromFileOptions,
  type ImageInput,
  type ModelFamily,
  type PreprocessConfig,
  type PretrainedConfig,
  type PretrainedCreateOptions,
  type VisionModel,
  type WeightsFile,
  type WeightsInput,
  checkArchitecture,
  checkWeights,
  createPretrained,
  FeatureModel,
  models,
  preprocess as preprocessImage,
  readWeights,
  adoptFileMetadata,
} from '@softbias/tensor-ops/models';
import { type ConvitOverrides, parameterShapes, resolveConfig } from './config.js';
import { CONVIT_FAMILY, CONVIT_MODELS, convitModelInfo } from './registry.js';
import { configFromCheckpoint, hasSoftbiasConfig, refuseTimmDeit, shapesOf } from './checkpoint.js';
import { ConViT, type LoadWeightsOptions } from './model.js';

function pretrainedFor(entry: { pretrained: PretrainedConfig }, config: ConViT['config']): PretrainedConfig {
  return {
    ...entry.pretrained,
    inputSize: [config.inChans, config.imgSize[0], config.imgSize[1]],
    numClasses: config.numClasses,
  };
}

/** `createModel`'s featuresOnly options: `outIndices` are block indices (default the last 3, as timm's ViTs). */
export interface FeaturesOnly extends FeaturesOnlyOptions {
  featuresOnly: true;
}

/** Each block's output as a feature map (timm's `feature_info`): [B, H / patch, W / patch, embedDim]. */
export function convitFeatureInfo(config: Pick<ConViT['config'], 'depth' | 'embedDim' | 'patchSize'>): FeatureInfo[] {
  return Array.from({ length: config.depth }, (_, index) => ({
    index,
    module: `blocks.${index}`,
    numChs: config.embedDim,
    reduction: config.patchSize,
  }));
}

/**
 * Build a registered model. `overrides` are timm's constructor arguments in camelCase (`embedDim` = total
 * width), plus `mixers`, `seed` and the dropout rates. Weights are initialised as timm (seeded).
 * With `featuresOnly: true`, a `FeatureModel` whose `forward` returns the outputs of the blocks in
 * `outIndices` (default the last 3) as NHWC maps [B, H / 16, W / 16, C] (the class token left out), without
 * a classifier.
 */
export function createModel(name: string, overrides: ConvitOverrides & PretrainedCreateOptions & FeaturesOnly): Promise<FeatureModel<ConViT>>;
export function createModel(name: string, overrides: ConvitOverrides & PretrainedCreateOptions & { featuresOnly?: false }): Promise<ConViT>;
export function createModel(name: string, overrides: ConvitOverrides & FeaturesOnly & { pretrained?: false }): FeatureModel<ConViT>;
export function createModel(name: string, overrides?: ConvitOverrides & { featuresOnly?: false; pretrained?: false }): ConViT;
export function createModel(
  name: string,
  overrides: ConvitOverrides & { featuresOnly?: boolean; outIndices?: FeaturesOnlyOptions['outIndices']; pretrained?: boolean | string } = {},
): ConViT | FeatureModel<ConViT> | Promise<ConViT | FeatureModel<ConViT>> {
  if (overrides.pretrained) return createPretrainedModel(name, overrides as ConvitOverrides & PretrainedCreateOptions & { featuresOnly?: boolean });
  const { featuresOnly, outIndices, pretrained: _p, ...rest } = overrides;
  const entry = convitModelInfo(name);
  if (!featuresOnly) {
    if (outIndices !== undefined) throw new Error('createModel: outIndices needs featuresOnly: true');
    const config = resolveConfig(entry.args, rest);
    return new ConViT(config, { name, pretrained: pretrainedFor(entry, config) });
  }
  const config = resolveConfig(entry.args, { ...rest, numClasses: 0 });
  const model = new ConViT(config, { name, pretrained: pretrainedFor(entry, config) });
  try {
    return new FeatureModel(model, convitFeatureInfo(config), { outIndices: outIndices ?? Math.min(3, config.depth) });
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/**
 * `createModel(name, { pretrained: true | tag | hub id })`: the registered default tag (`fb_in1k`), or the one
 * named, from the hub (`fromPretrained`, cached), with the architecture overrides, a new `numClasses`
 * classifier, or the block feature maps (`featuresOnly`).
 */
async function createPretrainedModel(
  name: string,
  opts: ConvitOverrides & PretrainedCreateOptions & { featuresOnly?: boolean; outIndices?: FeaturesOnlyOptions['outIndices'] },
): Promise<ConViT | FeatureModel<ConViT>> {
  const { featuresOnly, outIndices, ...rest } = opts;
  const model = await createPretrained<ConViT>(name, featuresOnly ? { ...rest, numClasses: 0 } : rest);
  if (!featuresOnly) return model;
  try {
    return new FeatureModel(model, convitFeatureInfo(model.config), { outIndices: outIndices ?? Math.min(3, model.config.depth) });
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/** Rebuild the model a (read) weights file holds: its architecture checked against the file before allocating. */
async function fromWeightsFile(
  w: WeightsFile,
  overrides: ConvitOverrides,
  opts: Omit<LoadWeightsOptions, 'skipHead'>,
): Promise<ConViT> {
  const shapes = shapesOf(w);
  refuseTimmDeit(shapes, undefined, hasSoftbiasConfig(w));
  const config = configFromCheckpoint(w, shapes, overrides);
  checkArchitecture('ConViT', { imageSize: config.imgSize, depth: config.depth, width: config.embedDim });
  const strict = opts.strict ?? true;
  // pos_embed for another grid is resampled by the loader: its shape is checked there.
  checkWeights('this ConViT architecture', w, parameterShapes(config), {
    strict,
    allowIntegerCast: opts.allowIntegerCast ?? false,
    equivalent: (name, want, got) => name === 'pos_embed' && got.length === 3 && got[0] === 1 && got[2] === want[2],
  });
  const entry = w.arch ? CONVIT_MODELS.get(w.arch) : undefined;
  const model = new ConViT(config, entry ? { name: entry.name, pretrained: pretrainedFor(entry, config) } : {});
  try {
    await model.loadWeights(w, opts);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

/**
 * Rebuild a model from a weights file: its stored config (files from `saveWeights`), or else the
 * architecture implied by timm key names and shapes; then load the weights strictly.
 */
export async function loadModel(
  source: WeightsInput,
  overrides: ConvitOverrides = {},
  opts: Omit<LoadWeightsOptions, 'skipHead'> = {},
): Promise<ConViT> {
  const w = await readWeights(source, {
    ...(opts.allowNonFinite !== undefined ? { allowNonFinite: opts.allowNonFinite } : {}),
    ...(opts.allowIntegerCast !== undefined ? { allowIntegerCast: opts.allowIntegerCast } : {}),
  });
  const model = await fromWeightsFile(w, overrides, opts);
  adoptFileMetadata(model, w); // its class names and the preprocessing it was trained with
  return model;
}

/**
 * timm's eval transform for a model (a built model, a registered name, or an explicit config): resize the
 * short side to size / cropPct (bicubic, antialiased), center-crop, scale to [0, 1], normalise with mean/std.
 * Returns [1, H, W, 3] float32 NHWC. The same transform as `preprocess` from `@softbias/tensor-ops/models`.
 */
export function preprocess(image: ImageInput, model: ConViT | string | PreprocessConfig): tf.Tensor4D {
  if (model instanceof ConViT) return model.preprocess(image);
  if (typeof model === 'string') return preprocessImage(image, convitModelInfo(model).pretrained);
  return preprocessImage(image, model);
}

/** The ConViT family in the one model registry: its files (old `library` form too) and its names. */
export const convitFamily: ModelFamily<VisionModel> = {
  name: CONVIT_FAMILY,
  description: 'ConViT / DeiT-twin vision transformers (@softbias/models-convit)',
  libraries: ['@softbias/models-convit'],
  recognises: (names) => names.has('cls_token') && names.has('patch_embed.proj.weight') && names.has('blocks.0.norm1.weight'),
  fromFile: (w: WeightsFile, opts: FromFileOptions) => {
    const { overrides, seed, ...rest } = opts;
    const o = { ...(overrides as ConvitOverrides | undefined), ...(seed !== undefined ? { seed } : {}) };
    return fromWeightsFile(w, o, rest);
  },
};

models.registerFamily(convitFamily);
models.register(
  ...[...CONVIT_MODELS.values()].map((e) => ({
    name: e.name,
    family: CONVIT_FAMILY,
    description: e.description,
    pretrainedConfig: e.pretrained,
    tags: e.tags,
    create: (overrides?: Record<string, unknown>) => createModel(e.name, overrides as ConvitOverrides),
  })),
);
