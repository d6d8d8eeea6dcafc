export {
  ConvNeXtV2,
  createModel,
  MIN_INPUT_SIZE,
  FAMILY,
  type CreateModelOptions,
  type FeaturesOnly,
  type LoadWeightsOptions,
  type LoadWeightsResult,
  type IntermediatesOptions,
  type IntermediatesResult,
} from './model.js';
export { loadModel, configFromWeights, type LoadModelOptions } from './load.js';
export { convnextv2Family, fcmaeFamily, CONVNEXTV2_ENTRIES, registerConvNeXtV2 } from './registry.js';
export { ConvNeXtV2Trunk, type TrunkOptions } from './trunk.js';
export {
  listModels,
  getModelEntry,
  resolveConfig,
  countParameters,
  parameterShapes,
  MODELS,
  customPretrainedConfig,
  IMAGENET_MEAN,
  IMAGENET_STD,
  type ConvNeXtV2Config,
  type ConvNeXtV2Overrides,
  type PretrainedConfig,
  type ModelEntry,
} from './config.js';
export {
  ConvNeXtV2Block,
  ConvNeXtV2Mlp,
  ConvNeXtV2Stem,
  ConvNeXtV2Downsample,
  ConvNeXtV2Stage,
  ConvNeXtV2Head,
  DepthwiseConv2d,
} from './blocks.js';
export { detectKeyNaming, officialToTimmKey, toTimmStateDict, inferConfig, type KeyNaming } from './checkpoint.js';
export { preprocess, type ImageInput, type PreprocessOptions } from './preprocess.js';
export {
  Fcmae,
  FcmaeEncoder,
  Conv1x1,
  createFcmae,
  loadFcmae,
  resolveFcmaeConfig,
  fcmaeParameterShapes,
  FCMAE_FAMILY,
  type FcmaeConfig,
  type CreateFcmaeOptions,
  type FcmaeInit,
  type FcmaeMask,
  type FcmaeRunOptions,
  type FcmaeOutput,
  type FcmaeLoadResult,
  detectFcmaeKeyNaming,
  officialToTimmFcmaeKey,
  toTimmFcmaeStateDict,
  type FcmaeKeyNaming,
} from './fcmae/index.js';
