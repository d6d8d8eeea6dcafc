/**
 * Learning-rate schedules as functions of the update index s = 0, 1, 2, … (the lr used by update s).
 *
 * Cosine with linear warm-up (timm's CosineLRScheduler, per update, no restarts):
 *   s < W:       lr = warmupInitLr + (baseLr − warmupInitLr) · s / W
 *   W ≤ s < T:   lr = minLr + ½ (baseLr − minLr) (1 + cos(π (s − W) / (T − W)))
 *   s ≥ T:       lr = minLr
 */
export interface CosineScheduleOptions {
  baseLr: number;
  /** Total number of updates T. */
  totalSteps: number;
  /** Linear warm-up updates W. Default 0. */
  warmupSteps?: number;
  /** Learning rate at update 0 of the warm-up. Default 0. */
  warmupInitLr?: number;
  /** Final learning rate. Default 0. */
  minLr?: number;
}

export type LrSchedule = (step: number) => number;

export function cosineSchedule(opts: CosineScheduleOptions): LrSchedule {
  const { baseLr, totalSteps } = opts;
  const W = opts.warmupSteps ?? 0;
  const init = opts.warmupInitLr ?? 0;
  const minLr = opts.minLr ?? 0;
  if (!(Number.isInteger(totalSteps) && totalSteps > 0)) throw new RangeError(`cosineSchedule: totalSteps must be a positive integer, got ${totalSteps}`);
  if (!(Number.isInteger(W) && W >= 0 && W <= totalSteps)) throw new RangeError(`cosineSchedule: warmupSteps must be an integer in [0, totalSteps], got ${W}`);
  if (!(baseLr >= 0 && minLr >= 0 && init >= 0)) throw new RangeError('cosineSchedule: learning rates must be ≥ 0');
  return (s: number) => {
    if (s < W) return init + ((baseLr - init) * s) / W;
    if (s >= totalSteps) return minLr;
    const t = (s - W) / (totalSteps - W);
    return minLr + 0.5 * (baseLr - minLr) * (1 + Math.cos(Math.PI * t));
  };
}

/** A constant learning rate. */
export function constantSchedule(lr: number): LrSchedule {
  return () => lr;
}
