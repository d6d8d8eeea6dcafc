/**
 * The check at every model's public entry (forward, forwardFeatures, forwardIntermediates): one clear error for
 * each wrong input, the same on every backend, before any kernel runs (a batch of 0 images otherwise ends in a
 * stack error on cpu, a wasm trap or an empty result; a plain array or `null` in "Cannot read properties of
 * undefined"; an int32/bool tensor in silently wrong numbers).
 */
import * as tf from '@tensorflow/tfjs-core';

/** A model input that cannot be used (wrong type, disposed, wrong dtype/rank/shape, a disposed model). */
export class InputError extends TypeError {
  constructor(message: string) {
    super(message);
    this.name = 'InputError';
  }
}

export interface AssertImageBatchOptions {
  /** Who is asking, for the message (e.g. 'ConVit.forward'). */
  name: string;
  /** The model being run: refused when disposed. */
  model?: { readonly isDisposed: boolean };
  /**
   * Also check the shape: rank 4 and this many channels. Off by default: the models check the shape themselves,
   * with their own hints (the expected size, NCHW given by mistake).
   */
  channels?: number;
}

function describe(x: unknown): string {
  if (x === null) return 'null';
  if (x === undefined) return 'undefined';
  if (Array.isArray(x)) return `a plain array (length ${x.length})`;
  if (ArrayBuffer.isView(x)) return `a ${x.constructor.name} (not a tensor)`;
  if (typeof x === 'object') return `an object that is not a tf.Tensor (${(x as object).constructor?.name ?? 'Object'})`;
  return `a ${typeof x}`;
}

function isTensor(x: unknown): x is tf.Tensor {
  if (x instanceof tf.Tensor) return true;
  // A tensor from another copy of tfjs-core still has these.
  const t = x as { shape?: unknown; dtype?: unknown; dataId?: unknown } | null;
  return typeof t === 'object' && t !== null && Array.isArray(t.shape) && typeof t.dtype === 'string' && t.dataId !== undefined;
}

/**
 * Throws an {@link InputError} unless `x` is a live float32 tensor with a non-empty batch (and, with `channels`,
 * of shape [B, H, W, channels]), and `model` (when given) is not disposed.
 */
export function assertImageBatch(x: unknown, opts: AssertImageBatchOptions): asserts x is tf.Tensor {
  const who = opts.name;
  if (opts.model?.isDisposed) throw new InputError(`${who}: the model has been disposed (its weights are freed); build or load it again`);
  if (!isTensor(x)) {
    const hint = Array.isArray(x) || ArrayBuffer.isView(x) ? '; wrap it with tf.tensor4d(values, [B, H, W, C])' : '';
    throw new InputError(`${who}: expected a float32 tf.Tensor of shape [B, H, W, C], got ${describe(x)}${hint}`);
  }
  if (x.isDisposed) throw new InputError(`${who}: the input tensor has been disposed`);
  if (x.dtype !== 'float32') {
    throw new InputError(
      `${who}: expected float32 input, got ${x.dtype} [${x.shape}]; images must be float32: convert and normalise them first, e.g. tf.div(tf.cast(x, 'float32'), 255)`,
    );
  }
  if (x.rank >= 1 && x.shape[0] === 0) throw new InputError(`${who}: the batch is empty (shape [${x.shape}]); pass at least one image`);
  if (x.rank >= 1 && x.size === 0) throw new InputError(`${who}: the images are empty (shape [${x.shape}])`);
  if (opts.channels !== undefined) {
    if (x.rank !== 4) throw new InputError(`${who}: expected NHWC images [B, H, W, ${opts.channels}], got a rank-${x.rank} tensor [${x.shape}]`);
    if (x.shape[3] !== opts.channels) {
      throw new InputError(`${who}: the model takes ${opts.channels}-channel images, got ${x.shape[3]} channels (shape [${x.shape}])`);
    }
  }
}
