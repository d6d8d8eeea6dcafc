export {
  TokenMixer,
  checkMixerInput,
  checkGeometry,
  type MixerInput,
  type MixerGeometry,
  type MixerMacs,
  type MixerMacsOptions,
  type MixerAttentionMaps,
} from './mixer.js';
export { Mhsa, type MhsaOptions } from './mhsa.js';
export { WindowAttention, type WindowAttentionOptions } from './window.js';
export { DwConvMixer, DepthwiseConv, DynamicDepthwiseConv, type DwConvMixerOptions } from './dwconv.js';
export { FeedForwardPatchesMixer, type FeedForwardPatchesOptions } from './ff-patches.js';
export { nonlocality, patchDistances } from './nonlocality.js';
export {
  createMixer,
  mixerParameterShapes,
  MIXER_KINDS,
  type AttentionMixerSpec,
  type MhsaSpec,
  type WindowSpec,
  type DwConvSpec,
  type FeedForwardPatchesSpec,
  type MixerContext,
} from './factory.js';
export {
  PER_HEAD_MIN_TOKENS,
  PER_HEAD_MAX_PAIRS,
  scaledDotAttention,
  attentionFromQkv,
  ProjectionSlices,
  resolveStrategy,
  type AttentionMix,
  type AttentionMixTerms,
  type AttentionStrategy,
  type AttentionCoreOptions,
  type AttentionResult,
  type Projection,
  type QkvSource,
} from './core.js';
