/**
 * Registers tfjs-core's gradient functions with the app's own (peer) tfjs-core.
 *
 * tfjs-core's Node entry registers none and its `register_all_gradients` module cannot be imported by Node as
 * published; `generated/gradients.js` is that module bundled by `scripts/bundle-gradients.mjs` with every
 * public symbol (engine, registries, ops) taken from the peer `@tensorflow/tfjs-core`. Importing anything from
 * `@softbias/tensor-ops` runs this once. Re-registering a gradient is harmless (tfjs warns only for kernels).
 */
import * as tf from '@tensorflow/tfjs-core';
import './generated/gradients.js';

/** Kernel names that must have gradients for softbias models to train (checked in tests). */
export const REQUIRED_GRADIENTS = [
  'Add', 'Sub', 'Multiply', 'RealDiv', 'BatchMatMul', 'Reshape', 'Transpose', 'Sum', 'Mean', 'Max', 'Exp',
  'Erf', 'Sqrt', 'Rsqrt', 'Square', 'Softmax', 'Sigmoid', 'Concat', 'Slice', 'GatherV2', 'DepthwiseConv2dNative',
  'Conv2D', 'PadV2', 'Tile', 'Cast', 'Neg', 'Log', 'Maximum', 'Pow',
] as const;

/** True when every gradient softbias needs is registered in the (shared) tfjs-core registry. */
export function gradientsRegistered(): boolean {
  return REQUIRED_GRADIENTS.every((k) => tf.getGradient(k) != null);
}
