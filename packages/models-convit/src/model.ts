/**
 * ConViT (d'Ascoli et al., 2021) with timm's module tree and parameter names: patch embedding, absolute
 * position embedding, `localUpToLayer` GPSA blocks over the patch tokens, the class token concatenated at
 * index 0 before block `localUpToLayer`, MHSA blocks, final LayerNorm (eps 1e-6), head on token 0.
 * The model implements `VisionModel` from `@softbias/tensor-ops/models`.
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  Dropout,
  LayerNorm,
  Module,
  ModuleList,
  type Parameter,
  PatchEmbed,
  Rng,
  type LoadStateDictResult,
  StateDictError,
  assertImageBatch,
  gradCheckpoint,
  truncNormal,
} from '@softbias/tensor-ops';
import {
  ClassifierHead,
  type ForwardHeadOptions as ContractForwardHeadOptions,
  type ForwardIntermediatesOptions as ContractForwardIntermediatesOptions,
  type ForwardIntermediatesResult as ContractForwardIntermediatesResult,
  type ImageInput,
  type LoadWeightsOptions as ContractLoadWeightsOptions,
  type PretrainedConfig,
  type SaveWeightsOptions,
  type VisionModel,
  type WeightsInput,
  featureTakeIndices,
  preprocess as preprocessImage,
  readWeights,
  writeWeights,
} from '@softbias/tensor-ops/models';
import type { MixerMacs } from '@softbias/attention';
import { type ConvitConfig, dropPathRates } from './config.js';
import { Block } from './blocks.js';
import { CONVIT_FAMILY, defaultPretrainedConfig } from './registry.js';
import { filterCheckpoint } from './checkpoint.js';
import {
  type AttentionMapOptions,
  type IntrospectionOptions,
  type LayerAttention,
  attentionMapOf,
  attentionMapsOf,
  gatesOf,
  nonlocalityOf,
} from './introspection.js';

export interface LoadWeightsOptions extends ContractLoadWeightsOptions {
  /** Receives what the loader adapted (e.g. pos_embed resampled). Default `console.warn`. */
  onNotice?: (message: string) => void;
}

export interface LoadWeightsResult extends LoadStateDictResult {
  /** What was adapted while loading (e.g. "pos_embed resampled from 14×14 to 7×7 ..."). */
  notices: string[];
}

export type ForwardHeadOptions = ContractForwardHeadOptions;

export interface ForwardIntermediatesOptions extends ContractForwardIntermediatesOptions {
  /** `NHWC` [B, rows, cols, C] (default), `NCHW` [B, C, rows, cols] or `NLC` [B, rows·cols, C]. */
  outputFmt?: 'NHWC' | 'NCHW' | 'NLC';
  /** Also return each intermediate's prefix (class) token [B, 1, C], null for blocks before it exists. */
  returnPrefixTokens?: boolean;
}

export interface ForwardIntermediatesResult extends ContractForwardIntermediatesResult {
  /**
   * The final-normed tokens [B, N(+1), C] of the trunk that ran: `forwardFeatures`' output, or with
   * `stopEarly` the normed output of the trunk truncated after the last requested block (timm); null only
   * with `intermediatesOnly`.
   */
  features: tf.Tensor | null;
  /** With `returnPrefixTokens`: [B, 1, C] per requested block (null before the class token joins). */
  prefixTokens: (tf.Tensor | null)[] | null;
}

/** Hooks into the one block loop of the trunk (what forwardIntermediates and the introspection read). */
export interface BlockHooks {
  /** Block i's input (class token joined at localUpToLayer), before the block runs. Borrowed: do not dispose. */
  before?: (i: number, input: tf.Tensor) => void;
  /** Block i's output. Borrowed: do not dispose. */
  after?: (i: number, output: tf.Tensor) => void;
}

export class ConViT extends Module implements VisionModel<ConvitConfig> {
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

  private _config: ConvitConfig;
  private readonly rng: Rng;

  constructor(config: ConvitConfig, meta: { name?: string; pretrained?: PretrainedConfig } = {}) {
    super();
    this._config = config;
    this.name = meta.name ?? CONVIT_FAMILY;
    const C = config.embedDim;
    const [H, W] = config.imgSize;
    this.pretrainedConfig = meta.pretrained ?? defaultPretrainedConfig(config);
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
          config,
          dropPath: dpr[i]!,
          rng,
        }),
      );
    }
    this.blocks = this.registerModule('blocks', new ModuleList(blocks));
    this.norm = this.registerModule('norm', new LayerNorm(C, 1e-6));
    this.head_drop = this.registerModule('head_drop', new Dropout(config.dropRate, rng.fork()));
    this.registerModule('head', new ClassifierHead(C, config.numClasses, { rng, init: { kind: 'trunc_normal', std: 0.02 } }));
  }

  /** The classifier slot `head` (timm's `nn.Linear`, or the identity for numClasses 0). */
  get head(): ClassifierHead {
    return this.children().find(([n]) => n === 'head')![1] as ClassifierHead;
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

  /** Throws naming the expected NHWC shape (and the fix for NCHW input or another size). */
  checkInput(x: tf.Tensor): void {
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

  /** Recompute each block's activations in the backward pass instead of keeping them (`setGradCheckpointing`). */
  gradCheckpointing = false;

  /**
   * timm's `set_grad_checkpointing`: while training, each block keeps only its input and recomputes its
   * activations in the backward pass (about one more forward of compute, much less memory: larger batches).
   * Same results (`gradCheckpoint` replays DropPath's random masks). Returns the model.
   */
  setGradCheckpointing(enable = true): this {
    this.gradCheckpointing = enable;
    return this;
  }

  /**
   * The one block loop: embed `x`, run blocks 0 … `last` (one tf.tidy each; the class token is concatenated
   * before block localUpToLayer), calling `hooks` around each, and return the tokens after block `last`
   * (pre-norm, a new tensor). With `runLast: false` block `last` is not run (its `before` hook still is) and
   * the tokens before it are returned.
   */
  forwardBlocks(x: tf.Tensor, last: number, hooks: BlockHooks = {}, runLast = true): tf.Tensor {
    let h = this.embed(x);
    for (let i = 0; i <= last; i++) {
      const joined = i === this._config.localUpToLayer;
      const input = joined ? tf.tidy(() => tf.concat([tf.tile(this.cls_token.value, [h.shape[0]!, 1, 1]), h], 1)) : h;
      hooks.before?.(i, input);
      if (i === last && !runLast) {
        if (joined) input.dispose();
        break;
      }
      const blk = this.blocks.at(i);
      const run = (t: tf.Tensor) => blk.forward(t, this.gridSize, this.prefixAt(i));
      const next = tf.tidy(() => (this.gradCheckpointing ? gradCheckpoint(blk, input, run) : run(input)));
      if (joined) input.dispose();
      h.dispose();
      h = next;
      hooks.after?.(i, h);
    }
    return h;
  }

  /** timm `forward_features`: the final-normed tokens [B, N+1, C] (class token at index 0). */
  forwardFeatures(x: tf.Tensor): tf.Tensor {
    assertImageBatch(x, { name: `${this.name}.forwardFeatures`, model: this });
    const h = this.forwardBlocks(x, this._config.depth - 1);
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

  /**
   * timm `forward_intermediates`: block outputs (class token split off) plus the final-normed features.
   * `stopEarly` stops after the last requested block and `features` is then the normed output of that
   * truncated trunk (as timm); `intermediatesOnly` stops there too and returns `features: null`.
   */
  forwardIntermediates(x: tf.Tensor, opts: ForwardIntermediatesOptions = {}): ForwardIntermediatesResult {
    assertImageBatch(x, { name: `${this.name}.forwardIntermediates`, model: this });
    const depth = this._config.depth;
    const { indices: take, maxIndex } = featureTakeIndices(depth, opts.indices);
    const fmt = opts.outputFmt ?? 'NHWC';
    if (!['NHWC', 'NCHW', 'NLC'].includes(fmt)) {
      throw new Error(`forwardIntermediates: outputFmt must be 'NHWC', 'NCHW' or 'NLC', got ${JSON.stringify(fmt)}`);
    }
    const [rows, cols] = this.gridSize;
    const intermediates: tf.Tensor[] = [];
    const prefixTokens: (tf.Tensor | null)[] = [];
    const early = opts.stopEarly || opts.intermediatesOnly;
    const after = (i: number, t: tf.Tensor) => {
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
    };
    const h = this.forwardBlocks(x, early ? maxIndex : depth - 1, { after });
    const features = opts.intermediatesOnly ? null : tf.tidy(() => this.norm.forward(h));
    h.dispose();
    return { features, intermediates, prefixTokens: opts.returnPrefixTokens ? prefixTokens : null };
  }

  // -------------------------------------------------------------------------------------- introspection

  /** sigmoid(gating_param) per head for each layer (null for layers whose mixer has no gates). */
  gates(): Promise<(Float32Array | null)[]> {
    return gatesOf(this);
  }

  /**
   * Attention maps of the requested layers (default: all) for images x. GPSA maps cover the patch tokens;
   * MHSA maps include the class token (index 0) after localUpToLayer; window attention is shown as a full
   * patch map, zero outside each query's window. Layers whose mixer has no attention map (depth-wise
   * convolution, feed-forward over patches) are left out. The caller disposes the tensors.
   */
  attentionMaps(x: tf.Tensor, opts: IntrospectionOptions & { layers?: readonly number[] } = {}): LayerAttention[] {
    return attentionMapsOf(this, x, opts);
  }

  /**
   * One layer's attention. Without row/col: the full map [B, heads, T, T] (GPSA: over the patches; MHSA after
   * localUpToLayer: class token at index 0). With row and col: the attention of query patch (row, col) over
   * the key patches, [B, heads, rows, cols] (the class-token shift is handled here; the mass a query puts on
   * the class token is 1 − the sum). `positional` maps are batch-independent: [1, heads, ...].
   */
  attentionMap(x: tf.Tensor, layer: number, opts: AttentionMapOptions = {}): tf.Tensor {
    return attentionMapOf(this, x, layer, opts);
  }

  /**
   * Nonlocality per head for each layer (null where the mixer has no attention map): the mean over query
   * patches of the expected query–key distance in patches, the attention averaged over the batch first.
   * `input: 'block'` (default) uses each layer's real input; `'patch-embedding'` the official ConViT
   * measurement (raw patch embeddings into every layer).
   */
  nonlocality(x: tf.Tensor, opts: IntrospectionOptions = {}): Promise<(Float32Array | null)[]> {
    return nonlocalityOf(this, x, opts);
  }

  /**
   * Multiply-accumulates per image of one `forward` (what a profiler of the executed matmul and convolution
   * kernels counts): the patch embedding, each block's mixer (its own count) and MLP, the head. Sum them with
   * @softbias/metrics' `countMacs`. `countCached` counts work that eval mode caches (GPSA's positional
   * projection); default: as the next forward runs.
   */
  macs(opts: { countCached?: boolean } = {}): MixerMacs[] {
    const C = this.embedDim;
    const c = this._config;
    const out: MixerMacs[] = [
      { name: 'patch_embed.proj', op: 'conv2d', macs: this.numPatches * C * c.inChans * c.patchSize * c.patchSize },
    ];
    for (let i = 0; i < c.depth; i++) {
      for (const e of this.blocks.at(i).macs({ grid: this.gridSize, numPrefixTokens: this.prefixAt(i) }, opts)) {
        out.push({ ...e, name: `blocks.${i}.${e.name}` });
      }
    }
    if (this.numClasses > 0) out.push({ name: 'head', op: 'linear', macs: C * this.numClasses });
    return out;
  }

  // -------------------------------------------------------------------------------------------- classifier

  /** Replace the classifier with a fresh `numClasses`-way head (0 = none), initialised as timm's (PyTorch default). */
  resetClassifier(numClasses: number): void {
    if (!Number.isInteger(numClasses) || numClasses < 0) {
      throw new RangeError(`resetClassifier: numClasses must be a non-negative integer, got ${numClasses}`);
    }
    this.replaceModule('head', new ClassifierHead(this.embedDim, numClasses, { rng: this.rng.fork(), init: { kind: 'torch' } }));
    this._config = { ...this._config, numClasses };
  }

  // -------------------------------------------------------------------------------------------- weights

  /**
   * Load weights (timm names and layouts): safetensors bytes, a Node file path, a URL, a `Response`/`Blob`,
   * a parsed file, a `WeightsFile` or a state dict. Strict: every key must match by name and shape. A
   * classifier of another size throws naming `head.*` unless `skipHead`. A `pos_embed` for another patch grid
   * is resampled (bicubic) and a notice says so. timm's deit_* (VisionTransformer) checkpoints are refused.
   */
  async loadWeights(source: WeightsInput, opts: LoadWeightsOptions = {}): Promise<LoadWeightsResult> {
    const w = await readWeights(source, {
      ...(opts.allowNonFinite !== undefined ? { allowNonFinite: opts.allowNonFinite } : {}),
      ...(opts.allowIntegerCast !== undefined ? { allowIntegerCast: opts.allowIntegerCast } : {}),
    });
    const { sd, notices } = await filterCheckpoint(w, this);
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
   * Save the weights as safetensors with timm names and PyTorch layouts (timm loads the file), under the one
   * metadata rule of `writeWeights`: `arch` (the registry name), `family: 'convit'`, `config` (the resolved
   * architecture). With a path (Node) the file is written atomically; the bytes are returned either way.
   * `dtype: 'float16' | 'bfloat16'` halves the file.
   */
  saveWeights(path?: string, opts: SaveWeightsOptions = {}): Promise<Uint8Array> {
    return writeWeights(this, {
      arch: this.name,
      family: CONVIT_FAMILY,
      config: this._config,
      ...(path !== undefined ? { path } : {}),
      ...(opts.dtype !== undefined ? { dtype: opts.dtype } : {}),
    });
  }

  /** Resize, center-crop and normalise one image for this model → [1, H, W, 3] float32 NHWC. */
  preprocess(image: ImageInput): tf.Tensor4D {
    return preprocessImage(image, this.pretrainedConfig, { size: this._config.imgSize });
  }
}

/** @deprecated The paper spells it ConViT: use {@link ConViT}. This alias goes in the next minor release. */
export const ConVit = ConViT;
/** @deprecated Use {@link ConViT}. */
export type ConVit = ConViT;
