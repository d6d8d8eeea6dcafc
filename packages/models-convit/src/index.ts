export {
  ConVit,
  Block,
  createModel,
  loadModel,
  preprocess,
  type LoadWeightsOptions,
  type LoadWeightsResult,
  type ForwardHeadOptions,
  type ForwardIntermediatesOptions,
  type ForwardIntermediatesResult,
  type IntrospectionInput,
  type IntrospectionOptions,
  type LayerAttention,
  type AttentionMapOptions,
} from './convit.js';
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
  MODEL_REGISTRY,
  IMAGENET_DEFAULT_MEAN,
  IMAGENET_DEFAULT_STD,
  type ModelEntry,
  type PretrainedConfig,
} from './registry.js';
export { type ImageInput, type PreprocessConfig } from './preprocess.js';
