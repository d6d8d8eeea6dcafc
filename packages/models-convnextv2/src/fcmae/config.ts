/** FCMAE configuration: the official `FCMAE(...)` arguments (camelCase), their defaults and checks. */
import { numKept } from '@softbias/sparse-conv';
import type { GrnStats } from '@softbias/grn';
import { checkArchitecture } from '@softbias/tensor-ops/models';
import { getModelEntry } from '../config.js';

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
  checkArchitecture('FCMAE', {
    imageSize: cfg.imgSize,
    depth: cfg.depths.reduce((a, b) => a + b, 0) + Math.max(cfg.decoderDepth, 1),
    width: [...cfg.dims, cfg.decoderEmbedDim, cfg.inChans],
  });
  numKept((cfg.imgSize[0] / cfg.patchSize) * (cfg.imgSize[1] / cfg.patchSize), cfg.maskRatio);
  return cfg;
}

/** Stem 4 × three 2× downsamplings. */
export const ENCODER_STRIDE = 32;
