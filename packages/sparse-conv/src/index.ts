export {
  randomMask,
  randomMaskData,
  upsampleMask,
  upsampleMaskData,
  stageMasksData,
  numKept,
  numRemoved,
  type RandomMaskOptions,
} from './mask.js';
export { SiteIndex } from './sites.js';
export { toRows, toDense, pickRows, invertPick } from './rows.js';
export { sparseDepthwiseConv, defaultDepthwiseStrategy, type DepthwiseStrategy } from './dwconv.js';
export { MacCounter, type MacEntry } from './macs.js';
export {
  maskedStem,
  maskedDownsample,
  maskedBlock,
  sparseStem,
  sparseDownsample,
  sparseBlock,
  LN_EPS as ENCODER_LN_EPS,
  type OpOptions,
  type BlockOptions,
} from './ops.js';
export {
  maskedDenseEncoder,
  sparseEncoder,
  stageSites,
  resolvePatchMask,
  type PatchMask,
  type MaskedEncoderOptions,
  type MaskedEncoderResult,
} from './encoder.js';
export {
  describeEncoder,
  type EncoderWeights,
  type StageWeights,
  type BlockWeights,
  type NormWeights,
  type ConvWeights,
  type LinearWeights,
} from './weights.js';
