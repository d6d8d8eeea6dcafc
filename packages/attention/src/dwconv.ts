/**
 * Depth-wise convolution over the token grid as a token mixer (DWNet, Han et al. 2021, "On the Connection
 * between Local Attention and Dynamic Depth-wise Convolution" / "Demystifying Local Vision Transformer"):
 * tokens → grid (NHWC) → k×k depth-wise convolution (same padding) → tokens → optional `proj`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Linear, Module, Rng, truncNormal, zeros, type Parameter } from '@softbias/tensor-ops';
import { TokenMixer, checkGeometry, checkMixerInput, type MixerGeometry, type MixerInput, type MixerMacs } from './mixer.js';
import { checkPositiveInt, joinPrefix, splitPrefix } from './core.js';

/**
 * Depth-wise k×k convolution, stride 1, 'same' zero padding, odd k: `x` [B, H, W, C], `w` [k, k, C, 1].
 *
 * `tf.depthwiseConv2d` with tfjs' own gradient: the DepthwiseConv2dNativeBackpropInput/Filter kernels exist on
 * cpu and webgpu, and on wasm @softbias/tensor-ops registers its SIMD kernels for them (one depth-wise gradient
 * route for every mixer and model).
 */
export function depthwiseConv2dSame(x: tf.Tensor4D, w: tf.Tensor4D): tf.Tensor4D {
  return tf.depthwiseConv2d(x, w, 1, 'same');
}

/**
 * Per-sample depth-wise convolution: `x` [B, H, W, C], `kernels` [B, C, k, k] (sample b's kernel for channel c
 * at [b, c]), same padding. The batch is folded into channels for one depth-wise convolution (as DWNet's
 * grouped convolution over B·C channels).
 */
export function perSampleDepthwiseConv2d(x: tf.Tensor4D, kernels: tf.Tensor4D): tf.Tensor4D {
  const [B, H, W, C] = x.shape;
  const k = kernels.shape[2];
  return tf.tidy(() => {
    const xf = tf.reshape(tf.transpose(x, [1, 2, 0, 3]), [1, H, W, B * C]) as tf.Tensor4D;
    const wf = tf.reshape(tf.transpose(kernels, [2, 3, 0, 1]), [k, k, B * C, 1]) as tf.Tensor4D;
    const y = depthwiseConv2dSame(xf, wf); // [1, H, W, B·C]
    return tf.transpose(tf.reshape(y, [H, W, B, C]), [2, 0, 1, 3]) as tf.Tensor4D;
  });
}

/** Static depth-wise convolution: `weight` (C, 1, k, k) in PyTorch layout (held [k, k, C, 1]) and `bias` (C). */
export class DepthwiseConv extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter;
  constructor(
    readonly dim: number,
    readonly kernelSize: number,
    rng: Rng,
  ) {
    super();
    this.weight = this.registerParameter('weight', truncNormal([kernelSize, kernelSize, dim, 1], rng, 0.02), {
      layout: 'depthwise',
    });
    this.bias = this.registerParameter('bias', zeros([dim]), { noWeightDecay: true });
  }
  /** `x` [B, H, W, C] → [B, H, W, C]. */
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => tf.add(depthwiseConv2dSame(x, this.weight.value as tf.Tensor4D), this.bias.value));
  }
}

/**
 * Dynamic depth-wise convolution (DWNet's dynamic variant): each sample's k×k kernels are predicted from its
 * globally average-pooled input, `kernels = fc2(relu(fc1(mean_{H,W}(x))))` reshaped (C, k, k) channel-major,
 * then applied as a depth-wise convolution (same padding) plus a learned per-channel `bias`.
 * Parameters: `fc1` (C → C/reduction, bias), `fc2` (C/reduction → C·k², bias), `bias` (C).
 * DWNet's BatchNorm after the reduction is replaced by fc1's bias (no running statistics).
 */
export class DynamicDepthwiseConv extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  readonly bias: Parameter;
  constructor(
    readonly dim: number,
    readonly kernelSize: number,
    readonly reduction: number,
    rng: Rng,
  ) {
    super();
    const hidden = Math.max(1, Math.floor(dim / reduction));
    const init = { kind: 'trunc_normal' as const, std: 0.02 };
    this.fc1 = this.registerModule('fc1', new Linear(dim, hidden, { bias: true, init, rng }));
    this.fc2 = this.registerModule('fc2', new Linear(hidden, dim * kernelSize * kernelSize, { bias: true, init, rng }));
    this.bias = this.registerParameter('bias', zeros([dim]), { noWeightDecay: true });
  }
  /** The per-sample kernels [B, C, k, k] for `x` [B, H, W, C]. */
  kernels(x: tf.Tensor4D): tf.Tensor4D {
    const [B, , , C] = x.shape;
    const k = this.kernelSize;
    return tf.tidy(() => {
      const pooled = tf.mean(x, [1, 2]); // [B, C]
      const w = this.fc2.forward(tf.relu(this.fc1.forward(pooled)));
      return tf.reshape(w, [B, C, k, k]) as tf.Tensor4D;
    });
  }
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => tf.add(perSampleDepthwiseConv2d(x, this.kernels(x)), this.bias.value));
  }
}

export interface DwConvMixerOptions {
  dim: number;
  /** Odd kernel size (same padding keeps the grid). Default 7 (DWNet). */
  kernelSize?: number;
  /** Predict the kernels per sample (DWNet's dynamic variant). Default false. */
  dynamic?: boolean;
  /** Channel reduction of the dynamic kernel generator (fc1: C → C/reduction). Default 4. */
  reduction?: number;
  /** Linear `proj` (C → C, bias) after the convolution, as the output projection DWNet keeps. Default true. */
  proj?: boolean;
  rng?: Rng;
}

/**
 * Token mixer: depth-wise (static or dynamic) convolution over the patch grid, then `proj`. Parameter names:
 * static `conv.weight` (C, 1, k, k), `conv.bias`; dynamic `conv.fc1.*`, `conv.fc2.*`, `conv.bias`; `proj.*`.
 * No nonlinearity between conv and proj (like attention → proj). Prefix tokens pass through unchanged.
 */
export class DwConvMixer extends TokenMixer {
  readonly kind = 'dwconv';
  readonly dim: number;
  readonly kernelSize: number;
  readonly dynamic: boolean;
  readonly conv: DepthwiseConv | DynamicDepthwiseConv;
  readonly proj: Linear | null;

  constructor(opts: DwConvMixerOptions) {
    super();
    const { dim } = opts;
    const k = opts.kernelSize ?? 7;
    checkPositiveInt('DwConvMixer', 'dim', dim);
    checkPositiveInt('DwConvMixer', 'kernelSize', k);
    if (k % 2 !== 1) throw new RangeError(`DwConvMixer: kernelSize must be odd (same padding), got ${k}`);
    const reduction = opts.reduction ?? 4;
    checkPositiveInt('DwConvMixer', 'reduction', reduction);
    const rng = opts.rng ?? new Rng(0);
    this.dim = dim;
    this.kernelSize = k;
    this.dynamic = opts.dynamic ?? false;
    this.conv = this.registerModule(
      'conv',
      this.dynamic ? new DynamicDepthwiseConv(dim, k, reduction, rng) : new DepthwiseConv(dim, k, rng),
    );
    this.proj =
      opts.proj ?? true
        ? this.registerModule('proj', new Linear(dim, dim, { bias: true, init: { kind: 'trunc_normal', std: 0.02 }, rng }))
        : null;
  }

  /**
   * PyTorch names and shapes of the parameters of a `DwConvMixer` built with `opts`: static `conv.weight`
   * (C, 1, k, k), `conv.bias` (C); dynamic `conv.bias` (C), `conv.fc1.weight` (C/r, C), `conv.fc1.bias` (C/r),
   * `conv.fc2.weight` (C·k², C/r), `conv.fc2.bias` (C·k²); then `proj.weight` (C, C), `proj.bias` (C) unless
   * `proj: false`.
   */
  static parameterShapes(opts: DwConvMixerOptions): [string, number[]][] {
    const C = opts.dim;
    const k = opts.kernelSize ?? 7;
    const hidden = Math.max(1, Math.floor(C / (opts.reduction ?? 4)));
    const conv: [string, number[]][] = opts.dynamic
      ? [
          ['conv.bias', [C]],
          ['conv.fc1.weight', [hidden, C]],
          ['conv.fc1.bias', [hidden]],
          ['conv.fc2.weight', [C * k * k, hidden]],
          ['conv.fc2.bias', [C * k * k]],
        ]
      : [
          ['conv.weight', [C, 1, k, k]],
          ['conv.bias', [C]],
        ];
    const proj: [string, number[]][] = opts.proj ?? true ? [['proj.weight', [C, C]], ['proj.bias', [C]]] : [];
    return [...conv, ...proj];
  }

  /**
   * Per image over the P = rows·cols patch tokens: the depth-wise convolution P·C·k²; dynamic: the kernel
   * generator fc1 C·C/r and fc2 C/r·C·k² (once per image, on the pooled input); proj P·C².
   */
  override macs(g: MixerGeometry): MixerMacs[] {
    checkGeometry('DwConvMixer', g);
    const P = g.grid[0] * g.grid[1];
    const C = this.dim;
    const k2 = this.kernelSize * this.kernelSize;
    const out: MixerMacs[] = [];
    if (this.dynamic) {
      const hidden = (this.conv as DynamicDepthwiseConv).fc1.outFeatures;
      out.push({ name: 'conv.fc1', op: 'linear', macs: C * hidden });
      out.push({ name: 'conv.fc2', op: 'linear', macs: hidden * C * k2 });
    }
    out.push({ name: 'conv', op: 'depthwise', macs: P * C * k2 });
    if (this.proj) out.push({ name: 'proj', op: 'linear', macs: P * C * C });
    return out;
  }

  /** [B, N, C] → [B, N, C]; prefix tokens are returned unchanged. */
  forward(input: MixerInput): tf.Tensor3D {
    checkMixerInput('DwConvMixer', input, this.dim);
    return tf.tidy(() => {
      const [B, N, C] = input.tokens.shape as [number, number, number];
      const [rows, cols] = input.grid;
      const [prefix, patches] = splitPrefix(input.tokens, input.numPrefixTokens);
      const grid = tf.reshape(patches, [B, rows, cols, C]) as tf.Tensor4D;
      let y: tf.Tensor = tf.reshape(this.conv.forward(grid), [B * rows * cols, C]);
      if (this.proj) y = this.proj.forward(y);
      return tf.reshape(joinPrefix(prefix, tf.reshape(y, [B, rows * cols, C])), [B, N, C]) as tf.Tensor3D;
    });
  }
}
