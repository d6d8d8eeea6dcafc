/**
 * Deprecated: the experiment runner moved to `@softbias/experiments` (the CLI is a command, not the library the
 * demo and the study build on). These re-exports keep old imports from `@softbias/cli` working for a release.
 */
import * as experiments from '@softbias/experiments';

/** @deprecated Moved to `@softbias/experiments`: `import { runExperiment } from '@softbias/experiments'`. */
export const runExperiment: typeof experiments.runExperiment = experiments.runExperiment;
/** @deprecated Moved to `@softbias/experiments`: `import { probeBatch } from '@softbias/experiments'`. */
export const probeBatch: typeof experiments.probeBatch = experiments.probeBatch;
/** @deprecated Moved to `@softbias/experiments`. */
export type ExperimentSpec = experiments.ExperimentSpec;
/** @deprecated Moved to `@softbias/experiments`. */
export type ExperimentResult = experiments.ExperimentResult;
/** @deprecated Moved to `@softbias/experiments`. */
export type ExperimentIo = experiments.ExperimentIo;
/** @deprecated Moved to `@softbias/experiments`. */
export type EpochPoint = experiments.EpochPoint;
