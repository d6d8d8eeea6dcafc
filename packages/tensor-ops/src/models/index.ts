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
  SaveWeightsOptions,
} from './contract.js';
export {
  IMAGENET_DEFAULT_MEAN,
  IMAGENET_DEFAULT_STD,
  imagenetConfig,
  setPretrainedConfig,
  channelNormalisation,
  explicitPretrainedConfig,
  pretrainedConfigToTimm,
  type PretrainedConfig,
  type PretrainedConfigUpdate,
} from './pretrained.js';
export {
  featureTakeIndices,
  FeatureModel,
  type TakeIndices,
  type FeatureInfo,
  type FeaturesOnlyOptions,
} from './features.js';
export { ClassifierHead, type ClassifierHeadOptions } from './head.js';
export {
  readWeights,
  writeWeights,
  checkWeights,
  checkArchitecture,
  WeightsFile,
  WeightsError,
  storedDtype,
  type WeightsDtype,
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
  adoptFileMetadata,
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
export {
  classify,
  classifyBatch,
  predictProbabilities,
  type ClassifyImage,
  type ClassifyOptions,
  type Prediction,
  type PixelImage,
  type CanvasLike,
  type DrawableImage,
} from './classify.js';
export { imagenetLabels, imagenetSynsets, labelNamesOf, labelNamesFor, ownLabelNames, setLabelNames } from './labels.js';
export { resampleBicubic, resampleWeights } from './resample.js';
export {
  hubDownload,
  hubUrl,
  hubEndpoint,
  isOffline,
  HubError,
  DEFAULT_HUB_ENDPOINT,
  type HubOptions,
  type HubProgress,
  type HubFile,
  type HubErrorKind,
} from './hub.js';
export { type HubCache, FolderCache, BrowserCache, NoCache, defaultCache, defaultCacheDir } from './cache.js';
export { sha256Hex, sha256Js } from './sha256.js';
export {
  fromPretrained,
  fromPretrainedWithInfo,
  createPretrained,
  parseHubId,
  defaultTag,
  pretrainedConfigFromTimm,
  type PretrainedTag,
  type FromPretrainedOptions,
  type PretrainedCreateOptions,
  type PretrainedInfo,
  type ParsedHubId,
} from './from-pretrained.js';
