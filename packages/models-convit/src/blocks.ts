/**
 * ConViT's blocks (timm `Block`): pre-norm residual token mixer (GPSA, MHSA or any @softbias/attention mixer)
 * and MLP.
 */
import * as tf from '@tensorflow/tfjs-core';
import { DropPath, LayerNorm, Mlp, Module, Rng } from '@softbias/tensor-ops';
import { Gpsa } from '@softbias/gpsa';
import { type MixerGeometry, type MixerMacs, type MixerMacsOptions, Mhsa, type TokenMixer, createMixer } from '@softbias/attention';
import type { ConvitConfig, ConvitMixerSpec, GpsaMixerSpec } from './config.js';

/** What a block's mixer is built from, besides its spec. */
export interface BlockContext {
  dim: number;
  numHeads: number;
  /** The trunk's patch grid [rows, cols]. */
  grid: [number, number];
  config: ConvitConfig;
  dropPath: number;
  rng: Rng;
}

function gpsaOptions(spec: GpsaMixerSpec, ctx: Pick<BlockContext, 'dim' | 'numHeads' | 'config'>) {
  const { config } = ctx;
  return {
    dim: ctx.dim,
    numHeads: ctx.numHeads,
    qkvBias: config.qkvBias,
    attnDrop: config.attnDropRate,
    projDrop: config.projDropRate,
    localityStrength: config.localityStrength,
    localInit: spec.localInit ?? true,
    gate: spec.gate ?? 'learned',
    trainable: spec.trainable ?? true,
  };
}

/** Block i's mixer: GPSA (@softbias/gpsa), else @softbias/attention's factory. */
export function buildMixer(spec: ConvitMixerSpec, ctx: BlockContext): TokenMixer {
  const { config, rng } = ctx;
  if (spec.kind === 'gpsa') return new Gpsa({ ...gpsaOptions(spec, ctx), rng });
  if (spec.kind === 'mhsa') {
    // As timm's MHSA: built directly, so the Rng draws stay those of the reference port.
    return new Mhsa({
      dim: ctx.dim,
      numHeads: ctx.numHeads,
      qkvBias: config.qkvBias,
      attnDrop: config.attnDropRate,
      projDrop: config.projDropRate,
      rng,
    });
  }
  return createMixer(spec, {
    dim: ctx.dim,
    numHeads: ctx.numHeads,
    grid: ctx.grid,
    mlpRatio: config.mlpRatio,
    qkvBias: config.qkvBias,
    attnDrop: config.attnDropRate,
    projDrop: config.projDropRate,
    rng,
  });
}

/** timm ConViT `Block`: x + drop_path(attn(norm1(x))), then x + drop_path(mlp(norm2(x))). */
export class Block extends Module {
  readonly norm1: LayerNorm;
  readonly attn: TokenMixer;
  readonly drop_path: DropPath;
  readonly norm2: LayerNorm;
  readonly mlp: Mlp;

  constructor(spec: ConvitMixerSpec, ctx: BlockContext) {
    super();
    const { dim, config, rng } = ctx;
    this.norm1 = this.registerModule('norm1', new LayerNorm(dim, 1e-6));
    this.attn = this.registerModule('attn', buildMixer(spec, ctx));
    this.drop_path = this.registerModule('drop_path', new DropPath(ctx.dropPath, rng.fork()));
    this.norm2 = this.registerModule('norm2', new LayerNorm(dim, 1e-6));
    this.mlp = this.registerModule(
      'mlp',
      new Mlp(dim, { hiddenFeatures: Math.floor(dim * config.mlpRatio), drop: config.projDropRate, rng, initStd: 0.02 }),
    );
  }

  /** tokens [B, N(+1), C] → same shape. Call inside `tf.tidy`. */
  forward(x: tf.Tensor, grid: readonly [number, number], numPrefixTokens: number): tf.Tensor {
    const a = this.attn.forward({ tokens: this.norm1.forward(x), grid, numPrefixTokens });
    const h = tf.add(x, this.drop_path.forward(a));
    return tf.add(h, this.drop_path.forward(this.mlp.forward(this.norm2.forward(h))));
  }

  /** Multiply-accumulates per image: the mixer's own count (names under `attn.`), then the MLP's two layers. */
  macs(g: MixerGeometry, opts: MixerMacsOptions = {}): MixerMacs[] {
    const T = g.numPrefixTokens + g.grid[0] * g.grid[1];
    const C = this.norm1.dim;
    const hidden = this.mlp.fc1.outFeatures;
    return [
      ...this.attn.macs(g, opts).map((e) => ({ ...e, name: `attn.${e.name}` })),
      { name: 'mlp.fc1', op: 'linear' as const, macs: T * C * hidden },
      { name: 'mlp.fc2', op: 'linear' as const, macs: T * hidden * C },
    ];
  }
}
