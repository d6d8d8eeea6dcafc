/**
 * Cross-entropy with label smoothing (PyTorch's `CrossEntropyLoss(label_smoothing=ε)`, mean over the batch):
 * the target is (1 − ε)·onehot + ε/K, and loss = −mean_b Σ_k target_bk · log softmax(logits)_bk.
 * Soft targets (mixup/cutmix) are used as given.
 */
import * as tf from '@tensorflow/tfjs-core';

export interface CrossEntropyOptions {
  labelSmoothing?: number;
}

/** `logits` [B, K]; `target` int32 labels [B] or soft targets [B, K] (rows summing to 1). Returns a scalar. */
export function crossEntropy(logits: tf.Tensor, target: tf.Tensor, opts: CrossEntropyOptions = {}): tf.Scalar {
  if (logits.rank !== 2) throw new Error(`crossEntropy: expected logits [B, K], got shape [${logits.shape}]`);
  const [B, K] = logits.shape as [number, number];
  const eps = opts.labelSmoothing ?? 0;
  if (!(eps >= 0 && eps < 1)) throw new RangeError(`crossEntropy: labelSmoothing must be in [0, 1), got ${eps}`);
  return tf.tidy(() => {
    let t: tf.Tensor;
    if (target.rank === 1) {
      if (target.shape[0] !== B) throw new Error(`crossEntropy: ${B} rows of logits but labels of shape [${target.shape}]`);
      const oh = tf.oneHot(target.dtype === 'int32' ? (target as tf.Tensor1D) : tf.cast(target, 'int32'), K);
      t = eps > 0 ? tf.add(tf.mul(oh, 1 - eps), eps / K) : oh;
    } else {
      if (!tf.util.arraysEqual(target.shape, [B, K])) {
        throw new Error(`crossEntropy: soft targets must be [${B}, ${K}], got [${target.shape}]`);
      }
      t = eps > 0 ? tf.add(tf.mul(target, 1 - eps), eps / K) : target;
    }
    const logp = tf.logSoftmax(logits);
    return tf.neg(tf.mean(tf.sum(tf.mul(t, logp), 1))) as tf.Scalar;
  });
}

/** timm's smoothed one-hot on the host: off = ε/K, on = 1 − ε + ε/K. Returns [B·K] float32. */
export function smoothOneHot(labels: ArrayLike<number>, numClasses: number, smoothing = 0): Float32Array {
  const off = smoothing / numClasses;
  const on = 1 - smoothing + off;
  const out = new Float32Array(labels.length * numClasses).fill(off);
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i]!;
    if (!(Number.isInteger(l) && l >= 0 && l < numClasses)) throw new Error(`label ${l} is out of range for ${numClasses} classes`);
    out[i * numClasses + l] = on;
  }
  return out;
}
