/**
 * The one place where PyTorch parameter layouts and tfjs layouts meet.
 *
 * Parameters live in tfjs layout inside softbias modules (Linear `[in, out]`, conv `HWIO`, depth-wise
 * `[kh, kw, C, 1]`), and are named and shaped as PyTorch/timm `state_dict` entries outside (checkpoints,
 * `stateDict()`, `loadStateDict()`). Every conversion goes through `toTorch` / `fromTorch`.
 */
import * as tf from '@tensorflow/tfjs-core';

/**
 * - `plain`: same layout in both (biases, norms, embeddings, GRN `(C)`).
 * - `linear`: PyTorch `(out, in)` ⇄ tfjs `[in, out]`.
 * - `conv`: PyTorch `(O, I, kh, kw)` ⇄ tfjs `[kh, kw, I, O]`.
 * - `depthwise`: PyTorch `(C, 1, kh, kw)` ⇄ tfjs `[kh, kw, C, 1]`.
 */
export type ParamLayout = 'plain' | 'linear' | 'conv' | 'depthwise';

/** The PyTorch shape of a parameter whose tfjs shape is `shape`. */
export function torchShape(layout: ParamLayout, shape: readonly number[]): number[] {
  switch (layout) {
    case 'plain':
      return [...shape];
    case 'linear':
      return [shape[1]!, shape[0]!];
    case 'conv':
      return [shape[3]!, shape[2]!, shape[0]!, shape[1]!];
    case 'depthwise':
      return [shape[2]!, shape[3]!, shape[0]!, shape[1]!];
  }
}

/** tfjs layout → PyTorch layout (a new tensor; the input is not disposed). */
export function toTorch(layout: ParamLayout, t: tf.Tensor): tf.Tensor {
  switch (layout) {
    case 'plain':
      return t.clone();
    case 'linear':
      return tf.transpose(t, [1, 0]);
    case 'conv':
      return tf.transpose(t, [3, 2, 0, 1]);
    case 'depthwise':
      return tf.transpose(t, [2, 3, 0, 1]);
  }
}

/** PyTorch layout → tfjs layout (a new tensor; the input is not disposed). */
export function fromTorch(layout: ParamLayout, t: tf.Tensor): tf.Tensor {
  switch (layout) {
    case 'plain':
      return t.clone();
    case 'linear':
      return tf.transpose(t, [1, 0]);
    case 'conv':
      return tf.transpose(t, [2, 3, 1, 0]);
    case 'depthwise':
      return tf.transpose(t, [2, 3, 0, 1]);
  }
}

/** PyTorch-layout raw data (row-major Float32Array) → tfjs-layout tensor, without an intermediate tensor. */
export function tensorFromTorchData(layout: ParamLayout, data: Float32Array, torchShp: readonly number[]): tf.Tensor {
  return tf.tidy(() => fromTorch(layout, tf.tensor(data, [...torchShp], 'float32')));
}
