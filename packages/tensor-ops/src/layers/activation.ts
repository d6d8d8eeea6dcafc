import * as tf from '@tensorflow/tfjs-core';
import { fusedGelu } from '../kernels/eltwise.js';

/**
 * Exact GELU, `0.5·x·(1 + erf(x/√2))` (PyTorch `nn.GELU()` default). On wasm one fused kernel (softbias'
 * `SoftbiasGelu`, see kernels/eltwise.ts); elsewhere `geluOps`.
 */
export function gelu(x: tf.Tensor): tf.Tensor {
  return fusedGelu(x) ?? geluOps(x);
}

/** GELU as tfjs' op graph (Erf and its gradient exist on every backend). */
export function geluOps(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1)));
}
