/**
 * Registers the ConvNeXt V2 family, its sizes and the FCMAE file family into the one model registry of
 * `@softbias/tensor-ops/models` (importing the package does it).
 */
import { models, type ModelEntry, type ModelFamily, type VisionModel } from '@softbias/tensor-ops/models';
import { MODELS } from './config.js';
import { loadModel, modelFromWeights } from './load.js';
import { FAMILY, createModel, type CreateModelOptions } from './model.js';

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

/** The registry entries of the registered sizes. */
export const CONVNEXTV2_ENTRIES: readonly ModelEntry<VisionModel>[] = MODELS.map((e) => ({
  name: e.name,
  family: FAMILY,
  description: `ConvNeXt V2 ${e.name.slice('convnextv2_'.length)}: depths ${e.depths.join('-')}, dims ${e.dims.join('-')} (${e.paperParamsM} M parameters)`,
  pretrainedConfig: e.pretrainedConfig,
  create: (overrides = {}) => createModel(e.name, overrides as CreateModelOptions),
}));

models.registerFamily(convnextv2Family);
models.registerFamily(fcmaeFamily);
models.register(...CONVNEXTV2_ENTRIES);

export { loadModel };
