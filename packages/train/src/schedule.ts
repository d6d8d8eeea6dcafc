/**
 * Learning-rate schedules as functions of the update index s = 0, 1, 2, … (the lr used by update s; timm's
 * `step_update(num_updates)` after each update gives update s the lr of t = s).
 *
 * Cosine with linear warm-up: timm's `CosineLRScheduler` per update, one cycle (no restarts, no noise,
 * k_decay 1), W = `warmupSteps`, T = `totalSteps`:
 *   s < W:       lr = warmupInitLr + (baseLr − warmupInitLr) · s / W
 *   W ≤ s < T:   lr = minLr + ½ (baseLr − minLr) (1 + cos(π (s − W) / (T − W)))     (warmupPrefix: true, default)
 *                lr = minLr + ½ (baseLr − minLr) (1 + cos(π s / T))                   (warmupPrefix: false)
 *   s ≥ T:       lr = minLr
 * `warmupPrefix: true` is timm's `warmup_prefix=True` with `t_initial = T − W` (the cosine starts at the peak
 * after the warm-up and ends at T); `false` is timm's default `warmup_prefix=False` with `t_initial = T` (the
 * warm-up overlaps the first W updates of the cosine, which is already below baseLr when the warm-up ends).
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
  /** timm's `warmup_prefix`: the cosine starts after the warm-up (true, default) or at update 0 (false). */
  warmupPrefix?: boolean;
}

export type LrSchedule = (step: number) => number;

export function cosineSchedule(opts: CosineScheduleOptions): LrSchedule {
  const { baseLr, totalSteps } = opts;
  const W = opts.warmupSteps ?? 0;
  const init = opts.warmupInitLr ?? 0;
  const minLr = opts.minLr ?? 0;
  const prefix = opts.warmupPrefix ?? true;
  if (!(Number.isInteger(totalSteps) && totalSteps > 0)) throw new RangeError(`cosineSchedule: totalSteps must be a positive integer, got ${totalSteps}`);
  if (!(Number.isInteger(W) && W >= 0 && W <= totalSteps)) throw new RangeError(`cosineSchedule: warmupSteps must be an integer in [0, totalSteps], got ${W}`);
  if (!(baseLr >= 0 && minLr >= 0 && init >= 0)) throw new RangeError('cosineSchedule: learning rates must be ≥ 0');
  return (s: number) => {
    if (s < W) return init + ((baseLr - init) * s) / W;
    if (s >= totalSteps) return minLr;
    const t = prefix ? (s - W) / (totalSteps - W) : s / totalSteps;
    return minLr + 0.5 * (baseLr - minLr) * (1 + Math.cos(Math.PI * t));
  };
}

/** A constant learning rate. */
export function constantSchedule(lr: number): LrSchedule {
  return () => lr;
}
