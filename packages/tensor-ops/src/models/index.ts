/**
 * `@softbias/tensor-ops/models`: the contract every model family implements — `VisionModel`, one
 * `PretrainedConfig`, `featureTakeIndices`, `ClassifierHead`, one weights reader / writer, one
 * `ModelRegistry` (`models`), and one image preprocessing.
 */
export type {
  VisionModel,
  ForwardHeadOptions,
  ForwardIntermediatesOptions,
  ForwardIntermediatesResult,
  LoadWeightsOptions,
} from './contract.js';
export { IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, imagenetConfig, type PretrainedConfig } from './pretrained.js';
export { featureTakeIndices, type TakeIndices } from './features.js';
export { ClassifierHead, type ClassifierHeadOptions } from './head.js';
export {
  readWeights,
  writeWeights,
  checkWeights,
  checkArchitecture,
  WeightsFile,
  WeightsError,
  DEFAULT_ARCHITECTURE_LIMITS,
  type WeightsInput,
  type ReadWeightsOptions,
  type WriteWeightsOptions,
  type ArchitectureLimits,
  type ArchitectureSizes,
  type CheckWeightsOptions,
} from './weights.js';
export {
  ModelRegistry,
  models,
  type ModelEntry,
  type ModelFamily,
  type FromFileOptions,
  type ListFilter,
} from './registry.js';
export {
  preprocess,
  preprocessConfig,
  resizeTarget,
  type ImageInput,
  type PreprocessConfig,
  type PreprocessOverrides,
  type PreprocessSource,
} from './preprocess.js';
export { resampleBicubic, resampleWeights } from './resample.js';
