/**
 * FCMAE: the fully convolutional masked autoencoder that pre-trains ConvNeXt V2 (official `models/fcmae.py`).
 *
 * A random fraction of the 32×32 patches is removed; the ConvNeXt V2 encoder sees the visible ones only
 * (sparse form from `@softbias/sparse-conv`, or the dense-masked form), a 1×1 conv `proj` maps its output to
 * the decoder width, removed cells get the learned `mask_token`, a few dense ConvNeXt V2 blocks decode, and a
 * 1×1 conv `pred` predicts the pixels of every patch. The loss is the mean squared error on removed patches,
 * optionally against per-patch normalised pixels.
 *
 * Channels-last: images `[B, H, W, C]`, predictions `[B, H/32, W/32, 32·32·C]` whose last axis is the patch
 * vector `(py·32 + px)·C + c` (reshape to `[B, L, 32·32·C]` for the reference's `(N, L, p²·3)`).
 * Parameters use timm-style names (`encoder.stem.0.weight`, `encoder.stages.i.blocks.j.mlp.fc1.weight`,
 * `proj`, `mask_token`, `decoder.j.*`, `pred`); the official dense and sparse checkpoints load too.
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  Module,
  ModuleList,
  Rng,
  normal,
  readSafetensors,
  saveSafetensorsBytes,
  stateDictFromSafetensors,
  truncNormal,
  uniform,
  writeFileAtomic,
  zeros,
  ones,
  type LoadStateDictOptions,
  type LoadStateDictResult,
  type Parameter,
  type SafetensorsFile,
  type StateDict,
  type StateDictEntry,
  type WeightsSource,
} from '@softbias/tensor-ops';
import { assertImageBatch } from '@softbias/tensor-ops';
import type { GrnStats } from '@softbias/grn';
import {
  MacCounter,
  maskedDenseEncoder,
  numKept,
  randomMaskData,
  sparseEncoder,
  type BlockWeights,
  type EncoderWeights,
} from '@softbias/sparse-conv';
import { ConvNeXtV2Block, ConvNeXtV2Stage, ConvNeXtV2Stem } from './blocks.js';
import { ConvNeXtV2 } from './model.js';
import { MODELS, getModelEntry, resolveConfig } from './config.js';
import { toTimmFcmaeStateDict, type FcmaeKeyNaming } from './fcmae-checkpoint.js';

// ------------------------------------------------------------------------------------------------ config

export interface FcmaeConfig {
  /** Image size [H, W] the model is built for (both multiples of `patchSize`). */
  imgSize: [number, number];
  inChans: number;
  depths: [number, number, number, number];
  dims: [number, number, number, number];
  decoderDepth: number;
  decoderEmbedDim: number;
  /** Pixel side of a masked patch: the encoder's total stride, 32. */
  patchSize: number;
  /** Fraction of patches removed per image (`int(L·(1 − ratio))` are kept, as the reference). */
  maskRatio: number;
  /** Loss against per-patch normalised pixels (unbiased variance, eps 1e-6 inside the sqrt). */
  normPixLoss: boolean;
}

export type FcmaeInit = 'official' | 'timm';

export interface CreateFcmaeOptions {
  /** A registered ConvNeXt V2 (`convnextv2_atto` … `convnextv2_huge`) whose depths and dims the encoder takes. */
  model?: string;
  imgSize?: number | readonly [number, number];
  inChans?: number;
  depths?: readonly number[];
  dims?: readonly number[];
  decoderDepth?: number;
  decoderEmbedDim?: number;
  patchSize?: number;
  maskRatio?: number;
  normPixLoss?: boolean;
  /** Seed of the initialisation and of the masks drawn when `forward` is given none. Default 0. */
  seed?: number;
  /**
   * `official` (default): the official FCMAE `_init_weights` as written — `trunc_normal_` with timm's default
   * std 1 for the stem, `proj`, `pred`, every depth-wise conv and the encoder MLP, std 0.02 for the 2×2
   * downsampling convs, PyTorch's default for the decoder MLP, zero biases, `mask_token ~ N(0, 0.02)`.
   * `timm`: std 0.02 truncated normal for every conv and linear weight, zero biases.
   */
  init?: FcmaeInit;
  /** Encoder form `forward` uses unless told otherwise. Default `sparse`. */
  encoder?: 'sparse' | 'dense';
  /** Encoder GRN statistics unless told otherwise: `batch` (reference, default) or `sample`. */
  grnStats?: GrnStats;
}

/** The official FCMAE constructor defaults (`FCMAE()` = ConvNeXt V2 tiny, decoder 512 wide, 1 block). */
const DEFAULTS = {
  imgSize: 224,
  inChans: 3,
  // The official FCMAE() is ConvNeXt V2 tiny.
  depths: getModelEntry('convnextv2_tiny').depths,
  dims: getModelEntry('convnextv2_tiny').dims,
  decoderDepth: 1,
  decoderEmbedDim: 512,
  patchSize: 32,
  maskRatio: 0.6,
  normPixLoss: false,
} as const;

function four(what: string, v: readonly number[]): [number, number, number, number] {
  if (v.length !== 4 || v.some((n) => !Number.isInteger(n) || n < 1)) {
    throw new Error(`FCMAE: ${what} must be 4 positive integers (one per stage), got [${v}]`);
  }
  return [v[0]!, v[1]!, v[2]!, v[3]!];
}

/** The full FCMAE config from options (official defaults), checked. */
export function resolveFcmaeConfig(opts: CreateFcmaeOptions = {}): FcmaeConfig {
  const arch = opts.model ? getModelEntry(opts.model) : null;
  const size = opts.imgSize ?? DEFAULTS.imgSize;
  const imgSize: [number, number] = typeof size === 'number' ? [size, size] : [size[0], size[1]];
  const cfg: FcmaeConfig = {
    imgSize,
    inChans: opts.inChans ?? DEFAULTS.inChans,
    depths: four('depths', opts.depths ?? arch?.depths ?? DEFAULTS.depths),
    dims: four('dims', opts.dims ?? arch?.dims ?? DEFAULTS.dims),
    decoderDepth: opts.decoderDepth ?? DEFAULTS.decoderDepth,
    decoderEmbedDim: opts.decoderEmbedDim ?? DEFAULTS.decoderEmbedDim,
    patchSize: opts.patchSize ?? DEFAULTS.patchSize,
    maskRatio: opts.maskRatio ?? DEFAULTS.maskRatio,
    normPixLoss: opts.normPixLoss ?? DEFAULTS.normPixLoss,
  };
  const posInt = (what: string, n: number, min = 1) => {
    if (!Number.isInteger(n) || n < min) throw new Error(`FCMAE: ${what} must be an integer ≥ ${min}, got ${n}`);
  };
  posInt('inChans', cfg.inChans);
  posInt('decoderDepth', cfg.decoderDepth, 0);
  posInt('decoderEmbedDim', cfg.decoderEmbedDim);
  if (cfg.patchSize !== ENCODER_STRIDE) {
    throw new Error(
      `FCMAE: patchSize must equal the encoder's total stride ${ENCODER_STRIDE} (the mask lives on the last feature grid), got ${cfg.patchSize}`,
    );
  }
  for (const s of cfg.imgSize) {
    if (!Number.isInteger(s) || s < cfg.patchSize || s % cfg.patchSize !== 0) {
      throw new Error(`FCMAE: imgSize must be positive multiples of the patch size ${cfg.patchSize}, got [${cfg.imgSize}]`);
    }
  }
  numKept((cfg.imgSize[0] / cfg.patchSize) * (cfg.imgSize[1] / cfg.patchSize), cfg.maskRatio);
  return cfg;
}

/** Stem 4 × three 2× downsamplings. */
const ENCODER_STRIDE = 32;

// ------------------------------------------------------------------------------------------------ blocks

/** A 1×1 conv (PyTorch `Conv2d(in, out, 1)`, weight `(out, in, 1, 1)` held as `[1, 1, in, out]`) on NHWC maps. */
export class Conv1x1 extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter;
  constructor(
    readonly inChans: number,
    readonly outChans: number,
  ) {
    super();
    this.weight = this.registerParameter('weight', zeros([1, 1, inChans, outChans]), { layout: 'conv' });
    this.bias = this.registerParameter('bias', zeros([outChans]), { noWeightDecay: true });
  }
  /** `[B, H, W, in]` → `[B, H, W, out]` as one 2-D matmul. */
  forward(x: tf.Tensor): tf.Tensor {
    if (x.rank !== 4 || x.shape[3] !== this.inChans) {
      throw new Error(`Conv1x1: expected input of shape [B, H, W, ${this.inChans}], got [${x.shape}]`);
    }
    const [B, H, W] = x.shape as [number, number, number, number];
    return tf.tidy(() => {
      const y = tf.add(tf.matMul(tf.reshape(x, [B * H * W, this.inChans]), tf.reshape(this.weight.value, [this.inChans, this.outChans])), this.bias.value);
      return tf.reshape(y, [B, H, W, this.outChans]);
    });
  }
}

/** The FCMAE encoder: a ConvNeXt V2 trunk without head (`stem`, `stages`), same names as the classifier's. */
export class FcmaeEncoder extends Module {
  readonly stem: ConvNeXtV2Stem;
  readonly stages: ModuleList<ConvNeXtV2Stage>;
  constructor(
    readonly inChans: number,
    readonly depths: readonly number[],
    readonly dims: readonly number[],
    rng: Rng,
  ) {
    super();
    this.stem = this.registerModule('stem', new ConvNeXtV2Stem(inChans, dims[0]!, rng));
    const stages: ConvNeXtV2Stage[] = [];
    for (let i = 0; i < 4; i++) {
      stages.push(new ConvNeXtV2Stage(i === 0 ? dims[0]! : dims[i - 1]!, dims[i]!, depths[i]!, { downsample: i > 0, rng }));
    }
    this.stages = this.registerModule('stages', new ModuleList(stages));
  }

  /** The parameters as plain tensors (tfjs layouts) for the `@softbias/sparse-conv` encoders (no copies). */
  weights(): EncoderWeights {
    const block = (b: ConvNeXtV2Block): BlockWeights => ({
      convDw: { weight: b.convDw.weight.value, bias: b.convDw.bias.value },
      norm: { weight: b.norm.weight.value, bias: b.norm.bias.value },
      fc1: { weight: b.mlp.fc1.weight.value, bias: b.mlp.fc1.bias?.value ?? null },
      grn: { weight: b.mlp.grn.weight.value, bias: b.mlp.grn.bias.value },
      fc2: { weight: b.mlp.fc2.weight.value, bias: b.mlp.fc2.bias?.value ?? null },
    });
    return {
      stem: {
        conv: { weight: this.stem.conv.weight.value, bias: this.stem.conv.bias?.value ?? null },
        norm: { weight: this.stem.norm.weight.value, bias: this.stem.norm.bias.value },
      },
      stages: this.stages.items.map((s) => ({
        downsample: s.downsample
          ? {
              norm: { weight: s.downsample.norm.weight.value, bias: s.downsample.norm.bias.value },
              conv: { weight: s.downsample.conv.weight.value, bias: s.downsample.conv.bias?.value ?? null },
            }
          : null,
        blocks: s.blocks.items.map(block),
      })),
    };
  }
}

// ------------------------------------------------------------------------------------------------- model

/** A patch mask `[B, L]`, 1 = removed: a tensor or row-major host data. */
export type FcmaeMask = tf.Tensor | ArrayLike<number>;

export interface FcmaeRunOptions {
  /** The patch mask; drawn at `maskRatio` from the model's generator when absent. */
  mask?: FcmaeMask;
  /** Encoder form: `sparse` (visible rows only) or `dense` (dense-masked, the reference's equivalent). */
  encoder?: 'sparse' | 'dense';
  /** Encoder GRN statistics: `batch` (the reference sparse encoder) or `sample`. */
  grnStats?: GrnStats;
  /** Overrides the config's `normPixLoss`. */
  normPixLoss?: boolean;
  /** Counts the encoder's multiply-adds. */
  counter?: MacCounter;
}

export interface FcmaeOutput {
  /** Mean loss over removed patches (scalar). */
  loss: tf.Scalar;
  /** Prediction `[B, gh, gw, p·p·C]`, patch vector index `(py·p + px)·C + c`. */
  pred: tf.Tensor4D;
  /** The mask used, `[B, L]`, 1 = removed. */
  mask: tf.Tensor2D;
}

export interface FcmaeLoadResult extends LoadStateDictResult {
  /** The key naming found in the checkpoint. */
  naming: FcmaeKeyNaming;
}

type WeightsInput = WeightsSource | SafetensorsFile | StateDict;

function isStateDict(s: unknown): s is StateDict {
  if (s instanceof Map) return true;
  if (typeof s !== 'object' || s === null || s instanceof Uint8Array || s instanceof ArrayBuffer || s instanceof URL) return false;
  if (typeof (s as SafetensorsFile).getFloat32 === 'function') return false;
  if (typeof Response !== 'undefined' && s instanceof Response) return false;
  if (typeof Blob !== 'undefined' && s instanceof Blob) return false;
  return true;
}

export class Fcmae extends Module {
  readonly config: FcmaeConfig;
  readonly encoder: FcmaeEncoder;
  readonly proj: Conv1x1;
  readonly maskToken: Parameter;
  readonly decoder: ModuleList<ConvNeXtV2Block>;
  readonly pred: Conv1x1;
  /** Draws the masks `forward` makes when given none. */
  readonly maskRng: Rng;
  private readonly defaultEncoder: 'sparse' | 'dense';
  private readonly defaultGrnStats: GrnStats;
  private readonly seed: number;

  constructor(config: FcmaeConfig, opts: { seed?: number; init?: FcmaeInit; encoder?: 'sparse' | 'dense'; grnStats?: GrnStats } = {}) {
    super();
    this.config = { ...config, imgSize: [...config.imgSize], depths: [...config.depths], dims: [...config.dims] };
    this.seed = opts.seed ?? 0;
    const rng = new Rng(this.seed);
    this.maskRng = rng.fork();
    this.defaultEncoder = opts.encoder ?? 'sparse';
    this.defaultGrnStats = opts.grnStats ?? 'batch';
    const { dims, decoderEmbedDim: D } = config;
    this.encoder = this.registerModule('encoder', new FcmaeEncoder(config.inChans, config.depths, dims, rng));
    this.proj = this.registerModule('proj', new Conv1x1(dims[3], D));
    this.maskToken = this.registerParameter('mask_token', zeros([1, D, 1, 1]), { noWeightDecay: true });
    const blocks: ConvNeXtV2Block[] = [];
    for (let j = 0; j < config.decoderDepth; j++) blocks.push(new ConvNeXtV2Block(D, { rng }));
    this.decoder = this.registerModule('decoder', new ModuleList(blocks));
    this.pred = this.registerModule('pred', new Conv1x1(D, config.patchSize ** 2 * config.inChans));
    initFcmae(this, opts.init ?? 'official', rng);
  }

  /** Patch grid of an input `[B, H, W, C]` (checked). */
  gridOf(x: tf.Tensor): [number, number] {
    const { inChans: C, patchSize: p } = this.config;
    if (x.rank !== 4 || x.shape[3] !== C || x.shape[1]! % p !== 0 || x.shape[2]! % p !== 0 || x.shape[1]! < p || x.shape[2]! < p) {
      const [H, W] = this.config.imgSize;
      throw new Error(
        `FCMAE: expected input of shape [B, H, W, ${C}] (NHWC float32) with H, W multiples of ${p} (built for [B, ${H}, ${W}, ${C}]), got [${x.shape}]`,
      );
    }
    return [x.shape[1]! / p, x.shape[2]! / p];
  }

  /** A fresh random mask `[B·L]` (1 = removed) at `maskRatio`, from the model's generator. */
  drawMask(batch: number, grid: readonly [number, number] = this.gridOfSize()): Float32Array {
    return randomMaskData({ batch, numPatches: grid, ratio: this.config.maskRatio, rng: this.maskRng });
  }

  private gridOfSize(): [number, number] {
    const p = this.config.patchSize;
    return [this.config.imgSize[0] / p, this.config.imgSize[1] / p];
  }

  private maskData(mask: FcmaeMask, batch: number, L: number): Float32Array {
    let m: Float32Array;
    if (mask instanceof tf.Tensor) {
      if (mask.rank !== 2 || mask.shape[0] !== batch || mask.shape[1] !== L) {
        throw new Error(`FCMAE: expected a mask of shape [${batch}, ${L}] (1 = removed), got [${mask.shape}]`);
      }
      m = Float32Array.from(mask.dataSync());
    } else {
      if (mask.length !== batch * L) throw new Error(`FCMAE: expected a [${batch}, ${L}] mask (${batch * L} values), got ${mask.length}`);
      m = Float32Array.from(mask);
    }
    for (let i = 0; i < m.length; i++) {
      if (m[i] !== 0 && m[i] !== 1) throw new Error(`FCMAE: mask values must be 0 (visible) or 1 (removed), got ${m[i]}`);
    }
    return m;
  }

  /** Encoder output `[B, gh, gw, dims[3]]` (0 on removed cells) for a given mask. */
  forwardEncoder(x: tf.Tensor, mask: FcmaeMask, opts: Omit<FcmaeRunOptions, 'mask' | 'normPixLoss'> = {}): tf.Tensor4D {
    const grid = this.gridOf(x);
    const m = this.maskData(mask, x.shape[0]!, grid[0] * grid[1]);
    const run = (opts.encoder ?? this.defaultEncoder) === 'dense' ? maskedDenseEncoder : sparseEncoder;
    const xin = x.dtype === 'float32' ? x : tf.cast(x, 'float32');
    try {
      return run(xin, m, this.encoder.weights(), { grnStats: opts.grnStats ?? this.defaultGrnStats, counter: opts.counter }).out;
    } finally {
      if (xin !== x) xin.dispose();
    }
  }

  /** `proj(latent)` with removed cells replaced by `mask_token`: `x·(1 − m) + mask_token·m`, `[B, gh, gw, D]`. */
  decoderInput(latent: tf.Tensor, mask: FcmaeMask): tf.Tensor4D {
    const C = this.config.dims[3];
    if (latent.rank !== 4 || latent.shape[3] !== C) {
      throw new Error(`FCMAE decoder: expected encoder features of shape [B, gh, gw, ${C}], got [${latent.shape}]`);
    }
    const [B, gh, gw] = latent.shape as [number, number, number, number];
    const m = this.maskData(mask, B, gh * gw);
    const D = this.config.decoderEmbedDim;
    return tf.tidy(() => {
      const mt = tf.tensor4d(m, [B, gh, gw, 1]);
      const y = this.proj.forward(latent);
      return tf.add(tf.mul(y, tf.sub(1, mt)), tf.mul(tf.reshape(this.maskToken.value, [D]), mt)) as tf.Tensor4D;
    });
  }

  /** Decoder blocks (per-image GRN) and `pred`: `[B, gh, gw, p·p·C]`. */
  forwardDecoder(latent: tf.Tensor, mask: FcmaeMask): tf.Tensor4D {
    let x: tf.Tensor = this.decoderInput(latent, mask);
    for (const block of this.decoder) {
      const y = block.forward(x);
      x.dispose();
      x = y;
    }
    const out = this.pred.forward(x);
    x.dispose();
    return out as tf.Tensor4D;
  }

  /** `[B, H, W, C]` → `[B, L, p·p·C]`, patch `l = gy·gw + gx`, vector index `(py·p + px)·C + c` (reference `patchify`). */
  patchify(imgs: tf.Tensor): tf.Tensor3D {
    const [gh, gw] = this.gridOf(imgs);
    const p = this.config.patchSize;
    const C = this.config.inChans;
    const B = imgs.shape[0]!;
    return tf.tidy(() => {
      // [B·gh, p, gw, p·C] → [B·gh, gw, p, p·C]: a rank-4 transpose; rows of a patch stay contiguous.
      const t = tf.transpose(tf.reshape(imgs, [B * gh, p, gw, p * C]), [0, 2, 1, 3]);
      return tf.reshape(t, [B, gh * gw, p * p * C]) as tf.Tensor3D;
    });
  }

  /** Inverse of {@link patchify}: `[B, L, p·p·C]` → `[B, gh·p, gw·p, C]` (grid: the built image size unless given). */
  unpatchify(x: tf.Tensor, grid: readonly [number, number] = this.gridOfSize()): tf.Tensor4D {
    const p = this.config.patchSize;
    const C = this.config.inChans;
    const [gh, gw] = grid;
    if (x.rank !== 3 || x.shape[1] !== gh * gw || x.shape[2] !== p * p * C) {
      throw new Error(`FCMAE unpatchify: expected patches of shape [B, ${gh * gw}, ${p * p * C}], got [${x.shape}]`);
    }
    const B = x.shape[0]!;
    return tf.tidy(() => {
      const t = tf.transpose(tf.reshape(x, [B * gh, gw, p, p * C]), [0, 2, 1, 3]);
      return tf.reshape(t, [B, gh * p, gw * p, C]) as tf.Tensor4D;
    });
  }

  /** The regression target per patch `[B, L, p·p·C]`: pixels, or per-patch normalised with the unbiased variance. */
  target(imgs: tf.Tensor, normPixLoss = this.config.normPixLoss): tf.Tensor3D {
    return tf.tidy(() => {
      const t = this.patchify(imgs);
      if (!normPixLoss) return t;
      const n = t.shape[2]!;
      const mean = tf.mean(t, -1, true);
      const centred = tf.sub(t, mean);
      const varUnbiased = tf.div(tf.sum(tf.square(centred), -1, true), n - 1);
      return tf.div(centred, tf.sqrt(tf.add(varUnbiased, 1e-6))) as tf.Tensor3D;
    });
  }

  /** Mean squared error of every patch `[B, L]` (before masking). */
  lossPerPatch(imgs: tf.Tensor, pred: tf.Tensor, normPixLoss = this.config.normPixLoss): tf.Tensor2D {
    const [gh, gw] = this.gridOf(imgs);
    const B = imgs.shape[0]!;
    const P = this.config.patchSize ** 2 * this.config.inChans;
    if (pred.rank !== 4 || pred.shape[0] !== B || pred.shape[1] !== gh || pred.shape[2] !== gw || pred.shape[3] !== P) {
      throw new Error(`FCMAE loss: expected a prediction of shape [${B}, ${gh}, ${gw}, ${P}], got [${pred.shape}]`);
    }
    return tf.tidy(() => {
      const target = this.target(imgs, normPixLoss);
      const d = tf.sub(tf.reshape(pred, [B, gh * gw, P]), target);
      return tf.mean(tf.square(d), -1) as tf.Tensor2D;
    });
  }

  /** `Σ(lossPerPatch · mask) / Σ mask`: the mean over removed patches (reference `forward_loss`). */
  forwardLoss(imgs: tf.Tensor, pred: tf.Tensor, mask: FcmaeMask, normPixLoss = this.config.normPixLoss): tf.Scalar {
    const B = imgs.shape[0]!;
    const [gh, gw] = this.gridOf(imgs);
    const m = this.maskData(mask, B, gh * gw);
    return tf.tidy(() => {
      const mt = tf.tensor2d(m, [B, gh * gw]);
      const lpp = this.lossPerPatch(imgs, pred, normPixLoss);
      return tf.div(tf.sum(tf.mul(lpp, mt)), tf.sum(mt)) as tf.Scalar;
    });
  }

  /** The loss alone (what a training step differentiates): encoder → decoder → masked loss. */
  computeLoss(x: tf.Tensor, opts: FcmaeRunOptions = {}): tf.Scalar {
    assertImageBatch(x, { name: 'Fcmae.computeLoss', model: this });
    const grid = this.gridOf(x);
    const m = opts.mask === undefined ? this.drawMask(x.shape[0]!, grid) : this.maskData(opts.mask, x.shape[0]!, grid[0] * grid[1]);
    return this.run(x, m, opts).loss;
  }

  /** Loss, prediction and mask (reference `FCMAE.forward`). Tensors the caller owns. */
  forward(x: tf.Tensor, opts: FcmaeRunOptions = {}): FcmaeOutput {
    assertImageBatch(x, { name: 'Fcmae.forward', model: this });
    const grid = this.gridOf(x);
    const B = x.shape[0]!;
    const m = opts.mask === undefined ? this.drawMask(B, grid) : this.maskData(opts.mask, B, grid[0] * grid[1]);
    const { loss, pred } = this.run(x, m, opts, true);
    return { loss, pred: pred!, mask: tf.tensor2d(m, [B, grid[0] * grid[1]]) };
  }

  private run(x: tf.Tensor, m: Float32Array, opts: FcmaeRunOptions, keepPred = false): { loss: tf.Scalar; pred: tf.Tensor4D | null } {
    const latent = this.forwardEncoder(x, m, opts);
    let pred: tf.Tensor4D;
    try {
      pred = this.forwardDecoder(latent, m);
    } finally {
      latent.dispose();
    }
    const loss = this.forwardLoss(x, pred, m, opts.normPixLoss ?? this.config.normPixLoss);
    if (keepPred) return { loss, pred };
    pred.dispose();
    return { loss, pred: null };
  }

  /**
   * A dense ConvNeXt V2 classifier with this encoder's weights (fine-tuning): `head.norm` starts at 1/0 and
   * `head.fc` fresh (timm init). The registered name is used when depths and dims match one.
   */
  encoderToClassifier(numClasses: number, opts: { seed?: number; dropPathRate?: number; headInitScale?: number } = {}): ConvNeXtV2 {
    const { depths, dims, inChans } = this.config;
    const known = MODELS.find((e) => e.depths.every((d, i) => d === depths[i]) && e.dims.every((d, i) => d === dims[i]));
    const cfg = resolveConfig(known?.name ?? 'convnextv2_custom', {
      depths,
      dims,
      inChans,
      numClasses,
      dropPathRate: opts.dropPathRate ?? 0,
      headInitScale: opts.headInitScale ?? 1,
    });
    const model = new ConvNeXtV2(cfg, { seed: opts.seed ?? this.seed });
    const sd = this.encoder.stateDict();
    try {
      model.loadStateDict(sd, { strict: true, skip: ['head.'] });
    } catch (e) {
      model.dispose();
      throw e;
    } finally {
      for (const t of sd.values()) t.dispose();
    }
    return model;
  }

  /** PyTorch shapes of the parameters, by timm-style name. */
  expectedShapes(): Map<string, number[]> {
    return new Map(this.namedParameters().map(([k, p]) => [k, p.torchShape]));
  }

  /**
   * Load timm-style, official dense or official sparse FCMAE names (detected), with the shape variants of
   * each (see fcmae-checkpoint.ts). Strict by default.
   */
  override loadStateDict(sd: StateDict, opts: LoadStateDictOptions = {}): FcmaeLoadResult {
    const entries = sd instanceof Map ? sd : new Map(Object.entries(sd));
    const norm = toTimmFcmaeStateDict(entries as Map<string, StateDictEntry>, this.expectedShapes());
    try {
      const r = super.loadStateDict(norm.sd, opts);
      return { ...r, naming: norm.naming };
    } finally {
      for (const t of norm.created) t.dispose();
    }
  }

  /** Load weights from safetensors (bytes, path, URL, Response/Blob, parsed file) or a state dict. */
  async loadWeights(source: WeightsInput, opts: { strict?: boolean } = {}): Promise<FcmaeLoadResult> {
    let sd: StateDict;
    if (isStateDict(source)) sd = source;
    else {
      const file =
        typeof (source as SafetensorsFile).getFloat32 === 'function' ? (source as SafetensorsFile) : await readSafetensors(source as WeightsSource);
      sd = stateDictFromSafetensors(file);
    }
    return this.loadStateDict(sd, { strict: opts.strict ?? true });
  }

  /** The weights as safetensors bytes, timm-style names, config in `__metadata__.config`; written to `path` if given. */
  async saveWeights(path?: string): Promise<Uint8Array> {
    const bytes = await saveSafetensorsBytes(this, { config: { architecture: 'fcmae', ...this.config } });
    if (path !== undefined) await writeFileAtomic(path, bytes);
    return bytes;
  }
}

// ---------------------------------------------------------------------------------------------- init

/** Re-initialise every parameter (see `CreateFcmaeOptions.init`). */
function initFcmae(m: Fcmae, kind: FcmaeInit, rng: Rng): void {
  const params = new Map(m.namedParameters());
  for (const [name, p] of params) {
    const shape = p.shape;
    let v: tf.Tensor;
    const isBias = name.endsWith('.bias');
    if (name === 'mask_token') v = normal(shape, rng, 0.02);
    else if (/\.(norm|stem\.1|downsample\.0)\.weight$/.test(name)) v = ones(shape);
    else if (/\.(norm|stem\.1|downsample\.0)\.bias$/.test(name) || /\.grn\./.test(name)) v = zeros(shape);
    else if (kind === 'timm') v = isBias ? zeros(shape) : truncNormal(shape, rng, 0.02);
    else if (/^decoder\.\d+\.mlp\.fc[12]\./.test(name)) {
      // nn.Linear's own reset_parameters (official _init_weights leaves nn.Linear alone): U(±1/√fan_in)
      // for weight and bias; the weight is held as [in, out].
      const w = params.get(name.replace(/bias$/, 'weight'))!;
      const bound = 1 / Math.sqrt(w.shape[0]!);
      v = uniform(shape, rng, -bound, bound);
    } else if (isBias) v = zeros(shape);
    else if (/^encoder\.stages\.\d+\.downsample\.1\.weight$/.test(name)) v = truncNormal(shape, rng, 0.02);
    else v = truncNormal(shape, rng, 1); // timm trunc_normal_ default std (stem, proj, pred, depth-wise, encoder MLP)
    p.assign(v);
    v.dispose();
  }
}

// ------------------------------------------------------------------------------------------ constructors

/** Build an FCMAE (official `FCMAE(...)` arguments, camelCase; `model` picks a registered encoder size). */
export function createFcmae(opts: CreateFcmaeOptions = {}): Fcmae {
  const cfg = resolveFcmaeConfig(opts);
  return new Fcmae(cfg, { seed: opts.seed, init: opts.init, encoder: opts.encoder, grnStats: opts.grnStats });
}

/** Rebuild an FCMAE saved by `saveWeights` (its `__metadata__.config`) and load it strictly. */
export async function loadFcmae(source: WeightsSource | SafetensorsFile, opts: { seed?: number } = {}): Promise<Fcmae> {
  const file = typeof (source as SafetensorsFile).getFloat32 === 'function' ? (source as SafetensorsFile) : await readSafetensors(source as WeightsSource);
  const meta = file.metadata['config'];
  if (!meta) throw new Error('loadFcmae: the file has no __metadata__.config; build the model with createFcmae and call loadWeights');
  const c = JSON.parse(meta) as Partial<FcmaeConfig> & { architecture?: string };
  if (c.architecture !== 'fcmae') throw new Error(`loadFcmae: this file holds a '${c.architecture ?? 'unknown'}' model, not FCMAE`);
  const model = createFcmae({ ...c, seed: opts.seed });
  try {
    model.loadStateDict(stateDictFromSafetensors(file));
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}
