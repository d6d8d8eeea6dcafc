/** @deprecated Import from `@softbias/models-convnextv2/fcmae` (or the package root); this module moved to `src/fcmae/`. */
export * from './fcmae/index.js';
