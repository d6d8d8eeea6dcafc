/** Test helper: the fcmae_tiny fixture encoder as `EncoderWeights` (PyTorch layouts converted to tfjs). */
import * as tf from '@tensorflow/tfjs-core';
import { fromTorch, type ParamLayout } from '@softbias/tensor-ops';
import type { EncoderWeights, BlockWeights } from '../src/weights.js';

type Raw = Map<string, { data: Float32Array; shape: number[] }>;

export function encoderWeightsFrom(raw: Raw, prefix = 'encoder.'): { weights: EncoderWeights; dispose: () => void } {
  const made: tf.Tensor[] = [];
  const get = (k: string, layout: ParamLayout = 'plain'): tf.Tensor => {
    const e = raw.get(prefix + k);
    if (!e) throw new Error(`missing ${prefix + k}`);
    const t = tf.tidy(() => fromTorch(layout, tf.tensor(e.data, e.shape, 'float32')));
    made.push(t);
    return t;
  };
  const depths: number[] = [];
  for (let i = 0; i < 4; i++) {
    let d = 0;
    while (raw.has(`${prefix}stages.${i}.blocks.${d}.conv_dw.weight`)) d++;
    depths.push(d);
  }
  const block = (p: string): BlockWeights => ({
    convDw: { weight: get(`${p}.conv_dw.weight`, 'depthwise'), bias: get(`${p}.conv_dw.bias`) },
    norm: { weight: get(`${p}.norm.weight`), bias: get(`${p}.norm.bias`) },
    fc1: { weight: get(`${p}.mlp.fc1.weight`, 'linear'), bias: get(`${p}.mlp.fc1.bias`) },
    grn: { weight: get(`${p}.mlp.grn.weight`), bias: get(`${p}.mlp.grn.bias`) },
    fc2: { weight: get(`${p}.mlp.fc2.weight`, 'linear'), bias: get(`${p}.mlp.fc2.bias`) },
  });
  const weights: EncoderWeights = {
    stem: {
      conv: { weight: get('stem.0.weight', 'conv'), bias: get('stem.0.bias') },
      norm: { weight: get('stem.1.weight'), bias: get('stem.1.bias') },
    },
    stages: depths.map((d, i) => ({
      downsample:
        i === 0
          ? null
          : {
              norm: { weight: get(`stages.${i}.downsample.0.weight`), bias: get(`stages.${i}.downsample.0.bias`) },
              conv: { weight: get(`stages.${i}.downsample.1.weight`, 'conv'), bias: get(`stages.${i}.downsample.1.bias`) },
            },
      blocks: Array.from({ length: d }, (_, j) => block(`stages.${i}.blocks.${j}`)),
    })),
  };
  return {
    weights,
    dispose: () =>
      made.forEach((t) => {
        t.dispose();
      }),
  };
}

/** Random encoder weights (O(1) activations) for given dims/depths, seeded through tfjs-independent data. */
export function randomEncoderWeights(
  dims: number[],
  depths: number[],
  seed: number,
  inChans = 3,
): { weights: EncoderWeights; dispose: () => void } {
  const made: tf.Tensor[] = [];
  let s = seed >>> 0;
  const rnd = () => {
    // splitmix32 → uniform → approx normal (sum of 4 uniforms, unit variance)
    let acc = 0;
    for (let i = 0; i < 4; i++) {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      acc += ((z ^ (z >>> 16)) >>> 0) / 4294967296;
    }
    return (acc - 2) * Math.sqrt(3);
  };
  const t = (shape: number[], std: number, mean = 0): tf.Tensor => {
    const n = shape.reduce((a, b) => a * b, 1);
    const d = new Float32Array(n);
    for (let i = 0; i < n; i++) d[i] = mean + std * rnd();
    const x = tf.tensor(d, shape, 'float32');
    made.push(x);
    return x;
  };
  const norm = (c: number) => ({ weight: t([c], 0.2, 1), bias: t([c], 0.1) });
  const weights: EncoderWeights = {
    stem: { conv: { weight: t([4, 4, inChans, dims[0]!], 1 / Math.sqrt(16 * inChans)), bias: t([dims[0]!], 0.1) }, norm: norm(dims[0]!) },
    stages: dims.map((c, i) => ({
      downsample: i === 0 ? null : { norm: norm(dims[i - 1]!), conv: { weight: t([2, 2, dims[i - 1]!, c], 1 / Math.sqrt(4 * dims[i - 1]!)), bias: t([c], 0.1) } },
      blocks: Array.from({ length: depths[i]! }, () => ({
        convDw: { weight: t([7, 7, c, 1], 1 / 7), bias: t([c], 0.1) },
        norm: norm(c),
        fc1: { weight: t([c, 4 * c], 1 / Math.sqrt(c)), bias: t([4 * c], 0.1) },
        grn: { weight: t([4 * c], 0.5), bias: t([4 * c], 0.2) },
        fc2: { weight: t([4 * c, c], 1 / Math.sqrt(4 * c)), bias: t([c], 0.1) },
      })),
    })),
  };
  return {
    weights,
    dispose: () =>
      made.forEach((x) => {
        x.dispose();
      }),
  };
}
