/**
 * The models under test, through the packages' public API only (createModel / loadWeights / forward / train).
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { Parameter } from '@softbias/tensor-ops';
import { createModel as createConvit } from '@softbias/models-convit';
import { createModel as createConvnext } from '@softbias/models-convnextv2';

/** What the benchmark needs from a model (both families expose it). */
export interface BenchModel {
  forward(x: tf.Tensor): tf.Tensor;
  train(mode?: boolean): unknown;
  eval(): unknown;
  trainableParameters(): [string, Parameter][];
  numParameters(trainableOnly?: boolean): number;
  loadWeights(source: Uint8Array, opts?: { skipHead?: boolean }): Promise<unknown>;
  dispose(): void;
}

export const DEFAULT_MODELS = ['convit_tiny', 'convit_tiny_deit', 'convnextv2_atto'] as const;

export function family(name: string): 'convit' | 'convnextv2' {
  if (name.startsWith('convnextv2')) return 'convnextv2';
  if (name.startsWith('convit')) return 'convit';
  throw new Error(`benchmark: unknown model '${name}' (convit_* or convnextv2_*)`);
}

export function createBenchModel(name: string): BenchModel {
  return (family(name) === 'convit' ? createConvit(name) : createConvnext(name)) as unknown as BenchModel;
}
