/**
 * ConViT architecture config: timm's `ConVit` constructor arguments in camelCase, except `embedDim`, which is
 * the TOTAL width (timm multiplies its `embed_dim` argument by `num_heads`).
 */
import { type GateMode, Gpsa } from '@softbias/gpsa';
import { type AttentionMixerSpec, MIXER_KINDS as ATTENTION_MIXER_KINDS, mixerParameterShapes } from '@softbias/attention';

/** Block i's mixer is GPSA, with the paper's ablation switches. */
export interface GpsaMixerSpec {
  kind: 'gpsa';
  /** `frozen`: the gate keeps its initial value and is not trained. Default `learned`. */
  gate?: GateMode;
  /** The convolutional initialisation. Default true. */
  localInit?: boolean;
  /** false freezes the whole GPSA layer. Default true. */
  trainable?: boolean;
}

/** Any mixer a ConViT block accepts: GPSA or one of @softbias/attention's mixers. */
export type ConvitMixerSpec = GpsaMixerSpec | AttentionMixerSpec;

/** The full, resolved architecture (what `saveWeights` stores in `__metadata__.config`). */
export interface ConvitConfig {
  /** [H, W], each a multiple of `patchSize`. */
  imgSize: [number, number];
  patchSize: number;
  inChans: number;
  /** 0: no head (`forward` returns pre-logits). */
  numClasses: number;
  /** TOTAL token width (192 for convit_tiny), a multiple of `numHeads`. */
  embedDim: number;
  depth: number;
  numHeads: number;
  /** Blocks [0, localUpToLayer) are GPSA and see no class token; it is concatenated before block localUpToLayer. */
  localUpToLayer: number;
  /** α of GPSA's convolutional initialisation. */
  localityStrength: number;
  mlpRatio: number;
  /** Bias on qk / v / qkv. */
  qkvBias: boolean;
  usePosEmbed: boolean;
  /** Dropout before the head (timm `drop_rate`). */
  dropRate: number;
  /** Dropout after adding the position embedding (timm `pos_drop_rate`). */
  posDropRate: number;
  /** Dropout after the attention projection and in the MLP (timm `proj_drop_rate`). */
  projDropRate: number;
  /** Dropout on attention weights (timm `attn_drop_rate`). */
  attnDropRate: number;
  /** Stochastic depth; block i uses dropPathRate · i / (depth − 1) (timm's linear rule). */
  dropPathRate: number;
  /** `token`: the class token (timm default); `avg`: mean of the tokens after index 0; ``: no pooling. */
  globalPool: 'token' | 'avg' | '';
  /** One mixer per block. Default: GPSA below localUpToLayer, MHSA from there on. */
  mixers: ConvitMixerSpec[];
  /** Seed of the initialisation (and dropout) generator. */
  seed: number;
}

/** What `createModel(name, overrides)` accepts. */
export interface ConvitOverrides extends Partial<Omit<ConvitConfig, 'imgSize' | 'mixers'>> {
  /** One number for square inputs, or [H, W]. */
  imgSize?: number | readonly [number, number];
  /** Block i's mixer; `undefined` from the function keeps the default for that block. */
  mixers?: ((i: number) => ConvitMixerSpec | undefined) | readonly (ConvitMixerSpec | undefined)[];
}

export const CONFIG_KEYS: readonly (keyof ConvitConfig)[] = [
  'imgSize', 'patchSize', 'inChans', 'numClasses', 'embedDim', 'depth', 'numHeads', 'localUpToLayer',
  'localityStrength', 'mlpRatio', 'qkvBias', 'usePosEmbed', 'dropRate', 'posDropRate', 'projDropRate',
  'attnDropRate', 'dropPathRate', 'globalPool', 'mixers', 'seed',
];

/** timm's ConVit defaults, with `embedDim` as the total width (timm: 48 per head × heads). */
export const CONVIT_DEFAULTS: Omit<ConvitConfig, 'mixers'> = {
  imgSize: [224, 224],
  patchSize: 16,
  inChans: 3,
  numClasses: 1000,
  embedDim: 768,
  depth: 12,
  numHeads: 12,
  localUpToLayer: 3,
  localityStrength: 1,
  mlpRatio: 4,
  qkvBias: false,
  usePosEmbed: true,
  dropRate: 0,
  posDropRate: 0,
  projDropRate: 0,
  attnDropRate: 0,
  dropPathRate: 0,
  globalPool: 'token',
  seed: 0,
};

const SNAKE_HINTS: Record<string, string> = {
  img_size: 'imgSize', patch_size: 'patchSize', in_chans: 'inChans', num_classes: 'numClasses',
  embed_dim: 'embedDim', num_heads: 'numHeads', local_up_to_layer: 'localUpToLayer',
  locality_strength: 'localityStrength', mlp_ratio: 'mlpRatio', qkv_bias: 'qkvBias', use_pos_embed: 'usePosEmbed',
  drop_rate: 'dropRate', pos_drop_rate: 'posDropRate', proj_drop_rate: 'projDropRate',
  attn_drop_rate: 'attnDropRate', drop_path_rate: 'dropPathRate', global_pool: 'globalPool',
};

function posInt(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
    throw new Error(`ConViT config: ${name} must be a positive integer, got ${JSON.stringify(v)}`);
  }
  return v;
}

function rate(name: string, v: unknown): number {
  if (typeof v !== 'number' || !(v >= 0 && v < 1)) {
    throw new Error(`ConViT config: ${name} must be in [0, 1), got ${JSON.stringify(v)}`);
  }
  return v;
}

const MIXER_KINDS = new Set<string>(['gpsa', ...ATTENTION_MIXER_KINDS]);

function checkMixer(i: number, spec: ConvitMixerSpec): ConvitMixerSpec {
  if (spec === null || typeof spec !== 'object' || typeof (spec as { kind?: unknown }).kind !== 'string') {
    throw new Error(`ConViT config: mixers(${i}) must be an object with a 'kind', got ${JSON.stringify(spec)}`);
  }
  if (!MIXER_KINDS.has(spec.kind)) {
    throw new Error(
      `ConViT config: mixers(${i}) has unknown kind '${spec.kind}' (expected one of ${[...MIXER_KINDS].join(', ')})`,
    );
  }
  if (spec.kind === 'gpsa') {
    const g = spec as GpsaMixerSpec;
    if (g.gate !== undefined && g.gate !== 'learned' && g.gate !== 'frozen') {
      throw new Error(`ConViT config: mixers(${i}).gate must be 'learned' or 'frozen', got ${JSON.stringify(g.gate)}`);
    }
    return { kind: 'gpsa', gate: g.gate ?? 'learned', localInit: g.localInit ?? true, trainable: g.trainable ?? true };
  }
  return JSON.parse(JSON.stringify(spec)) as ConvitMixerSpec;
}

/** Merge `base` (registry arguments) with user overrides and validate everything. */
export function resolveConfig(base: ConvitOverrides, overrides: ConvitOverrides = {}): ConvitConfig {
  for (const k of Object.keys(overrides)) {
    if (!(CONFIG_KEYS as readonly string[]).includes(k)) {
      const hint = SNAKE_HINTS[k] ? ` (did you mean '${SNAKE_HINTS[k]}'?)` : '';
      throw new Error(`ConViT config: unknown option '${k}'${hint}; options: ${CONFIG_KEYS.join(', ')}`);
    }
  }
  const merged = { ...CONVIT_DEFAULTS, ...base, ...overrides } as ConvitOverrides & typeof CONVIT_DEFAULTS;
  const img = merged.imgSize;
  const imgSize: [number, number] =
    typeof img === 'number' ? [img, img] : Array.isArray(img) && img.length === 2 ? [img[0]!, img[1]!] : [NaN, NaN];
  posInt('imgSize[0]', imgSize[0]);
  posInt('imgSize[1]', imgSize[1]);
  const patchSize = posInt('patchSize', merged.patchSize);
  if (imgSize[0] % patchSize !== 0 || imgSize[1] % patchSize !== 0) {
    throw new Error(
      `ConViT config: imgSize [${imgSize}] must be a multiple of patchSize ${patchSize} in both dimensions`,
    );
  }
  const embedDim = posInt('embedDim', merged.embedDim);
  const numHeads = posInt('numHeads', merged.numHeads);
  if (embedDim % numHeads !== 0) {
    throw new Error(
      `ConViT config: embedDim ${embedDim} (the TOTAL width) must be a multiple of numHeads ${numHeads}`,
    );
  }
  const depth = posInt('depth', merged.depth);
  const lu = merged.localUpToLayer;
  if (typeof lu !== 'number' || !Number.isInteger(lu) || lu < 0 || lu > depth) {
    throw new Error(`ConViT config: localUpToLayer must be an integer in [0, depth = ${depth}], got ${JSON.stringify(lu)}`);
  }
  const numClasses = merged.numClasses;
  if (typeof numClasses !== 'number' || !Number.isInteger(numClasses) || numClasses < 0) {
    throw new Error(`ConViT config: numClasses must be a non-negative integer, got ${JSON.stringify(numClasses)}`);
  }
  if (typeof merged.mlpRatio !== 'number' || !(Math.floor(embedDim * merged.mlpRatio) >= 1)) {
    throw new Error(`ConViT config: mlpRatio must be a positive number, got ${JSON.stringify(merged.mlpRatio)}`);
  }
  if (typeof merged.localityStrength !== 'number' || !Number.isFinite(merged.localityStrength)) {
    throw new Error(`ConViT config: localityStrength must be a finite number, got ${JSON.stringify(merged.localityStrength)}`);
  }
  if (!['token', 'avg', ''].includes(merged.globalPool as string)) {
    throw new Error(`ConViT config: globalPool must be 'token', 'avg' or '', got ${JSON.stringify(merged.globalPool)}`);
  }
  const seed = merged.seed;
  if (typeof seed !== 'number' || !Number.isInteger(seed)) {
    throw new Error(`ConViT config: seed must be an integer, got ${JSON.stringify(seed)}`);
  }
  const given = merged.mixers;
  if (given !== undefined && typeof given !== 'function' && !Array.isArray(given)) {
    throw new Error('ConViT config: mixers must be a function (i) => spec or an array of specs');
  }
  if (Array.isArray(given) && given.length !== depth) {
    throw new Error(`ConViT config: mixers has ${given.length} entries but depth is ${depth}`);
  }
  const mixers: ConvitMixerSpec[] = [];
  for (let i = 0; i < depth; i++) {
    const s = typeof given === 'function' ? given(i) : Array.isArray(given) ? given[i] : undefined;
    mixers.push(checkMixer(i, s ?? (i < lu ? { kind: 'gpsa' } : { kind: 'mhsa' })));
  }
  return {
    imgSize,
    patchSize,
    inChans: posInt('inChans', merged.inChans),
    numClasses,
    embedDim,
    depth,
    numHeads,
    localUpToLayer: lu,
    localityStrength: merged.localityStrength,
    mlpRatio: merged.mlpRatio,
    qkvBias: Boolean(merged.qkvBias),
    usePosEmbed: Boolean(merged.usePosEmbed),
    dropRate: rate('dropRate', merged.dropRate),
    posDropRate: rate('posDropRate', merged.posDropRate),
    projDropRate: rate('projDropRate', merged.projDropRate),
    attnDropRate: rate('attnDropRate', merged.attnDropRate),
    dropPathRate: rate('dropPathRate', merged.dropPathRate),
    globalPool: merged.globalPool as ConvitConfig['globalPool'],
    mixers,
    seed,
  };
}

/** timm's stochastic-depth rule: rates linearly spaced from 0 to `rate` over the blocks. */
export function dropPathRates(rate: number, depth: number): number[] {
  if (depth === 1) return [0];
  return Array.from({ length: depth }, (_, i) => Math.fround((rate * i) / (depth - 1)));
}

/**
 * Every parameter's PyTorch name and shape for a config, computed without building the model (what timm's
 * `state_dict()` holds). Each block's mixer is described by its own class (`Gpsa.parameterShapes`,
 * @softbias/attention's `mixerParameterShapes`), so every mixer kind is covered.
 */
export function parameterShapes(config: ConvitConfig): Map<string, number[]> {
  const C = config.embedDim;
  const [ih, iw] = config.imgSize;
  const p = config.patchSize;
  const grid: [number, number] = [ih / p, iw / p];
  const N = grid[0] * grid[1];
  const hidden = Math.floor(C * config.mlpRatio);
  const m = new Map<string, number[]>();
  m.set('cls_token', [1, 1, C]);
  if (config.usePosEmbed) m.set('pos_embed', [1, N, C]);
  m.set('patch_embed.proj.weight', [C, config.inChans, p, p]);
  m.set('patch_embed.proj.bias', [C]);
  for (let i = 0; i < config.depth; i++) {
    const b = `blocks.${i}`;
    const spec = config.mixers[i]!;
    m.set(`${b}.norm1.weight`, [C]);
    m.set(`${b}.norm1.bias`, [C]);
    const mixer =
      spec.kind === 'gpsa'
        ? Gpsa.parameterShapes({ dim: C, numHeads: config.numHeads, qkvBias: config.qkvBias })
        : mixerParameterShapes(spec, { dim: C, grid, qkvBias: config.qkvBias, mlpRatio: config.mlpRatio });
    for (const [name, shape] of mixer) m.set(`${b}.attn.${name}`, shape);
    m.set(`${b}.norm2.weight`, [C]);
    m.set(`${b}.norm2.bias`, [C]);
    m.set(`${b}.mlp.fc1.weight`, [hidden, C]);
    m.set(`${b}.mlp.fc1.bias`, [hidden]);
    m.set(`${b}.mlp.fc2.weight`, [C, hidden]);
    m.set(`${b}.mlp.fc2.bias`, [C]);
  }
  m.set('norm.weight', [C]);
  m.set('norm.bias', [C]);
  if (config.numClasses > 0) {
    m.set('head.weight', [config.numClasses, C]);
    m.set('head.bias', [config.numClasses]);
  }
  return m;
}
