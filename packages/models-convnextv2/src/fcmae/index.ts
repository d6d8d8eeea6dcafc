/**
 * `@softbias/models-convnextv2/fcmae`: FCMAE, the fully convolutional masked autoencoder that pre-trains
 * ConvNeXt V2 (also re-exported from the package root).
 */
export { type FcmaeConfig, type FcmaeInit, type CreateFcmaeOptions, resolveFcmaeConfig, ENCODER_STRIDE } from './config.js';
export { Conv1x1 } from './layers.js';
export { FcmaeEncoder } from './encoder.js';
export { initFcmae } from './init.js';
export {
  Fcmae,
  FCMAE_FAMILY,
  type FcmaeMask,
  type FcmaeRunOptions,
  type FcmaeOutput,
  type FcmaeLoadResult,
} from './model.js';
export { createFcmae, loadFcmae, fcmaeParameterShapes, fcmaeConfigFromWeights } from './weights.js';
export { detectFcmaeKeyNaming, officialToTimmFcmaeKey, toTimmFcmaeStateDict, type FcmaeKeyNaming } from './checkpoint.js';
