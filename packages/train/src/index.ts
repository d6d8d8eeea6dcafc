export { AdamW, type AdamWOptions, type AdamWSlot } from './adamw.js';
export { cosineSchedule, constantSchedule, type CosineScheduleOptions, type LrSchedule } from './schedule.js';
export { crossEntropy, smoothOneHot, type CrossEntropyOptions } from './loss.js';
export { clipGradNorm, globalNorm } from './clip.js';
export { Mixup, cutmixBox, sampleBeta, sampleGamma, type MixupOptions, type MixedBatch } from './mixup.js';
export { ModelEma, emaWarmupDecay, type EmaOptions } from './ema.js';
export {
  CHECKPOINT_FORMAT,
  CheckpointError,
  checkpointBytes,
  saveCheckpoint,
  loadCheckpoint,
  checkpointMeta,
  verifyCheckpointData,
  weightsFromCheckpoint,
  moduleRngs,
  type TrainingState,
  type CheckpointMeta,
} from './checkpoint.js';
export {
  fit,
  evaluate,
  FitError,
  settingsDifferences,
  yieldToEventLoop,
  type FitOptions,
  type FitResult,
  type BatchSource,
  type TrainBatch,
  type EpochRecord,
  type EvaluateResult,
} from './fit.js';
export { ProgressPrinter, defaultOutput, type ProgressOutput, type FitProgress, type ProgressMode } from './progress.js';
export {
  nodeFileStorage,
  memoryStorage,
  indexedDbStorage,
  opfsStorage,
  opfsAvailable,
  notFound,
  type FitStorage,
  type OpfsDirectory,
  type OpfsFile,
} from './storage.js';
