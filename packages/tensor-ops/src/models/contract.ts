/** The contract every softbias image model family implements (timm's model API, camelCase, NHWC). */
import type * as tf from '@tensorflow/tfjs-core';
import type { LoadStateDictResult, Module } from '../module.js';
import type { PretrainedConfig } from './pretrained.js';
import type { WeightsDtype, WeightsInput } from './weights.js';

export interface ForwardHeadOptions {
  /** Return the pooled (and, where the family has one, normalised) features before the classifier. */
  preLogits?: boolean;
}

export interface ForwardIntermediatesOptions {
  /** Last n blocks / stages (a number), these indices (an array; negative counts from the end), or all. */
  indices?: number | readonly number[];
  /** Apply the model's final norm to the intermediates (timm's `norm`). Default false. */
  norm?: boolean;
  /**
   * Run the trunk only up to the last requested index. `features` is then the (normed) output of that
   * truncated trunk, as timm returns it, not null.
   */
  stopEarly?: boolean;
  /** Return only the intermediates (`features` is null). */
  intermediatesOnly?: boolean;
}

export interface ForwardIntermediatesResult {
  /** The requested block / stage outputs, NHWC feature maps unless the family documents another format. */
  intermediates: tf.Tensor[];
  /**
   * What `forwardFeatures` returns (for `stopEarly`: the same for the truncated trunk); null only with
   * `intermediatesOnly`.
   */
  features: tf.Tensor | null;
}

export interface SaveWeightsOptions {
  /** Stored float dtype: 'float32' (default), 'float16' or 'bfloat16' (half the size; loading decodes them). */
  dtype?: WeightsDtype;
}

export interface LoadWeightsOptions {
  /** Leave the classifier alone (this model's head, of any size, is kept). Default false. */
  skipHead?: boolean;
  /** Throw on missing or unexpected keys (default true). Mis-shaped keys always throw. */
  strict?: boolean;
  /** Load NaN / ±Infinity values. Default false: the load throws naming the tensor, changing nothing. */
  allowNonFinite?: boolean;
  /** Convert integer / BOOL tensors where float32 weights are expected. Default false: an error. */
  allowIntegerCast?: boolean;
}

/**
 * An image model: NHWC float32 input [B, H, W, C] (see its `pretrainedConfig` and `preprocess`), timm's
 * module tree and `state_dict` names, timm's forward API.
 */
export interface VisionModel<Config = unknown> extends Module {
  /** The resolved architecture (what `saveWeights` stores and `registry.fromFile` rebuilds). */
  readonly config: Readonly<Config>;
  /** Input size, crop and normalisation the weights expect. */
  readonly pretrainedConfig: PretrainedConfig;
  /** Classifier outputs (0: `forward` returns the pre-logits). */
  readonly numClasses: number;
  /** Width of the pre-logits (the classifier's input). */
  readonly numFeatures: number;
  /** Logits [B, numClasses] (pre-logits [B, numFeatures] when numClasses = 0). */
  forward(x: tf.Tensor): tf.Tensor;
  /** The trunk's output, before pooling and classifier. */
  forwardFeatures(x: tf.Tensor): tf.Tensor;
  /** Pooling and classifier on `forwardFeatures`' output. */
  forwardHead(features: tf.Tensor, opts?: ForwardHeadOptions): tf.Tensor;
  forwardIntermediates(x: tf.Tensor, opts?: ForwardIntermediatesOptions): ForwardIntermediatesResult;
  /** A fresh classifier with `numClasses` outputs (0 = none). */
  resetClassifier(numClasses: number): void;
  /** timm's `set_grad_checkpointing`: recompute each block in the backward pass (less memory while training). */
  setGradCheckpointing?(enable?: boolean): this;
  /** Load weights (safetensors bytes, path, URL, `Response`/`Blob`, parsed file, `WeightsFile` or state dict). */
  loadWeights(source: WeightsInput, opts?: LoadWeightsOptions): Promise<LoadStateDictResult>;
  /**
   * The weights as safetensors bytes (timm names, `writeWeights`' metadata); also written to `path` in Node.
   * `dtype: 'float16' | 'bfloat16'` halves the file.
   */
  saveWeights(path?: string, opts?: SaveWeightsOptions): Promise<Uint8Array>;
  dispose(): void;
}
