/** timm's `feature_take_indices` (which blocks / stages `forwardIntermediates` returns) and featuresOnly models. */
import type * as tf from '@tensorflow/tfjs-core';
import type { LoadStateDictResult } from '../module.js';
import type { LoadWeightsOptions, VisionModel } from './contract.js';
import type { WeightsInput } from './weights.js';

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

// ------------------------------------------------------------------------------------- featuresOnly models

/** One feature map a model can return (timm's `feature_info` entry). */
export interface FeatureInfo {
  /** Block / stage index (what `outIndices` names). */
  index: number;
  /** The module whose output it is ('stages.1', 'blocks.11'). */
  module: string;
  /** Channels of the map (timm's `num_chs`). */
  numChs: number;
  /** Input pixels per map pixel (timm's `reduction`: 4, 8, 16, 32 for ConvNeXt's stages; the patch size for ConViT). */
  reduction: number;
}

export interface FeaturesOnlyOptions {
  /** Which maps (timm's `out_indices`): a count (the last n), indices (negative from the end), default all. */
  outIndices?: number | readonly number[];
}

/**
 * A model with `featuresOnly` (timm's `features_only=True`): `forward(x)` returns the feature maps of
 * `outIndices` as NHWC tensors [B, H / reduction, W / reduction, numChs], shallowest first, each described by
 * `featureInfo`. It runs the trunk through the model's `forwardIntermediates` (up to the deepest map only)
 * and has no classifier. The model is owned: `dispose()` frees it.
 */
export class FeatureModel<M extends VisionModel = VisionModel> {
  /** The maps returned, ascending (duplicates removed). */
  readonly outIndices: readonly number[];
  /** What each returned map is, in the order `forward` returns them. */
  readonly featureInfo: readonly FeatureInfo[];

  constructor(
    /** The wrapped model (its classifier is unused; built with `numClasses: 0` by the factories). */
    readonly model: M,
    /** Every map the model can return, by index (0 … n−1). */
    allInfo: readonly FeatureInfo[],
    opts: FeaturesOnlyOptions = {},
  ) {
    const { indices } = featureTakeIndices(allInfo.length, opts.outIndices);
    this.outIndices = Object.freeze([...new Set(indices)].sort((a, b) => a - b));
    this.featureInfo = Object.freeze(this.outIndices.map((i) => Object.freeze({ ...allInfo[i]! })));
  }

  /** Channels of each returned map (timm's `feature_info.channels()`). */
  channels(): number[] {
    return this.featureInfo.map((f) => f.numChs);
  }

  /** Reduction of each returned map (timm's `feature_info.reduction()`). */
  reductions(): number[] {
    return this.featureInfo.map((f) => f.reduction);
  }

  get config(): M['config'] {
    return this.model.config;
  }

  get pretrainedConfig(): M['pretrainedConfig'] {
    return this.model.pretrainedConfig;
  }

  get isDisposed(): boolean {
    return this.model.isDisposed;
  }

  /** The feature maps of `outIndices`, NHWC, shallowest first (the caller disposes them). */
  forward(x: tf.Tensor): tf.Tensor[] {
    const { intermediates } = this.model.forwardIntermediates(x, { indices: [...this.outIndices], intermediatesOnly: true });
    return intermediates;
  }

  /** Load a checkpoint of the model (a classifier's too: its head is ignored). */
  loadWeights(source: WeightsInput, opts: Omit<LoadWeightsOptions, 'skipHead'> = {}): Promise<LoadStateDictResult> {
    return this.model.loadWeights(source, { ...opts, skipHead: true });
  }

  dispose(): void {
    this.model.dispose();
  }
}
