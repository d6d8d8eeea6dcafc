/**
 * Per-class subsampling, the protocol of ConViT's sample-efficiency study: keep a fraction f of the samples of
 * EACH class (⌊f·n_c⌋, as the official code's `int(n_c · sampling_ratio)`), chosen at random with a seed.
 */
import { Rng } from '@softbias/tensor-ops';
import { mixSeed } from './seed.js';

export interface SubsampleOptions {
  /** Keep ⌊fraction · n_c⌋ samples of each class c; fraction in (0, 1]. */
  fraction?: number;
  /** Or keep exactly this many of each class (all of a class that has fewer). */
  perClass?: number;
  /** Seed of the random choice. Default 0. */
  seed?: number;
  /** Number of classes (default max label + 1). */
  numClasses?: number;
}

/**
 * Indices (ascending) of a per-class random subsample of `labels`. The same labels, fraction and seed give the
 * same indices everywhere; a smaller fraction with the same seed gives a subset of a larger one's samples.
 */
export function subsamplePerClass(labels: ArrayLike<number>, opts: SubsampleOptions): Int32Array {
  const { fraction, perClass } = opts;
  if ((fraction === undefined) === (perClass === undefined)) {
    throw new Error('subsamplePerClass: give exactly one of { fraction } or { perClass }');
  }
  if (fraction !== undefined && !(fraction > 0 && fraction <= 1)) {
    throw new RangeError(`subsamplePerClass: fraction must be in (0, 1], got ${fraction}`);
  }
  if (perClass !== undefined && !(Number.isInteger(perClass) && perClass >= 0)) {
    throw new RangeError(`subsamplePerClass: perClass must be a non-negative integer, got ${perClass}`);
  }
  let maxLabel = -1;
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i]!;
    if (!Number.isInteger(l) || l < 0) throw new Error(`subsamplePerClass: label ${l} at ${i} is not a class index`);
    maxLabel = Math.max(maxLabel, l);
  }
  const numClasses = opts.numClasses ?? maxLabel + 1;
  if (maxLabel >= numClasses) throw new Error(`subsamplePerClass: label ${maxLabel} ≥ numClasses ${numClasses}`);
  const byClass: number[][] = Array.from({ length: numClasses }, () => []);
  for (let i = 0; i < labels.length; i++) byClass[labels[i]!]!.push(i);
  const picked: number[] = [];
  for (let c = 0; c < numClasses; c++) {
    const members = byClass[c]!;
    // One stream per class, so a class's choice does not depend on the other classes' sizes.
    const order = new Rng(mixSeed(opts.seed ?? 0, c)).shuffle(members.slice()) as number[];
    const keep = fraction !== undefined ? Math.floor(members.length * fraction + 1e-9) : Math.min(perClass!, members.length);
    for (let k = 0; k < keep; k++) picked.push(order[k]!);
  }
  return Int32Array.from(picked.sort((a, b) => a - b));
}
