/** timm's `feature_take_indices`: which blocks / stages `forwardIntermediates` returns. */

export interface TakeIndices {
  /** Block (or stage) indices to return, in the order asked for, each in [0, numFeatures). */
  indices: number[];
  /** The largest of them (where `stopEarly` may stop the trunk). */
  maxIndex: number;
}

/**
 * `indices` undefined: all `numFeatures`; a number n: the last n; an array: these indices, negative ones
 * counting from the end. Throws a `RangeError` naming the valid range otherwise.
 */
export function featureTakeIndices(numFeatures: number, indices?: number | readonly number[]): TakeIndices {
  if (!Number.isInteger(numFeatures) || numFeatures < 1) {
    throw new RangeError(`featureTakeIndices: numFeatures must be a positive integer, got ${numFeatures}`);
  }
  let take: number[];
  if (indices === undefined) take = Array.from({ length: numFeatures }, (_, i) => i);
  else if (typeof indices === 'number') {
    if (!Number.isInteger(indices) || indices < 1 || indices > numFeatures) {
      throw new RangeError(`forwardIntermediates: last-n indices (${indices}) is out of range (1 to ${numFeatures})`);
    }
    take = Array.from({ length: indices }, (_, i) => numFeatures - indices + i);
  } else {
    if (!Array.isArray(indices) || indices.length === 0) {
      throw new RangeError(`forwardIntermediates: indices must be a count or a non-empty array, got ${JSON.stringify(indices)}`);
    }
    take = indices.map((i) => {
      const j = typeof i === 'number' && i < 0 ? numFeatures + i : i;
      if (!Number.isInteger(j) || j < 0 || j >= numFeatures) {
        throw new RangeError(`forwardIntermediates: indices ${JSON.stringify(indices)}: feature index ${i} is out of range (0 to ${numFeatures - 1}, or -${numFeatures} to -1)`);
      }
      return j;
    });
  }
  return { indices: take, maxIndex: Math.max(...take) };
}
