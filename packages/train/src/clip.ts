/**
 * Gradient clipping by global norm (PyTorch `clip_grad_norm_`, L2): total = ‖(‖g_1‖, …, ‖g_n‖)‖,
 * every gradient multiplied by min(1, maxNorm / (total + 1e-6)). Computed on the device, no read-back.
 */
import * as tf from '@tensorflow/tfjs-core';

/** Returns the clipped gradients (new tensors, same keys) and the total norm before clipping (a scalar tensor). */
export function clipGradNorm(grads: ReadonlyMap<string, tf.Tensor>, maxNorm: number): { grads: Map<string, tf.Tensor>; totalNorm: tf.Scalar } {
  if (!(maxNorm > 0)) throw new RangeError(`clipGradNorm: maxNorm must be > 0, got ${maxNorm}`);
  const keys = [...grads.keys()];
  const out = tf.tidy(() => {
    const total = tf.sqrt(sumOfSquares(keys.map((k) => grads.get(k)!))) as tf.Scalar;
    const coef = tf.minimum(tf.div(maxNorm, tf.add(total, 1e-6)), 1);
    return [total, ...keys.map((k) => tf.mul(grads.get(k)!, coef))];
  });
  const [totalNorm, ...clipped] = out;
  return { grads: new Map(keys.map((k, i) => [k, clipped[i]!])), totalNorm: totalNorm as tf.Scalar };
}

/** Global L2 norm of gradients (a scalar tensor). */
export function globalNorm(grads: ReadonlyMap<string, tf.Tensor>): tf.Scalar {
  return tf.tidy(() => tf.sqrt(sumOfSquares([...grads.values()])) as tf.Scalar);
}

/**
 * Σ‖g‖² as a chain of scalar adds: `tf.addN` over many tensors needs one storage buffer per input on WebGPU and
 * fails beyond the per-stage limit (8 on many adapters).
 */
function sumOfSquares(ts: readonly tf.Tensor[]): tf.Tensor {
  let acc: tf.Tensor = tf.scalar(0);
  for (const t of ts) acc = tf.add(acc, tf.sum(tf.square(t)));
  return acc;
}
