/**
 * ConvNeXt V2 building blocks, channels-last, with timm parameter names. Every op of a block is reachable on
 * its own (`block.convDw`, `block.norm`, `block.mlp.fc1`, `gelu`, `block.mlp.grn`, `block.mlp.fc2`,
 * `block.dropPath`) so masked / sparse encoders (FCMAE) can interleave their own steps.
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  Module,
  ModuleList,
  type Parameter,
  Rng,
  LayerNorm,
  Linear,
  DropPath,
  PatchProj,
  gradCheckpoint,
  truncNormal,
  zeros,
} from '@softbias/tensor-ops';
import { ClassifierHead } from '@softbias/tensor-ops/models';
import { Grn } from '@softbias/grn';

const INIT_STD = 0.02;

/**
 * Depth-wise k×k convolution, stride 1, zero padding (k−1)/2 ("same"), with bias: PyTorch
 * `Conv2d(C, C, k, padding=k//2, groups=C)`, weight `(C, 1, k, k)` held as `[k, k, C, 1]`.
 */
export class DepthwiseConv2d extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter;
  constructor(
    readonly dim: number,
    readonly kernel = 7,
    rng: Rng = new Rng(0),
  ) {
    super();
    if (kernel % 2 !== 1) throw new Error(`DepthwiseConv2d: kernel must be odd, got ${kernel}`);
    this.weight = this.registerParameter('weight', truncNormal([kernel, kernel, dim, 1], rng, INIT_STD), { layout: 'depthwise' });
    this.bias = this.registerParameter('bias', zeros([dim]), { noWeightDecay: true });
  }
  forward(x: tf.Tensor): tf.Tensor {
    if (x.rank !== 4 || x.shape[3] !== this.dim) {
      throw new Error(`DepthwiseConv2d: expected input of shape [B, H, W, ${this.dim}], got [${x.shape}]`);
    }
    return tf.tidy(() => tf.add(tf.depthwiseConv2d(x as tf.Tensor4D, this.weight.value as tf.Tensor4D, 1, 'same'), this.bias.value));
  }
}

/** timm `GlobalResponseNormMlp`: `fc1` (C → 4C) → exact GELU → `grn` → `fc2` (4C → C), on the last axis. */
export class ConvNeXtV2Mlp extends Module {
  readonly fc1: Linear;
  readonly grn: Grn;
  readonly fc2: Linear;
  constructor(
    readonly dim: number,
    readonly hidden: number,
    rng: Rng = new Rng(0),
  ) {
    super();
    const init = { kind: 'trunc_normal' as const, std: INIT_STD };
    this.fc1 = this.registerModule('fc1', new Linear(dim, hidden, { rng, init }));
    this.grn = this.registerModule('grn', new Grn(hidden));
    this.fc2 = this.registerModule('fc2', new Linear(hidden, dim, { rng, init }));
  }
  /** `x` [B, H, W, C] → [B, H, W, C]. */
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => this.fc2.forward(this.grn.forward(this.fc1.forwardGelu(x))));
  }
}

/**
 * ConvNeXt V2 block: `x + dropPath(fc2(grn(gelu(fc1(norm(dwconv7x7(x)))))))` (no layer scale).
 * Names: `conv_dw`, `norm`, `mlp.fc1`, `mlp.grn`, `mlp.fc2`.
 */
export class ConvNeXtV2Block extends Module {
  readonly convDw: DepthwiseConv2d;
  readonly norm: LayerNorm;
  readonly mlp: ConvNeXtV2Mlp;
  readonly dropPath: DropPath;
  constructor(
    readonly dim: number,
    opts: { dropPath?: number; rng?: Rng; mlpRatio?: number; kernel?: number } = {},
  ) {
    super();
    const rng = opts.rng ?? new Rng(0);
    this.convDw = this.registerModule('conv_dw', new DepthwiseConv2d(dim, opts.kernel ?? 7, rng));
    this.norm = this.registerModule('norm', new LayerNorm(dim, 1e-6));
    this.mlp = this.registerModule('mlp', new ConvNeXtV2Mlp(dim, Math.round((opts.mlpRatio ?? 4) * dim), rng));
    this.dropPath = this.registerModule('drop_path', new DropPath(opts.dropPath ?? 0, rng.fork()));
  }
  /** The residual branch alone (dwconv → norm → mlp), before drop path. */
  branch(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => this.mlp.forward(this.norm.forward(this.convDw.forward(x))));
  }
  /** `x` [B, H, W, C] → [B, H, W, C], in one `tf.tidy`. */
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => tf.add(x, this.dropPath.forward(this.branch(x))));
  }
}

/** Stem: `0` = Conv2d(inChans, C, 4, stride 4) as reshape + matmul, `1` = LayerNorm over channels. */
export class ConvNeXtV2Stem extends Module {
  readonly conv: PatchProj;
  readonly norm: LayerNorm;
  constructor(
    readonly inChans: number,
    readonly dim: number,
    rng: Rng = new Rng(0),
    readonly patchSize = 4,
  ) {
    super();
    this.conv = this.registerModule('0', new PatchProj(inChans, dim, patchSize, rng, { init: { truncNormalStd: INIT_STD } }));
    this.norm = this.registerModule('1', new LayerNorm(dim, 1e-6));
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => this.norm.forward(this.conv.forward(x)));
  }
}

/** Downsampling between stages: `0` = LayerNorm over channels, `1` = Conv2d(in, out, 2, stride 2, no padding). */
export class ConvNeXtV2Downsample extends Module {
  readonly norm: LayerNorm;
  readonly conv: PatchProj;
  constructor(
    readonly inDim: number,
    readonly outDim: number,
    rng: Rng = new Rng(0),
  ) {
    super();
    this.norm = this.registerModule('0', new LayerNorm(inDim, 1e-6));
    this.conv = this.registerModule('1', new PatchProj(inDim, outDim, 2, rng, { init: { truncNormalStd: INIT_STD } }));
  }
  /** [B, H, W, in] → [B, ⌊H/2⌋, ⌊W/2⌋, out] (an odd last row/column is dropped, as PyTorch does). */
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => this.conv.forward(this.norm.forward(x)));
  }
}

/** A stage: optional `downsample`, then `blocks.0 …`. */
export class ConvNeXtV2Stage extends Module {
  readonly downsample: ConvNeXtV2Downsample | null;
  readonly blocks: ModuleList<ConvNeXtV2Block>;
  constructor(
    readonly inDim: number,
    readonly dim: number,
    depth: number,
    opts: { downsample: boolean; dropPathRates?: readonly number[]; rng?: Rng },
  ) {
    super();
    const rng = opts.rng ?? new Rng(0);
    this.downsample = opts.downsample ? this.registerModule('downsample', new ConvNeXtV2Downsample(inDim, dim, rng)) : null;
    const blocks: ConvNeXtV2Block[] = [];
    for (let j = 0; j < depth; j++) blocks.push(new ConvNeXtV2Block(dim, { dropPath: opts.dropPathRates?.[j] ?? 0, rng }));
    this.blocks = this.registerModule('blocks', new ModuleList(blocks));
  }
  /** Recompute each block's activations in the backward pass instead of keeping them (`setGradCheckpointing`). */
  gradCheckpointing = false;
  /** Runs downsample and blocks, one `tf.tidy` each; intermediates are freed, the input is not. */
  forward(x: tf.Tensor): tf.Tensor {
    let y = this.downsample ? this.downsample.forward(x) : x;
    for (const block of this.blocks) {
      const next = this.gradCheckpointing ? gradCheckpoint(block, y, (t) => block.forward(t)) : block.forward(y);
      if (y !== x) y.dispose();
      y = next;
    }
    return y === x ? tf.clone(x) : y;
  }
}

/**
 * Head: global average pool over H, W → `norm` (LayerNorm) → `fc` (timm's `NormMlpClassifierHead`; `fc` is
 * the shared `ClassifierHead`: linear, or the identity when numClasses = 0). `reset` swaps `fc` in place.
 */
export class ConvNeXtV2Head extends Module {
  readonly norm: LayerNorm;
  private _fc: ClassifierHead;
  constructor(
    readonly dim: number,
    numClasses: number,
    rng: Rng = new Rng(0),
    headInitScale = 1,
  ) {
    super();
    this.norm = this.registerModule('norm', new LayerNorm(dim, 1e-6));
    this._fc = this.registerModule('fc', ConvNeXtV2Head.classifier(dim, numClasses, rng, headInitScale));
  }

  private static classifier(dim: number, numClasses: number, rng: Rng, headInitScale: number): ClassifierHead {
    if (!Number.isInteger(numClasses) || numClasses < 0) throw new Error(`numClasses must be an integer ≥ 0, got ${numClasses}`);
    return new ClassifierHead(dim, numClasses, { rng, init: { kind: 'trunc_normal', std: INIT_STD }, scale: headInitScale });
  }

  /** The linear classifier, or null when there is none (numClasses = 0). */
  get fc(): ClassifierHead | null {
    return this._fc.isIdentity ? null : this._fc;
  }

  get numClasses(): number {
    return this._fc.numClasses;
  }

  /** Replace the classifier by a fresh one with `numClasses` outputs (0 = none), timm init × scale. */
  reset(numClasses: number, rng: Rng = new Rng(0), headInitScale = 1): void {
    this._fc = this.replaceModule('fc', ConvNeXtV2Head.classifier(this.dim, numClasses, rng, headInitScale));
  }

  /** Pooled, normalised features [B, C] (`preLogits`) or logits [B, numClasses]. */
  forward(x: tf.Tensor, opts: { preLogits?: boolean } = {}): tf.Tensor {
    if (x.rank !== 4 || x.shape[3] !== this.dim) {
      throw new Error(`ConvNeXt V2 head: expected features of shape [B, H, W, ${this.dim}], got [${x.shape}]`);
    }
    return tf.tidy(() => {
      const pre = this.norm.forward(tf.mean(x, [1, 2]));
      return opts.preLogits ? pre : this._fc.forward(pre);
    });
  }
}
