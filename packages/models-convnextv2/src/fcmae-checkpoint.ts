/** @deprecated Moved to `src/fcmae/checkpoint.ts` (exported from `@softbias/models-convnextv2/fcmae`). */
export { detectFcmaeKeyNaming, officialToTimmFcmaeKey, toTimmFcmaeStateDict, type FcmaeKeyNaming } from './fcmae/checkpoint.js';
