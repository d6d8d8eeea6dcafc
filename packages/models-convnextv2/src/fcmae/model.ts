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
 * The model class; config, encoder, init and weights live beside it in this folder.
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  Module,
  ModuleList,
  Rng,
  assertImageBatch,
  zeros,
  type LoadStateDictOptions,
  type LoadStateDictResult,
  type Parameter,
  type StateDict,
  type StateDictEntry,
} from '@softbias/tensor-ops';
import { type WeightsInput, readWeights, writeWeights } from '@softbias/tensor-ops/models';
import type { GrnStats } from '@softbias/grn';
import { type MacCounter, maskedDenseEncoder, randomMaskData, sparseEncoder } from '@softbias/sparse-conv';
import { ConvNeXtV2Block } from '../blocks.js';
import { MODELS, resolveConfig } from '../config.js';
import { ConvNeXtV2 } from '../model.js';
import type { FcmaeConfig, FcmaeInit } from './config.js';
import { FcmaeEncoder } from './encoder.js';
import { initFcmae } from './init.js';
import { Conv1x1 } from './layers.js';
import { toTimmFcmaeStateDict, type FcmaeKeyNaming } from './checkpoint.js';

/** The family name of FCMAE files in the model registry. */
export const FCMAE_FAMILY = 'fcmae';

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

  /**
   * Load weights from safetensors (bytes, path, URL, Response/Blob, parsed file, `WeightsFile`) or a state
   * dict. Integer tensors and NaN / ±Inf are refused unless `allowIntegerCast` / `allowNonFinite`.
   */
  async loadWeights(
    source: WeightsInput,
    opts: { strict?: boolean; allowNonFinite?: boolean; allowIntegerCast?: boolean } = {},
  ): Promise<FcmaeLoadResult> {
    const w = await readWeights(source);
    return this.loadStateDict(w.stateDict(opts), { strict: opts.strict ?? true, allowNonFinite: opts.allowNonFinite ?? false });
  }

  /**
   * The weights as safetensors bytes, timm-style names, the shared metadata rule (`arch` and `family`
   * 'fcmae', the config in `__metadata__.config`); written to `path` (atomically) if given.
   */
  async saveWeights(path?: string): Promise<Uint8Array> {
    return writeWeights(this, { arch: FCMAE_FAMILY, family: FCMAE_FAMILY, config: this.config, ...(path !== undefined ? { path } : {}) });
  }
}
