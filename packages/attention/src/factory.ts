/** One factory for the mixers of this package, driven by a small serialisable spec. */
import { Rng } from '@softbias/tensor-ops';
import type { TokenMixer } from './mixer.js';
import { Mhsa } from './mhsa.js';
import { WindowAttention } from './window.js';
import { DwConvMixer } from './dwconv.js';
import { FeedForwardPatchesMixer } from './ff-patches.js';
import type { AttentionStrategy } from './core.js';

export type MhsaSpec = { kind: 'mhsa' };
export type WindowSpec = { kind: 'window'; size: number };
export type DwConvSpec = { kind: 'dwconv'; dynamic?: boolean; kernelSize?: number; reduction?: number; proj?: boolean };
export type FeedForwardPatchesSpec = { kind: 'ff-patches'; hiddenRatio?: number };
/** The mixers `createMixer` builds ('gpsa' lives in @softbias/gpsa). */
export type AttentionMixerSpec = MhsaSpec | WindowSpec | DwConvSpec | FeedForwardPatchesSpec;

export const MIXER_KINDS = ['mhsa', 'window', 'dwconv', 'ff-patches'] as const;

export interface MixerContext {
  /** Token width C. */
  dim: number;
  /** Attention heads (mhsa, window). */
  numHeads: number;
  /** Patch grid [rows, cols] of the trunk (ff-patches fixes its patch count from it). */
  grid: readonly [number, number];
  rng?: Rng;
  /** `qkv` bias (mhsa, window). Default false. */
  qkvBias?: boolean;
  /** Attention-probability dropout (mhsa, window). Default 0. */
  attnDrop?: number;
  /** Dropout after the output projection (mhsa, window); after each Linear for ff-patches. Default 0. */
  projDrop?: number;
  /** Hidden ratio of ff-patches when the spec gives none. Default 4. */
  mlpRatio?: number;
  strategy?: AttentionStrategy;
}

/** Build a mixer from its spec. Throws for an unknown kind, naming the kinds this factory builds. */
export function createMixer(spec: AttentionMixerSpec, ctx: MixerContext): TokenMixer {
  const rng = ctx.rng ?? new Rng(0);
  const attn = {
    dim: ctx.dim,
    numHeads: ctx.numHeads,
    qkvBias: ctx.qkvBias ?? false,
    attnDrop: ctx.attnDrop ?? 0,
    projDrop: ctx.projDrop ?? 0,
    rng,
    strategy: ctx.strategy ?? 'auto',
  };
  const kind = (spec as { kind?: unknown } | null)?.kind;
  switch (kind) {
    case 'mhsa':
      return new Mhsa(attn);
    case 'window':
      return new WindowAttention({ ...attn, size: (spec as WindowSpec).size });
    case 'dwconv': {
      const s = spec as DwConvSpec;
      return new DwConvMixer({
        dim: ctx.dim,
        dynamic: s.dynamic ?? false,
        ...(s.kernelSize !== undefined ? { kernelSize: s.kernelSize } : {}),
        ...(s.reduction !== undefined ? { reduction: s.reduction } : {}),
        ...(s.proj !== undefined ? { proj: s.proj } : {}),
        rng,
      });
    }
    case 'ff-patches':
      return new FeedForwardPatchesMixer({
        dim: ctx.dim,
        numPatches: ctx.grid[0] * ctx.grid[1],
        hiddenRatio: (spec as FeedForwardPatchesSpec).hiddenRatio ?? ctx.mlpRatio ?? 4,
        drop: ctx.projDrop ?? 0,
        rng,
      });
    default:
      throw new Error(
        `createMixer: unknown mixer kind '${String(kind)}'; this factory builds ${MIXER_KINDS.map((k) => `'${k}'`).join(', ')}` +
          (kind === 'gpsa' ? " ('gpsa' comes from @softbias/gpsa)" : ''),
      );
  }
}

/**
 * PyTorch names (relative to the mixer) and shapes of the parameters of the mixer `createMixer(spec, ctx)`
 * builds, without building it: each mixer class's own `parameterShapes` (`ff-patches` takes its patch count
 * from `ctx.grid`).
 */
export function mixerParameterShapes(
  spec: AttentionMixerSpec,
  ctx: Pick<MixerContext, 'dim' | 'grid' | 'qkvBias' | 'mlpRatio'>,
): [string, number[]][] {
  const kind = (spec as { kind?: unknown } | null)?.kind;
  switch (kind) {
    case 'mhsa':
      return Mhsa.parameterShapes({ dim: ctx.dim, qkvBias: ctx.qkvBias ?? false });
    case 'window':
      return WindowAttention.parameterShapes({ dim: ctx.dim, qkvBias: ctx.qkvBias ?? false });
    case 'dwconv': {
      const s = spec as DwConvSpec;
      return DwConvMixer.parameterShapes({
        dim: ctx.dim,
        dynamic: s.dynamic ?? false,
        ...(s.kernelSize !== undefined ? { kernelSize: s.kernelSize } : {}),
        ...(s.reduction !== undefined ? { reduction: s.reduction } : {}),
        ...(s.proj !== undefined ? { proj: s.proj } : {}),
      });
    }
    case 'ff-patches':
      return FeedForwardPatchesMixer.parameterShapes({
        numPatches: ctx.grid[0] * ctx.grid[1],
        hiddenRatio: (spec as FeedForwardPatchesSpec).hiddenRatio ?? ctx.mlpRatio ?? 4,
      });
    default:
      throw new Error(`mixerParameterShapes: unknown mixer kind '${String(kind)}'; kinds: ${MIXER_KINDS.join(', ')}`);
  }
}
