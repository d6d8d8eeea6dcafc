/** Parameter initialisers (PyTorch/timm semantics), computed with the seeded `Rng`. */
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from './rng.js';

export type InitShape = readonly number[];

function sizeOf(shape: InitShape): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * timm's `trunc_normal_(std, a=-2, b=2)`: normal(mean, std) truncated to [a, b] (absolute bounds,
 * as timm's default, i.e. ±2 not ±2·std), by rejection.
 */
export function truncNormal(shape: InitShape, rng: Rng, std = 0.02, mean = 0, a = -2, b = 2): tf.Tensor {
  if (!(std > 0) || !(a < b)) throw new RangeError(`truncNormal: need std > 0 and a < b, got std ${std}, [${a}, ${b}]`);
  // Rejection sampling: refuse bounds that hold (almost) no probability mass instead of looping forever.
  if ((a - mean) / std > 6 || (b - mean) / std < -6) {
    throw new RangeError(`truncNormal: [${a}, ${b}] lies more than 6 std from the mean ${mean} (std ${std})`);
  }
  const out = new Float32Array(sizeOf(shape));
  for (let i = 0; i < out.length; i++) {
    let v: number;
    let tries = 0;
    do {
      if (++tries > 100_000) throw new RangeError(`truncNormal: [${a}, ${b}] holds almost no mass of N(${mean}, ${std}²)`);
      v = mean + std * rng.normal();
    } while (v < a || v > b);
    out[i] = v;
  }
  return tf.tensor(out, [...shape], 'float32');
}

export function normal(shape: InitShape, rng: Rng, std = 1, mean = 0): tf.Tensor {
  const out = new Float32Array(sizeOf(shape));
  for (let i = 0; i < out.length; i++) out[i] = mean + std * rng.normal();
  return tf.tensor(out, [...shape], 'float32');
}

export function uniform(shape: InitShape, rng: Rng, low: number, high: number): tf.Tensor {
  const out = new Float32Array(sizeOf(shape));
  for (let i = 0; i < out.length; i++) out[i] = low + (high - low) * rng.random();
  return tf.tensor(out, [...shape], 'float32');
}

export function zeros(shape: InitShape): tf.Tensor {
  return tf.zeros([...shape], 'float32');
}

export function ones(shape: InitShape): tf.Tensor {
  return tf.ones([...shape], 'float32');
}

export function constant(shape: InitShape, value: number): tf.Tensor {
  return tf.fill([...shape], value, 'float32');
}
