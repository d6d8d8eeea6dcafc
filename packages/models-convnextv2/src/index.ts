export {
  ConvNeXtV2,
  createModel,
  loadModel,
  MIN_INPUT_SIZE,
  type CreateModelOptions,
  type LoadWeightsOptions,
  type LoadWeightsResult,
  type IntermediatesOptions,
  type IntermediatesResult,
} from './model.js';
export {
  listModels,
  getModelEntry,
  resolveConfig,
  countParameters,
  parameterShapes,
  MODELS,
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
  type FcmaeConfig,
  type CreateFcmaeOptions,
  type FcmaeInit,
  type FcmaeMask,
  type FcmaeRunOptions,
  type FcmaeOutput,
  type FcmaeLoadResult,
} from './fcmae.js';
export { detectFcmaeKeyNaming, officialToTimmFcmaeKey, toTimmFcmaeStateDict, type FcmaeKeyNaming } from './fcmae-checkpoint.js';
