/** Gradient check of a mixer against central finite differences of its float64 reference definition. */
import * as tf from '@tensorflow/tfjs-core';
import { expectClose, defaultAtol, expectNoLeak } from '@softbias/test-utils';
import type { Rng } from '@softbias/tensor-ops';
import type { TokenMixer } from '../src/mixer.js';
import { dot, finiteDiff, randomF32, sampleIndices, tfGrads, type F64, type Params } from './reference.js';

export interface GradCheckOptions {
  mixer: TokenMixer;
  params: Params;
  x: Float32Array;
  shape: [number, number, number];
  grid: readonly [number, number];
  prefix: number;
  /** The float64 definition: output [B, N, C] from the input and the (PyTorch-layout) parameters. */
  ref: (x: F64, params: Params) => F64;
  label: string;
  rng: Rng;
  /** Coordinates checked per tensor (all when fewer). Default 40. */
  maxCoords?: number;
}

/**
 * loss = Σ mixer(x) ⊙ W for a random W; compares tfjs' gradients w.r.t. x and every parameter with central
 * finite differences of the float64 reference (so only float32 rounding separates them), on a sample of
 * coordinates of every tensor, with the project's tolerance rule.
 */
export async function checkMixerGradients(o: GradCheckOptions): Promise<void> {
  const [B, N, C] = o.shape;
  const W = randomF32(B * N * C, o.rng);
  const Wt = tf.tensor(W, o.shape);
  const xv = tf.variable(tf.tensor(o.x, o.shape), true);
  const grads = await expectNoLeak(
    () =>
      tfGrads(o.mixer, xv, () =>
        tf.tidy(() => tf.sum(tf.mul(o.mixer.forward({ tokens: xv, grid: o.grid, numPrefixTokens: o.prefix }), Wt))),
      ),
    `${o.label}: gradient tensors`,
  );
  xv.dispose();
  Wt.dispose();
  const x64 = Float64Array.from(o.x);
  const loss = () => dot(o.ref(x64, o.params), W);
  const max = o.maxCoords ?? 40;
  const check = async (name: string, got: Float32Array, arr: F64) => {
    const idx = sampleIndices(arr.length, max, o.rng);
    const want = finiteDiff(loss, arr, idx);
    const gotAt = idx.map((i) => got[i]!);
    await expectClose(gotAt, want, defaultAtol(want), `${o.label}: d loss / d ${name}`);
  };
  await check('x', grads.x, x64);
  for (const [name, g] of grads.params) await check(name, g, o.params.get(name)!);
}
