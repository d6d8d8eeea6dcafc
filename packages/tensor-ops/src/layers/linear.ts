import * as tf from '@tensorflow/tfjs-core';
import { Module, type Parameter } from '../module.js';
import { Rng } from '../rng.js';
import { truncNormal, uniform, zeros } from '../init.js';
import { gelu } from './activation.js';
import { fusedLinearApplies, LINEAR_KERNEL, recordingGradients } from '../kernels/wasm-batch-matmul.js';

export interface LinearOptions {
  bias?: boolean;
  /** `trunc_normal(std)` as timm's ViT/ConvNeXt init; `torch` is PyTorch's default kaiming-uniform. */
  init?: { kind: 'trunc_normal'; std: number } | { kind: 'torch' } | { kind: 'zeros' };
  rng?: Rng;
}

/**
 * `y = x W^T + b` with PyTorch names `weight` `(out, in)` / `bias`, held as `[in, out]`.
 * Inputs of any rank ≥ 2 are flattened to `[rows, in]` for one 2-D matmul (the wasm backend's fast path;
 * a batched matmul there is ~13× slower), then reshaped back.
 */
export class Linear extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter | null;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    opts: LinearOptions = {},
  ) {
    super();
    const { w, b } = linearInit(inFeatures, outFeatures, opts.init, opts.rng);
    this.weight = this.registerParameter('weight', w, { layout: 'linear' });
    if (opts.bias ?? true) this.bias = this.registerParameter('bias', b, { noWeightDecay: true });
    else {
      b.dispose();
      this.bias = null;
    }
  }

  forward(x: tf.Tensor): tf.Tensor {
    return linear(x, this.weight.value, this.bias?.value ?? null);
  }

  /** `gelu(this.forward(x))`, fused into the product on wasm at inference (`linearGelu`). */
  forwardGelu(x: tf.Tensor): tf.Tensor {
    return linearGelu(x, this.weight.value, this.bias?.value ?? null);
  }
}

/**
 * Initial `[in, out]` weight and `[out]` bias of a linear layer (new tensors): timm's `trunc_normal(std)`
 * (default std 0.02), PyTorch's default (`torch`), or zeros. Shared by `Linear` and `ClassifierHead`.
 */
export function linearInit(
  inFeatures: number,
  outFeatures: number,
  init: LinearOptions['init'] = { kind: 'trunc_normal', std: 0.02 },
  rng: Rng = new Rng(0),
): { w: tf.Tensor; b: tf.Tensor } {
  if (init.kind === 'trunc_normal') return { w: truncNormal([inFeatures, outFeatures], rng, init.std), b: zeros([outFeatures]) };
  if (init.kind === 'zeros') return { w: zeros([inFeatures, outFeatures]), b: zeros([outFeatures]) };
  const bound = 1 / Math.sqrt(inFeatures);
  const w = uniform([inFeatures, outFeatures], rng, -bound, bound);
  return { w, b: uniform([outFeatures], rng, -bound, bound) };
}

/** Functional linear: `x` [..., in], `w` [in, out] (tfjs layout), `b` [out] or null. */
export function linear(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor | null): tf.Tensor {
  checkLinear(x, w, b);
  return linearWith(x, w, b, 'none');
}

/**
 * `gelu(linear(x, w, b))`. On wasm, outside gradient recording, one `SoftbiasLinear` call with the bias and GELU in
 * the GEMM's epilogue (bit-identical to the separate kernels); while a gradient is recorded (training) the GELU is
 * its own kernel, which saves only its input for the backward pass.
 */
export function linearGelu(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor | null): tf.Tensor {
  checkLinear(x, w, b);
  if (!recordingGradients()) return linearWith(x, w, b, 'gelu');
  return tf.tidy(() => gelu(linearWith(x, w, b, 'none')));
}

function checkLinear(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor | null): void {
  if (w.rank !== 2) throw new Error(`linear: expected a weight of shape [in, out], got [${w.shape}]`);
  if (x.rank < 1 || x.shape[x.rank - 1] !== w.shape[0]) {
    throw new Error(`Linear: expected an input of shape [..., ${w.shape[0]}], got [${x.shape}]`);
  }
  if (b && (b.rank !== 1 || b.shape[0] !== w.shape[1])) {
    throw new Error(`linear: expected a bias of shape [${w.shape[1]}], got [${b.shape}]`);
  }
}

/** The product on [rows, in], the bias (and GELU) fused on wasm when `fusedLinearApplies`, else separate ops. */
function linearWith(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor | null, activation: 'none' | 'gelu'): tf.Tensor {
  const inF = w.shape[0]!;
  const outF = w.shape[1]!;
  return tf.tidy(() => {
    const rows = inF === 0 ? 0 : x.size / inF;
    if (x.rank >= 2 && x.dtype === 'float32' && w.dtype === 'float32' && (!b || b.dtype === 'float32') && rows > 0 && fusedLinearApplies(rows, inF, outF)) {
      // Any rank: the kernel takes the leading dimensions as rows (no reshapes).
      return tf.engine().runKernel(LINEAR_KERNEL, b ? { x, weight: w, bias: b } : { x, weight: w }, { activation }) as tf.Tensor;
    }
    const x2 = x.rank === 2 ? x : tf.reshape(x, [rows, inF]);
    let y = tf.matMul(x2, w);
    if (b) y = tf.add(y, b);
    if (activation === 'gelu') y = gelu(y);
    return x.rank === 2 ? y : tf.reshape(y, [...x.shape.slice(0, -1), outF]);
  });
}
