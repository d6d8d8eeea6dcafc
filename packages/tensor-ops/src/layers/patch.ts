import * as tf from '@tensorflow/tfjs-core';
import { Module, type Parameter } from '../module.js';
import { Rng } from '../rng.js';
import { truncNormal, uniform, zeros } from '../init.js';

/**
 * A convolution whose windows do not overlap (kernel = stride = k, no padding), as reshape + one 2-D matmul:
 * exact, on the wasm fast path, and differentiable without a conv backprop kernel.
 *
 * `x` [B, H, W, C] NHWC, `w` [k, k, C, O] (HWIO), `b` [O] or null → [B, ⌊H/k⌋, ⌊W/k⌋, O].
 * Sizes not divisible by k are floored (the last rows/columns are dropped), as PyTorch's Conv2d does.
 */
export function nonOverlappingConv2d(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor | null, k: number): tf.Tensor {
  if (x.rank !== 4) throw new Error(`nonOverlappingConv2d: expected a [B, H, W, C] input, got shape [${x.shape}]`);
  const [B, H, W, C] = x.shape as [number, number, number, number];
  if (!(Number.isInteger(k) && k >= 1)) throw new Error(`nonOverlappingConv2d: kernel must be a positive integer, got ${k}`);
  if (w.rank !== 4 || w.shape[0] !== k || w.shape[1] !== k || w.shape[2] !== C) {
    throw new Error(`nonOverlappingConv2d: expected a weight of shape [${k}, ${k}, ${C}, O] (HWIO), got [${w.shape}]`);
  }
  const O = w.shape[3]!;
  if (b && (b.rank !== 1 || b.shape[0] !== O)) {
    throw new Error(`nonOverlappingConv2d: expected a bias of shape [${O}], got [${b.shape}]`);
  }
  const Ho = Math.floor(H / k);
  const Wo = Math.floor(W / k);
  if (Ho === 0 || Wo === 0) throw new Error(`nonOverlappingConv2d: input ${H}×${W} is smaller than the ${k}×${k} kernel`);
  return tf.tidy(() => {
    let xc = x;
    if (Ho * k !== H || Wo * k !== W) xc = tf.slice(x, [0, 0, 0, 0], [B, Ho * k, Wo * k, C]);
    // [B·Ho, k, Wo, k·C] → [B·Ho, Wo, k, k·C]: rank-4 transpose; the flattened window order (kh, kw, c)
    // is exactly HWIO's row order, so the weight reshapes to [k·k·C, O] for free.
    const t = tf.transpose(tf.reshape(xc, [B * Ho, k, Wo, k * C]), [0, 2, 1, 3]);
    let y = tf.matMul(tf.reshape(t, [B * Ho * Wo, k * k * C]), tf.reshape(w, [k * k * C, O]));
    if (b) y = tf.add(y, b);
    return tf.reshape(y, [B, Ho, Wo, O]);
  });
}

export interface PatchEmbedOptions {
  /** [H, W] (or one number for square) the model is built for. Inputs must match exactly. */
  imgSize: number | readonly [number, number];
  patchSize: number;
  inChans?: number;
  embedDim: number;
  /** `tokens`: [B, N, D] row-major (timm's flatten(2).transpose(1,2)); `nhwc`: [B, H/p, W/p, D]. */
  output?: 'tokens' | 'nhwc';
  rng?: Rng;
}

/** timm `PatchEmbed`: `proj` = Conv2d(inChans, embedDim, k = stride = patchSize), computed as a matmul. */
export class PatchEmbed extends Module {
  readonly proj: PatchProj;
  readonly imgSize: [number, number];
  readonly gridSize: [number, number];
  readonly numPatches: number;
  readonly patchSize: number;
  readonly inChans: number;
  private readonly output: 'tokens' | 'nhwc';

  constructor(opts: PatchEmbedOptions) {
    super();
    const [H, W] = typeof opts.imgSize === 'number' ? [opts.imgSize, opts.imgSize] : opts.imgSize;
    const p = opts.patchSize;
    if (H % p !== 0 || W % p !== 0) {
      throw new Error(`PatchEmbed: image size ${H}×${W} must be a multiple of the patch size ${p}`);
    }
    this.imgSize = [H, W];
    this.patchSize = p;
    this.inChans = opts.inChans ?? 3;
    this.gridSize = [H / p, W / p];
    this.numPatches = (H / p) * (W / p);
    this.output = opts.output ?? 'tokens';
    this.proj = this.registerModule('proj', new PatchProj(this.inChans, opts.embedDim, p, opts.rng ?? new Rng(0)));
  }

  forward(x: tf.Tensor): tf.Tensor {
    const [H, W] = this.imgSize;
    if (x.rank !== 4 || x.shape[1] !== H || x.shape[2] !== W || x.shape[3] !== this.inChans) {
      throw new Error(
        `PatchEmbed: expected input of shape [B, ${H}, ${W}, ${this.inChans}] (NHWC float32), got [${x.shape}]`,
      );
    }
    if (this.output === 'nhwc') return this.proj.forward(x);
    return tf.tidy(() => {
      const y = this.proj.forward(x);
      return tf.reshape(y, [x.shape[0]!, this.numPatches, y.shape[3]!]);
    });
  }
}

/** A Conv2d with kernel = stride (PyTorch names `weight` (O, I, k, k), `bias`), NHWC in and out. */
export class PatchProj extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter | null;
  constructor(
    readonly inChans: number,
    readonly outChans: number,
    readonly kernel: number,
    rng: Rng = new Rng(0),
    opts: { bias?: boolean; init?: 'torch' | { truncNormalStd: number } } = {},
  ) {
    super();
    const fanIn = inChans * kernel * kernel;
    const init = opts.init ?? 'torch';
    const shape = [kernel, kernel, inChans, outChans];
    // PyTorch's Conv2d default (kaiming-uniform with a = √5 ⇒ U(±1/√fanIn)) unless a trunc-normal std is given.
    const bound = 1 / Math.sqrt(fanIn);
    const w = init === 'torch' ? uniform(shape, rng, -bound, bound) : truncNormal(shape, rng, init.truncNormalStd);
    this.weight = this.registerParameter('weight', w, { layout: 'conv' });
    const b = init === 'torch' ? uniform([outChans], rng, -bound, bound) : zeros([outChans]);
    if (opts.bias ?? true) this.bias = this.registerParameter('bias', b, { noWeightDecay: true });
    else {
      b.dispose();
      this.bias = null;
    }
  }
  forward(x: tf.Tensor): tf.Tensor {
    return nonOverlappingConv2d(x, this.weight.value, this.bias?.value ?? null, this.kernel);
  }
}
