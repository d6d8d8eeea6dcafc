import './factory.js'; // registers the ConViT family and names into @softbias/tensor-ops/models' `models`
export {
  ConViT,
  ConVit,
  type BlockHooks,
  type LoadWeightsOptions,
  type LoadWeightsResult,
  type ForwardHeadOptions,
  type ForwardIntermediatesOptions,
  type ForwardIntermediatesResult,
} from './model.js';
export { Block, type BlockContext } from './blocks.js';
export {
  type IntrospectionInput,
  type IntrospectionOptions,
  type LayerAttention,
  type AttentionMapOptions,
} from './introspection.js';
export { createModel, loadModel, preprocess, convitFamily, convitFeatureInfo, type FeaturesOnly } from './factory.js';
export {
  type ConvitConfig,
  type ConvitOverrides,
  type ConvitMixerSpec,
  type GpsaMixerSpec,
  CONVIT_DEFAULTS,
  resolveConfig,
  dropPathRates,
  parameterShapes,
} from './config.js';
export {
  listModels,
  getModelInfo,
  convitModelInfo,
  MODEL_REGISTRY,
  CONVIT_MODELS,
  CONVIT_FAMILY,
  type ModelEntry,
} from './registry.js';
export {
  /** @deprecated Import from `@softbias/tensor-ops/models` (one home for every family). */
  IMAGENET_DEFAULT_MEAN,
  /** @deprecated Import from `@softbias/tensor-ops/models` (one home for every family). */
  IMAGENET_DEFAULT_STD,
  type PretrainedConfig,
  type ImageInput,
  type PreprocessConfig,
} from '@softbias/tensor-ops/models';
