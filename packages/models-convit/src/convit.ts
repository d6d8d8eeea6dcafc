/**
 * ConViT (d'Ascoli et al., 2021) with timm's module tree and parameter names: patch embedding, absolute
 * position embedding, `localUpToLayer` GPSA blocks over the patch tokens, the class token concatenated at
 * index 0 before block `localUpToLayer`, MHSA blocks, final LayerNorm (eps 1e-6), head on token 0.
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  DropPath,
  Dropout,
  LayerNorm,
  Linear,
  Mlp,
  Module,
  ModuleList,
  type Parameter,
  PatchEmbed,
  Rng,
  type LoadStateDictResult,
  type SafetensorsFile,
  StateDictError,
  type WeightsSource,
  readSafetensors,
  saveSafetensorsBytes,
  stateDictFromSafetensors,
  truncNormal,
  writeFileAtomic,
} from '@softbias/tensor-ops';
import { assertImageBatch } from '@softbias/tensor-ops';
import { Gpsa } from '@softbias/gpsa';
import { Mhsa, TokenMixer, WindowAttention, createMixer, nonlocality } from '@softbias/attention';
import { type ConvitConfig, type ConvitMixerSpec, type ConvitOverrides, dropPathRates, resolveConfig } from './config.js';
import { MODEL_REGISTRY, type PretrainedConfig, getModelInfo } from './registry.js';
import {
  checkpointGrid,
  configFromCheckpoint,
  hasSoftbiasConfig,
  refuseTimmDeit,
  resamplePosEmbed,
} from './checkpoint.js';
import { type ImageInput, type PreprocessConfig, preprocessImage } from './preprocess.js';

// ------------------------------------------------------------------------------------------------ blocks

interface BlockContext {
  dim: number;
  numHeads: number;
  grid: [number, number];
  numPrefixTokens: number;
  config: ConvitConfig;
  dropPath: number;
  rng: Rng;
}

function buildMixer(spec: ConvitMixerSpec, ctx: BlockContext): TokenMixer {
  const { config, rng } = ctx;
  if (spec.kind === 'gpsa') {
    return new Gpsa({
      dim: ctx.dim,
      numHeads: ctx.numHeads,
      qkvBias: config.qkvBias,
      attnDrop: config.attnDropRate,
      projDrop: config.projDropRate,
      localityStrength: config.localityStrength,
      localInit: spec.localInit ?? true,
      gate: spec.gate ?? 'learned',
      trainable: spec.trainable ?? true,
      rng,
    });
  }
  if (spec.kind === 'mhsa') {
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
}

/**
 * The classifier slot `head` (timm's `nn.Linear` or `nn.Identity`): replaceable by `resetClassifier`, so its
 * parameters are listed through the current linear layer.
 */
class ClassifierHead extends Module {
  private linear: Linear | null = null;

  constructor(
    readonly inFeatures: number,
    numClasses: number,
    rng: Rng,
    init: 'trunc_normal' | 'torch',
  ) {
    super();
    this.reset(numClasses, rng, init);
  }

  get numClasses(): number {
    return this.linear?.outFeatures ?? 0;
  }

  reset(numClasses: number, rng: Rng, init: 'trunc_normal' | 'torch'): void {
    this.linear?.dispose();
    this.linear =
      numClasses > 0
        ? new Linear(this.inFeatures, numClasses, {
            rng,
            init: init === 'torch' ? { kind: 'torch' } : { kind: 'trunc_normal', std: 0.02 },
          })
        : null;
  }

  override namedParameters(prefix = ''): [string, Parameter][] {
    return this.linear ? this.linear.namedParameters(prefix) : [];
  }

  override namedModules(prefix = ''): [string, Module][] {
    return this.linear ? [[prefix, this], ...this.linear.namedModules(prefix).slice(1)] : [[prefix, this]];
  }

  forward(x: tf.Tensor): tf.Tensor {
    return this.linear ? this.linear.forward(x) : x;
  }

  override dispose(): void {
    this.linear?.dispose();
    this.linear = null;
    super.dispose();
  }
}

// ------------------------------------------------------------------------------------------------ model

export interface LoadWeightsOptions {
  /** Leave `head.*` alone (the model keeps its own head, of any size). Default false. */
  skipHead?: boolean;
  /** Throw on missing or unexpected keys. Default true (shape mismatches always throw). */
  strict?: boolean;
  /** Receives what the loader adapted (e.g. pos_embed resampled). Default `console.warn`. */
  onNotice?: (message: string) => void;
}

export interface LoadWeightsResult extends LoadStateDictResult {
  /** What was adapted while loading (e.g. "pos_embed resampled from 14×14 to 7×7 ..."). */
  notices: string[];
}

export interface ForwardHeadOptions {
  /** Return the pooled features (before the classifier). Default false. */
  preLogits?: boolean;
}

export interface ForwardIntermediatesOptions {
  /** Last n blocks (number), these block indices (array; negative counts from the end), or all (default). */
  indices?: number | readonly number[];
  /** Apply the final norm to every intermediate. Default false. */
  norm?: boolean;
  /** `NHWC` [B, rows, cols, C] (default), `NCHW` [B, C, rows, cols] or `NLC` [B, rows·cols, C]. */
  outputFmt?: 'NHWC' | 'NCHW' | 'NLC';
  /** Also return each intermediate's prefix (class) token [B, 1, C], null for blocks before it exists. */
  returnPrefixTokens?: boolean;
  /** Skip the final norm output (and stop after the last requested block). Default false. */
  intermediatesOnly?: boolean;
  /** Stop running blocks after the last requested one (no final features). Default false. */
  stopEarly?: boolean;
}

export interface ForwardIntermediatesResult {
  /** forwardFeatures output [B, N(+1), C], or null with `intermediatesOnly` / `stopEarly`. */
  features: tf.Tensor | null;
  /** One per requested block, class token removed, in `outputFmt`. */
  intermediates: tf.Tensor[];
  /** With `returnPrefixTokens`: [B, 1, C] per requested block (null before the class token joins). */
  prefixTokens: (tf.Tensor | null)[] | null;
}

/** Which input the introspection feeds each layer. */
export type IntrospectionInput = 'block' | 'patch-embedding';

export interface IntrospectionOptions {
  /**
   * `block` (default): each layer's real input, norm1(block input), class token included after
   * localUpToLayer. `patch-embedding`: the raw patch embeddings (no pos_embed, no norm, no class token) fed
   * to every layer's attention, as the official ConViT code and the paper's figures measure nonlocality.
   */
  input?: IntrospectionInput;
}

/** One layer's attention maps (new tensors the caller disposes). */
export interface LayerAttention {
  layer: number;
  kind: string;
  /** Prefix tokens at the front of both the query and key axes of these maps (1 = class token). */
  numPrefixTokens: number;
  /** The attention the layer uses [B, heads, T, T]. */
  mixed: tf.Tensor;
  /** GPSA only: content softmax [B, heads, N, N]. */
  content: tf.Tensor | null;
  /** GPSA only: positional softmax [heads, N, N]. */
  positional: tf.Tensor | null;
}

export interface AttentionMapOptions extends IntrospectionOptions {
  /** Query patch row/column; with both, returns that query's attention over the key patches. */
  row?: number;
  col?: number;
  /** `mixed` (default), or for GPSA layers `content` / `positional`. */
  which?: 'mixed' | 'content' | 'positional';
}

/**
 * Window attention's per-window maps [B·nW, heads, s², s²] as one [B, heads, P, P] map over the row-major
 * patch grid (zero outside each query's window), so maps and nonlocality read like the other layers'.
 */
function windowMapToFull(a: tf.Tensor, B: number, grid: readonly [number, number], s: number): tf.Tensor {
  const [rows, cols] = grid;
  const wc = cols / s;
  const nW = (rows / s) * wc;
  const S = s * s;
  const P = rows * cols;
  const H = a.shape[1]!;
  const a5 = tf.reshape(a, [B, nW, H, S, S]);
  const blocks: tf.Tensor[] = [];
  for (let w = 0; w < nW; w++) {
    const blk = tf.reshape(tf.slice(a5, [0, w, 0, 0, 0], [B, 1, H, S, S]), [B, H, S, S]);
    blocks.push(tf.pad(blk, [[0, 0], [0, 0], [0, 0], [w * S, (nW - w - 1) * S]]));
  }
  const windowOrder = blocks.length === 1 ? blocks[0]! : tf.concat(blocks, 2); // [B, H, P, P] in window order
  const order = new Int32Array(P);
  for (let q = 0; q < P; q++) {
    const y = Math.floor(q / cols);
    const x = q % cols;
    order[q] = (Math.floor(y / s) * wc + Math.floor(x / s)) * S + (y % s) * s + (x % s);
  }
  const idx = tf.tensor1d(order, 'int32');
  return tf.gather(tf.gather(windowOrder, idx, 2), idx, 3);
}

export class ConVit extends Module {
  /** Registry name (or 'convit' for a model built from a bare config). */
  readonly name: string;
  readonly pretrainedConfig: PretrainedConfig;
  readonly gridSize: [number, number];
  readonly numPatches: number;
  /** Total token width (= num_features). */
  readonly embedDim: number;

  readonly cls_token: Parameter;
  readonly pos_embed: Parameter | null;
  readonly patch_embed: PatchEmbed;
  readonly pos_drop: Dropout;
  readonly blocks: ModuleList<Block>;
  readonly norm: LayerNorm;
  readonly head_drop: Dropout;
  readonly head: ClassifierHead;

  private _config: ConvitConfig;
  private readonly rng: Rng;

  constructor(config: ConvitConfig, meta: { name?: string; pretrained?: PretrainedConfig } = {}) {
    super();
    this._config = config;
    this.name = meta.name ?? 'convit';
    const C = config.embedDim;
    const [H, W] = config.imgSize;
    this.pretrainedConfig = meta.pretrained ?? {
      ...getModelInfo('convit_tiny').pretrained,
      inputSize: [config.inChans, H, W],
      numClasses: config.numClasses,
      weights: null,
      license: null,
    };
    this.embedDim = C;
    this.rng = new Rng(config.seed);
    const rng = this.rng;
    this.gridSize = [H / config.patchSize, W / config.patchSize];
    this.numPatches = this.gridSize[0] * this.gridSize[1];
    // Parameters first (PyTorch lists a module's own parameters before its children's).
    this.cls_token = this.registerParameter('cls_token', truncNormal([1, 1, C], rng, 0.02), { noWeightDecay: true });
    this.pos_embed = config.usePosEmbed
      ? this.registerParameter('pos_embed', truncNormal([1, this.numPatches, C], rng, 0.02), { noWeightDecay: true })
      : null;
    this.patch_embed = this.registerModule(
      'patch_embed',
      new PatchEmbed({ imgSize: [H, W], patchSize: config.patchSize, inChans: config.inChans, embedDim: C, rng }),
    );
    this.pos_drop = this.registerModule('pos_drop', new Dropout(config.posDropRate, rng.fork()));
    const dpr = dropPathRates(config.dropPathRate, config.depth);
    const blocks: Block[] = [];
    for (let i = 0; i < config.depth; i++) {
      blocks.push(
        new Block(config.mixers[i]!, {
          dim: C,
          numHeads: config.numHeads,
          grid: this.gridSize,
          numPrefixTokens: this.prefixAt(i),
          config,
          dropPath: dpr[i]!,
          rng,
        }),
      );
    }
    this.blocks = this.registerModule('blocks', new ModuleList(blocks));
    this.norm = this.registerModule('norm', new LayerNorm(C, 1e-6));
    this.head_drop = this.registerModule('head_drop', new Dropout(config.dropRate, rng.fork()));
    this.head = this.registerModule('head', new ClassifierHead(C, config.numClasses, rng, 'trunc_normal'));
  }

  /** The resolved architecture (what `saveWeights` stores). */
  get config(): ConvitConfig {
    return this._config;
  }

  get numClasses(): number {
    return this.head.numClasses;
  }

  /** Width of the pooled features (timm `num_features`). */
  get numFeatures(): number {
    return this.embedDim;
  }

  /** Class tokens in front of block i's input (0 before localUpToLayer, 1 from there on). */
  prefixAt(i: number): number {
    return i >= this._config.localUpToLayer ? 1 : 0;
  }

  /** The input shape `forward` accepts, [B, H, W, C] with B free. */
  get inputShape(): [number | null, number, number, number] {
    return [null, this._config.imgSize[0], this._config.imgSize[1], this._config.inChans];
  }

  // -------------------------------------------------------------------------------------------- forward

  private checkInput(x: tf.Tensor): void {
    const [H, W] = this._config.imgSize;
    const C = this._config.inChans;
    const expected = `[B, ${H}, ${W}, ${C}] (NHWC float32)`;
    if (!(x instanceof tf.Tensor)) throw new Error(`${this.name}: expected a tensor of shape ${expected}`);
    if (x.rank !== 4) throw new Error(`${this.name}: expected input of shape ${expected}, got rank ${x.rank} [${x.shape}]`);
    const [, h, w, c] = x.shape as [number, number, number, number];
    if (c !== C) {
      const nchw = x.shape[1] === C && x.shape[2] === H && x.shape[3] === W;
      throw new Error(
        `${this.name}: expected input of shape ${expected}, got [${x.shape}] (${c} channels)` +
          (nchw ? '; this looks like NCHW: transpose it with tf.transpose(x, [0, 2, 3, 1])' : ''),
      );
    }
    if (h !== H || w !== W) {
      throw new Error(
        `${this.name}: expected input of shape ${expected}, got [${x.shape}]: the input size is fixed when the ` +
          `model is built; use createModel(name, { imgSize: [${h}, ${w}] }) for ${h}×${w} inputs`,
      );
    }
    if (x.dtype !== 'float32') throw new Error(`${this.name}: expected float32 input, got ${x.dtype}`);
  }

  /** patch_embed(x) + pos_embed, pos_drop: [B, N, C] (a new tensor). */
  private embed(x: tf.Tensor): tf.Tensor {
    this.checkInput(x);
    return tf.tidy(() => {
      let t = this.patch_embed.forward(x);
      if (this.pos_embed) t = tf.add(t, this.pos_embed.value);
      return this.pos_drop.forward(t);
    });
  }

  /** Block i's input: h, with the class token concatenated at index 0 when i = localUpToLayer. */
  private blockInput(i: number, h: tf.Tensor): tf.Tensor {
    if (i !== this._config.localUpToLayer) return h;
    const B = h.shape[0]!;
    return tf.concat([tf.tile(this.cls_token.value, [B, 1, 1]), h], 1);
  }

  /** Run block i on the running tokens (one tf.tidy). */
  private runBlock(i: number, h: tf.Tensor): tf.Tensor {
    return tf.tidy(() => this.blocks.at(i).forward(this.blockInput(i, h), this.gridSize, this.prefixAt(i)));
  }

  /** Tokens after block `last` (pre-norm), disposing intermediates as it goes. */
  private trunk(x: tf.Tensor, last: number, onBlock?: (i: number, h: tf.Tensor) => void): tf.Tensor {
    let h = this.embed(x);
    for (let i = 0; i <= last; i++) {
      const next = this.runBlock(i, h);
      h.dispose();
      h = next;
      onBlock?.(i, h);
    }
    return h;
  }

  /** timm `forward_features`: the final-normed tokens [B, N+1, C] (class token at index 0). */
  forwardFeatures(x: tf.Tensor): tf.Tensor {
    assertImageBatch(x, { name: `${this.name}.forwardFeatures`, model: this });
    const h = this.trunk(x, this._config.depth - 1);
    const out = tf.tidy(() => this.norm.forward(h));
    h.dispose();
    return out;
  }

  /** timm `forward_head`: pool (class token / average) → head dropout → head, or the pooled features. */
  forwardHead(features: tf.Tensor, opts: ForwardHeadOptions = {}): tf.Tensor {
    const C = this.embedDim;
    if (features.rank !== 3 || features.shape[2] !== C) {
      throw new Error(`${this.name}.forwardHead: expected features [B, T, ${C}], got [${features.shape}]`);
    }
    return tf.tidy(() => {
      const [B, T] = features.shape as [number, number, number];
      const gp = this._config.globalPool;
      let x = features;
      // As timm: token 0 (the class token), or the mean of tokens 1.. (the patches).
      if (gp === 'token') x = tf.reshape(tf.slice(features, [0, 0, 0], [B, 1, C]), [B, C]);
      else if (gp === 'avg') x = tf.mean(tf.slice(features, [0, 1, 0], [B, T - 1, C]), 1);
      x = this.head_drop.forward(x);
      return opts.preLogits ? x : this.head.forward(x);
    });
  }

  /** Logits [B, numClasses] (pre-logits when numClasses is 0) for NHWC images [B, H, W, C]. */
  forward(x: tf.Tensor): tf.Tensor {
    assertImageBatch(x, { name: `${this.name}.forward`, model: this });
    const f = this.forwardFeatures(x);
    const y = this.forwardHead(f);
    f.dispose();
    return y;
  }

  /** timm `forward_intermediates`: block outputs (class token split off) plus the final features. */
  forwardIntermediates(x: tf.Tensor, opts: ForwardIntermediatesOptions = {}): ForwardIntermediatesResult {
    assertImageBatch(x, { name: `${this.name}.forwardIntermediates`, model: this });
    const depth = this._config.depth;
    const take = takeIndices(depth, opts.indices);
    const maxIndex = Math.max(...take);
    const fmt = opts.outputFmt ?? 'NHWC';
    if (!['NHWC', 'NCHW', 'NLC'].includes(fmt)) {
      throw new Error(`forwardIntermediates: outputFmt must be 'NHWC', 'NCHW' or 'NLC', got ${JSON.stringify(fmt)}`);
    }
    const [rows, cols] = this.gridSize;
    const intermediates: tf.Tensor[] = [];
    const prefixTokens: (tf.Tensor | null)[] = [];
    const early = opts.stopEarly || opts.intermediatesOnly;
    const h = this.trunk(x, early ? maxIndex : depth - 1, (i, t) => {
      if (!take.includes(i)) return;
      const P = this.prefixAt(i);
      const { item, prefix } = tf.tidy(() => {
        const y = opts.norm ? this.norm.forward(t) : t;
        const [B, T, C] = y.shape as [number, number, number];
        const patches = P ? tf.slice(y, [0, P, 0], [B, T - P, C]) : tf.clone(y);
        let out = patches;
        if (fmt !== 'NLC') out = tf.reshape(patches, [B, rows, cols, C]);
        if (fmt === 'NCHW') out = tf.transpose(out, [0, 3, 1, 2]);
        return P ? { item: out, prefix: tf.slice(y, [0, 0, 0], [B, P, C]) } : { item: out };
      }) as { item: tf.Tensor; prefix?: tf.Tensor };
      // Keep the requested order of `indices`.
      intermediates[take.indexOf(i)] = item;
      if (opts.returnPrefixTokens) prefixTokens[take.indexOf(i)] = prefix ?? null;
      else prefix?.dispose();
    });
    let features: tf.Tensor | null = null;
    if (!early) features = tf.tidy(() => this.norm.forward(h));
    h.dispose();
    return { features, intermediates, prefixTokens: opts.returnPrefixTokens ? prefixTokens : null };
  }

  // -------------------------------------------------------------------------------------- introspection

  /** sigmoid(gating_param) per head for each layer (null for layers that are not GPSA). */
  async gates(): Promise<(Float32Array | null)[]> {
    const out: (Float32Array | null)[] = [];
    for (const blk of this.blocks) {
      if (blk.attn instanceof Gpsa) {
        const g = blk.attn.gates();
        out.push((await g.data()) as Float32Array);
        g.dispose();
      } else out.push(null);
    }
    return out;
  }

  private checkLayer(layer: number): Block {
    if (!Number.isInteger(layer) || layer < 0 || layer >= this._config.depth) {
      throw new RangeError(`${this.name}: layer must be an integer in [0, ${this._config.depth - 1}], got ${layer}`);
    }
    return this.blocks.at(layer);
  }

  /** One layer's maps given the tokens it sees (inside a tidy). */
  private layerMaps(i: number, tokens: tf.Tensor, numPrefixTokens: number): LayerAttention | null {
    const mixer = this.blocks.at(i).attn;
    const input = { tokens, grid: this.gridSize, numPrefixTokens };
    if (mixer instanceof Gpsa) {
      const m = mixer.attentionMaps(input);
      m.gates.dispose();
      return { layer: i, kind: 'gpsa', numPrefixTokens: 0, mixed: m.mixed, content: m.content, positional: m.positional };
    }
    if (mixer instanceof Mhsa) {
      return { layer: i, kind: 'mhsa', numPrefixTokens, mixed: mixer.attentionMap(input), content: null, positional: null };
    }
    if (mixer instanceof WindowAttention) {
      const full = windowMapToFull(mixer.attentionMap(input), tokens.shape[0]!, this.gridSize, mixer.size);
      return { layer: i, kind: 'window', numPrefixTokens: 0, mixed: full, content: null, positional: null };
    }
    return null;
  }

  /**
   * Attention maps of the requested layers (default: all) for images x. GPSA maps cover the patch tokens;
   * MHSA maps include the class token (index 0) after localUpToLayer; window attention is shown as a full
   * patch map, zero outside each query's window. Layers whose mixer has no attention map (depth-wise
   * convolution, feed-forward over patches) are left out. The caller disposes the tensors.
   */
  attentionMaps(x: tf.Tensor, opts: IntrospectionOptions & { layers?: readonly number[] } = {}): LayerAttention[] {
    const layers = [...(opts.layers ?? Array.from({ length: this._config.depth }, (_, i) => i))];
    for (const l of layers) this.checkLayer(l);
    const results = new Map<number, LayerAttention>();
    if ((opts.input ?? 'block') === 'patch-embedding') {
      this.checkInput(x);
      const e = tf.tidy(() => this.patch_embed.forward(x));
      for (const l of layers) {
        const r = tf.tidy(() => this.layerMaps(l, e, 0) as unknown as tf.TensorContainer) as unknown as LayerAttention | null;
        if (r) results.set(l, r);
      }
      e.dispose();
    } else {
      const last = Math.max(...layers, -1);
      if (last >= 0) {
        let h = this.embed(x);
        for (let i = 0; i <= last; i++) {
          if (layers.includes(i)) {
            const r = tf.tidy(() => {
              const t = this.blockInput(i, h);
              return this.layerMaps(i, this.blocks.at(i).norm1.forward(t), this.prefixAt(i)) as unknown as tf.TensorContainer;
            }) as unknown as LayerAttention | null;
            if (r) results.set(i, r);
          }
          if (i < last) {
            const next = this.runBlock(i, h);
            h.dispose();
            h = next;
          }
        }
        h.dispose();
      }
    }
    return layers.filter((l) => results.has(l)).map((l) => results.get(l)!);
  }

  /**
   * One layer's attention. Without row/col: the full map [B, heads, T, T] (GPSA: over the patches; MHSA after
   * localUpToLayer: class token at index 0). With row and col: the attention of query patch (row, col) over
   * the key patches, [B, heads, rows, cols] (the class-token shift is handled here; the mass a query puts on
   * the class token is 1 − the sum). `positional` maps are batch-independent: [1, heads, ...].
   */
  attentionMap(x: tf.Tensor, layer: number, opts: AttentionMapOptions = {}): tf.Tensor {
    const blk = this.checkLayer(layer);
    const which = opts.which ?? 'mixed';
    if (which !== 'mixed' && !(blk.attn instanceof Gpsa)) {
      throw new Error(`${this.name}: layer ${layer} is '${blk.attn.kind}', which has no '${which}' attention (GPSA only)`);
    }
    const [rows, cols] = this.gridSize;
    const hasQuery = opts.row !== undefined || opts.col !== undefined;
    if (hasQuery) {
      const { row, col } = opts;
      if (!Number.isInteger(row) || !Number.isInteger(col) || row! < 0 || col! < 0 || row! >= rows || col! >= cols) {
        throw new RangeError(`${this.name}: row/col must address a patch of the ${rows}×${cols} grid, got (${row}, ${col})`);
      }
    }
    const maps = this.attentionMaps(x, { input: opts.input, layers: [layer] });
    if (maps.length === 0) throw new Error(`${this.name}: layer ${layer} ('${blk.attn.kind}') has no attention map`);
    const m = maps[0]!;
    try {
      return tf.tidy(() => {
        const chosen =
          which === 'content' ? m.content! : which === 'positional' ? tf.expandDims(m.positional!, 0) : m.mixed;
        if (!hasQuery) return tf.clone(chosen);
        const P = which === 'mixed' ? m.numPrefixTokens : 0;
        const [B, heads] = chosen.shape as [number, number, number, number];
        const q = P + opts.row! * cols + opts.col!;
        return tf.reshape(tf.slice(chosen, [0, 0, q, P], [B, heads, 1, rows * cols]), [B, heads, rows, cols]);
      });
    } finally {
      tf.dispose([m.mixed, m.content, m.positional].filter((t): t is tf.Tensor => t !== null));
    }
  }

  /**
   * Nonlocality per head for each layer (null where the mixer has no attention map): the mean over query
   * patches of the expected query–key distance in patches, the attention averaged over the batch first.
   * `input: 'block'` (default) uses each layer's real input; `'patch-embedding'` the official ConViT
   * measurement (raw patch embeddings into every layer).
   */
  async nonlocality(x: tf.Tensor, opts: IntrospectionOptions = {}): Promise<(Float32Array | null)[]> {
    const maps = this.attentionMaps(x, opts);
    const out: (Float32Array | null)[] = Array.from({ length: this._config.depth }, () => null);
    for (const m of maps) {
      const d = nonlocality(m.mixed, this.gridSize, m.numPrefixTokens);
      out[m.layer] = (await d.data()) as Float32Array;
      tf.dispose([d, m.mixed, m.content, m.positional].filter((t): t is tf.Tensor => t !== null));
    }
    return out;
  }

  // -------------------------------------------------------------------------------------------- classifier

  /** Replace the classifier with a fresh `numClasses`-way head (0 = none), initialised as timm's (PyTorch default). */
  resetClassifier(numClasses: number): void {
    if (!Number.isInteger(numClasses) || numClasses < 0) {
      throw new RangeError(`resetClassifier: numClasses must be a non-negative integer, got ${numClasses}`);
    }
    this.head.reset(numClasses, this.rng.fork(), 'torch');
    this.head.train(this.training);
    this._config = { ...this._config, numClasses };
  }

  // -------------------------------------------------------------------------------------------- weights

  /**
   * Load safetensors weights (timm names and layouts): bytes, a Node file path, a URL, or a parsed file.
   * Strict: every key must match by name and shape. A classifier of another size throws naming `head.*`
   * unless `skipHead`. A `pos_embed` for another patch grid is resampled (bicubic) and a notice says so.
   * timm's deit_* (VisionTransformer) checkpoints are refused.
   */
  async loadWeights(source: WeightsSource | SafetensorsFile, opts: LoadWeightsOptions = {}): Promise<LoadWeightsResult> {
    const file = isSafetensorsFile(source) ? source : await readSafetensors(source);
    const sd = stateDictFromSafetensors(file);
    const ours = hasSoftbiasConfig(file);
    refuseTimmDeit(sd, this.numPatches, ours);
    const notices: string[] = [];
    const pe = sd.get('pos_embed');
    if (pe && this.pos_embed && pe.shape.length === 3 && pe.shape[2] === this.embedDim && pe.shape[1] !== this.numPatches) {
      const from = checkpointGrid(file, pe.shape[1]!);
      const data = resamplePosEmbed(pe.data, from, this.gridSize, this.embedDim);
      sd.set('pos_embed', { data, shape: [1, this.numPatches, this.embedDim] });
      notices.push(
        `pos_embed resampled (bicubic, antialiased) from the checkpoint's ${from[0]}×${from[1]} patch grid to ` +
          `this model's ${this.gridSize[0]}×${this.gridSize[1]}`,
      );
    }
    let result: LoadStateDictResult;
    try {
      result = this.loadStateDict(sd, { strict: opts.strict ?? true, skip: opts.skipHead ? ['head.'] : [] });
    } catch (e) {
      if (e instanceof StateDictError && !opts.skipHead) {
        const r = e.result;
        const headIssue = r.mismatched.some((m) => m.key.startsWith('head.')) ||
          [...r.missing, ...r.unexpected].some((k) => k.startsWith('head.'));
        if (headIssue) {
          throw new StateDictError(
            `${e.message}\n  The classifier head.* differs from this model's (${this.numClasses} classes): pass ` +
              '{ skipHead: true } to keep this model\'s head, or build the model with the checkpoint\'s numClasses',
            r,
          );
        }
      }
      throw e;
    }
    const notify = opts.onNotice ?? ((m: string) => console.warn(`@softbias/models-convit: ${m}`));
    for (const n of notices) notify(n);
    return { ...result, notices };
  }

  /**
   * Save the weights as safetensors with timm names and PyTorch layouts (timm loads the file), the
   * architecture in `__metadata__.config` (JSON) and the registry name in `__metadata__.arch`.
   * With a path (Node) the file is written atomically; the bytes are returned either way.
   */
  async saveWeights(path?: string): Promise<Uint8Array> {
    const bytes = await saveSafetensorsBytes(this, {
      config: this._config,
      metadata: { arch: this.name, library: '@softbias/models-convit', format: 'pt' },
    });
    if (path !== undefined) await writeFileAtomic(path, bytes);
    return bytes;
  }

  /** Resize, center-crop and normalise one image for this model → [1, H, W, 3] float32 NHWC. */
  preprocess(image: ImageInput): tf.Tensor4D {
    const p = this.pretrainedConfig;
    return preprocessImage(image, { size: this._config.imgSize, mean: p.mean, std: p.std, cropPct: p.cropPct });
  }

}

function isSafetensorsFile(s: unknown): s is SafetensorsFile {
  return typeof s === 'object' && s !== null && typeof (s as SafetensorsFile).getFloat32 === 'function';
}

/** timm's feature_take_indices: last n blocks (number), these (array, negatives from the end), or all. */
function takeIndices(depth: number, indices?: number | readonly number[]): number[] {
  if (indices === undefined) return Array.from({ length: depth }, (_, i) => i);
  if (typeof indices === 'number') {
    if (!Number.isInteger(indices) || indices < 1 || indices > depth) {
      throw new RangeError(`forwardIntermediates: indices (last n) must be in [1, ${depth}], got ${indices}`);
    }
    return Array.from({ length: indices }, (_, i) => depth - indices + i);
  }
  if (indices.length === 0) throw new RangeError('forwardIntermediates: indices is empty');
  return indices.map((i) => {
    const j = i < 0 ? depth + i : i;
    if (!Number.isInteger(j) || j < 0 || j >= depth) {
      throw new RangeError(`forwardIntermediates: block index ${i} is out of range for depth ${depth}`);
    }
    return j;
  });
}

// ------------------------------------------------------------------------------------------------ factory

/**
 * Build a registered model. `overrides` are timm's constructor arguments in camelCase (`embedDim` = total
 * width), plus `mixers`, `seed` and the dropout rates. Weights are initialised as timm (seeded).
 */
export function createModel(name: string, overrides: ConvitOverrides = {}): ConVit {
  const entry = getModelInfo(name);
  const config = resolveConfig(entry.args, overrides);
  const pretrained: PretrainedConfig = {
    ...entry.pretrained,
    inputSize: [config.inChans, config.imgSize[0], config.imgSize[1]],
    numClasses: config.numClasses,
  };
  return new ConVit(config, { name, pretrained });
}

/**
 * Rebuild a model from a weights file: its stored config (files from `saveWeights`), or else the
 * architecture implied by timm key names and shapes; then load the weights strictly.
 */
export async function loadModel(
  source: WeightsSource | SafetensorsFile,
  overrides: ConvitOverrides = {},
  opts: Omit<LoadWeightsOptions, 'skipHead'> = {},
): Promise<ConVit> {
  const file = isSafetensorsFile(source) ? source : await readSafetensors(source);
  const sd = stateDictFromSafetensors(file);
  refuseTimmDeit(sd, undefined, hasSoftbiasConfig(file));
  const config = configFromCheckpoint(file, sd, overrides);
  const arch = file.metadata['arch'];
  const entry = arch ? MODEL_REGISTRY.get(arch) : undefined;
  const pretrained: PretrainedConfig | undefined = entry
    ? { ...entry.pretrained, inputSize: [config.inChans, config.imgSize[0], config.imgSize[1]], numClasses: config.numClasses }
    : undefined;
  const model = new ConVit(config, { name: entry ? entry.name : 'convit', pretrained });
  try {
    await model.loadWeights(file, opts);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

/**
 * timm's eval transform for a model (a built model, a registered name, or an explicit config): resize the
 * short side to size / cropPct (bicubic, antialiased), center-crop, scale to [0, 1], normalise with mean/std.
 * Returns [1, H, W, 3] float32 NHWC.
 */
export function preprocess(image: ImageInput, model: ConVit | string | PreprocessConfig): tf.Tensor4D {
  if (model instanceof ConVit) return model.preprocess(image);
  if (typeof model === 'string') {
    const p = getModelInfo(model).pretrained;
    return preprocessImage(image, { size: [p.inputSize[1], p.inputSize[2]], mean: p.mean, std: p.std, cropPct: p.cropPct });
  }
  return preprocessImage(image, model);
}
