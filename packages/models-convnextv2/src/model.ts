/**
 * The ConvNeXt V2 classifier (timm module tree and names), its constructors and weight I/O. Implements the
 * shared `VisionModel` contract of `@softbias/tensor-ops/models`.
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  Rng,
  StateDictError,
  assertImageBatch,
  type LoadStateDictOptions,
  type LoadStateDictResult,
  type StateDict,
} from '@softbias/tensor-ops';
import {
  type ForwardIntermediatesOptions,
  type ForwardIntermediatesResult,
  type LoadWeightsOptions as ContractLoadWeightsOptions,
  type FeatureInfo,
  type FeaturesOnlyOptions,
  type PretrainedConfig,
  type PretrainedCreateOptions,
  type SaveWeightsOptions,
  type VisionModel,
  type WeightsInput,
  FeatureModel,
  createPretrained,
  featureTakeIndices,
  readWeights,
  writeWeights,
} from '@softbias/tensor-ops/models';
import { ConvNeXtV2Head } from './blocks.js';
import {
  FAMILY,
  MODELS,
  customPretrainedConfig,
  parameterShapes,
  resolveConfig,
  type ConvNeXtV2Config,
  type ConvNeXtV2Overrides,
  type PretrainedConfig as LegacyPretrainedConfig,
} from './config.js';
import { toTimmStateDict, type KeyNaming } from './checkpoint.js';
import { preprocess, type ImageInput, type PreprocessOptions } from './preprocess.js';
import { ConvNeXtV2Trunk } from './trunk.js';
import { registerConvNeXtV2 } from './registry.js';

/** Smallest input side: the total stride is 32 (4 · 2 · 2 · 2) and every stage needs at least one row. */
export const MIN_INPUT_SIZE = 32;

export { FAMILY };

export interface CreateModelOptions extends ConvNeXtV2Overrides {
  /** Seed of the initialisation (and drop-path) random numbers. Default 0. */
  seed?: number;
}

export interface LoadWeightsOptions extends ContractLoadWeightsOptions {
  /** Leave the classifier (`head.fc.*`) as it is: for fine-tuning with another number of classes. */
  skipHead?: boolean;
}

export interface LoadWeightsResult extends LoadStateDictResult {
  /** The key naming found in the checkpoint. */
  naming: KeyNaming;
}

export interface IntermediatesOptions extends ForwardIntermediatesOptions {
  /** Stage indices (negative counts from the end), or n = the last n stages. Default: all four. */
  indices?: number | readonly number[];
}

export interface IntermediatesResult extends ForwardIntermediatesResult {
  /** Requested stage outputs, NHWC, in stage order. */
  intermediates: tf.Tensor4D[];
  /**
   * Output of the last stage run (what `forwardFeatures` returns; with `stopEarly`, the truncated trunk's),
   * null only with `intermediatesOnly`.
   */
  features: tf.Tensor4D | null;
}

/**
 * ConvNeXt V2 (timm `ConvNeXt` with `use_grn=True, ls_init_value=None`): `stem`, `stages.0…3`, `head`.
 * Channels-last throughout: inputs [B, H, W, C] float32 with H, W ≥ 32, any size (odd sizes floor at each
 * stride-2 step, as PyTorch does).
 */
export class ConvNeXtV2 extends ConvNeXtV2Trunk implements VisionModel<ConvNeXtV2Config> {
  readonly config: ConvNeXtV2Config;
  /** @deprecated The pretrained config in its first form ([H, W] sizes), null for custom models: use `pretrainedConfig`. */
  readonly pretrained: LegacyPretrainedConfig | null;
  readonly head: ConvNeXtV2Head;
  private readonly _pretrainedConfig: PretrainedConfig | null;

  constructor(config: ConvNeXtV2Config, opts: { seed?: number } = {}) {
    const { depths, dims } = config;
    super(config.inChans, depths, dims, { rng: new Rng(opts.seed ?? 0), dropPathRate: config.dropPathRate });
    this.config = { ...config, depths: [...config.depths], dims: [...config.dims] };
    const entry = MODELS.find((m) => m.name === config.name);
    this.pretrained = entry?.pretrained ?? null;
    this._pretrainedConfig = entry?.pretrainedConfig ?? null;
    this.head = this.registerModule('head', new ConvNeXtV2Head(dims[3], config.numClasses, this.rng, config.headInitScale));
  }

  /** Input size, crop and normalisation (the registered size's, or ImageNet's at 224 px), with this model's channels and classes. */
  get pretrainedConfig(): PretrainedConfig {
    const base = this._pretrainedConfig ?? customPretrainedConfig(this.config.numClasses, this.config.inChans);
    const [, h, w] = base.inputSize;
    return { ...base, inputSize: [this.config.inChans, h, w], numClasses: this.config.numClasses };
  }

  get numClasses(): number {
    return this.head.numClasses;
  }

  /** Number of features after pooling (the classifier's input). */
  get numFeatures(): number {
    return this.config.dims[3];
  }

  private checkInput(x: tf.Tensor): void {
    const C = this.config.inChans;
    if (x.rank !== 4 || x.shape[3] !== C || x.shape[1]! < MIN_INPUT_SIZE || x.shape[2]! < MIN_INPUT_SIZE) {
      throw new Error(
        `ConvNeXt V2: expected input of shape [B, H, W, ${C}] (NHWC float32) with H, W ≥ ${MIN_INPUT_SIZE}, got [${x.shape}]`,
      );
    }
  }

  /** The stage loop on a checked, float32 input. */
  private run(x: tf.Tensor, last: number, keep: (i: number) => boolean): { out: tf.Tensor; kept: tf.Tensor[] } {
    this.checkInput(x);
    const xin = x.dtype === 'float32' ? x : tf.cast(x, 'float32');
    try {
      return this.runStages(xin, last, keep);
    } finally {
      if (xin !== x) xin.dispose();
    }
  }

  /** Last stage output [B, H/32, W/32, dims[3]] (floored per stride-2 step). */
  forwardFeatures(x: tf.Tensor): tf.Tensor4D {
    assertImageBatch(x, { name: 'ConvNeXtV2.forwardFeatures', model: this });
    return this.run(x, 3, () => false).out as tf.Tensor4D;
  }

  /** Pooled → `head.norm` → `head.fc`; with `preLogits` the normalised pooled features [B, dims[3]]. */
  forwardHead(features: tf.Tensor, opts: { preLogits?: boolean } = {}): tf.Tensor2D {
    return this.head.forward(features, opts) as tf.Tensor2D;
  }

  /** Logits [B, numClasses] (pre-logits when numClasses = 0). */
  forward(x: tf.Tensor): tf.Tensor2D {
    assertImageBatch(x, { name: 'ConvNeXtV2.forward', model: this });
    const f = this.forwardFeatures(x);
    try {
      return this.forwardHead(f);
    } finally {
      f.dispose();
    }
  }

  /**
   * timm's `forward_intermediates`: per-stage feature maps (NHWC, stage order) and the final features.
   * `stopEarly` runs the stages up to the last requested one, and `features` is then that stage's output
   * (timm's semantics; ConvNeXt's `norm_pre` is the identity, so `norm` changes nothing).
   */
  forwardIntermediates(x: tf.Tensor, opts: IntermediatesOptions = {}): IntermediatesResult {
    assertImageBatch(x, { name: 'ConvNeXtV2.forwardIntermediates', model: this });
    const { indices: take, maxIndex } = featureTakeIndices(4, opts.indices);
    const wanted = new Set(take);
    const last = opts.stopEarly || opts.intermediatesOnly ? maxIndex : 3;
    const { out, kept } = this.run(x, last, (i) => wanted.has(i));
    let features: tf.Tensor4D | null = out as tf.Tensor4D;
    if (opts.intermediatesOnly) {
      if (!kept.includes(out)) out.dispose();
      features = null;
    } else if (kept.includes(out)) {
      features = tf.clone(out) as tf.Tensor4D;
    }
    return { intermediates: kept as tf.Tensor4D[], features };
  }

  /** Replace the classifier by a fresh one with `numClasses` outputs (0 = pooled features only). */
  resetClassifier(numClasses: number): void {
    this.head.reset(numClasses, this.rng.fork(), this.config.headInitScale);
    this.config.numClasses = numClasses;
  }

  /**
   * Preprocess images for this model (its pretrained config's size, crop and normalisation; timm's eval
   * transform). Pixel values 0–255 here, float32 included.
   * @deprecated Use `preprocess(image, model)` from `@softbias/tensor-ops/models` (float32 pixels 0–1).
   */
  preprocess(image: ImageInput, opts: PreprocessOptions = {}): tf.Tensor4D {
    return preprocess(image, opts, this.pretrained ?? undefined);
  }

  /** PyTorch shapes the model's parameters take in a timm checkpoint. */
  expectedShapes(): Map<string, number[]> {
    return new Map(parameterShapes(this.config));
  }

  /**
   * timm state dict: MLP weights as `(out, in, 1, 1)` when `config.convMlp` (timm's atto…nano), else
   * `(out, in)`. New tensors the caller owns.
   */
  override stateDict(): Map<string, tf.Tensor> {
    const sd = super.stateDict();
    const shapes = this.expectedShapes();
    for (const [k, t] of sd) {
      const want = shapes.get(k);
      if (want && !tf.util.arraysEqual(want, t.shape)) {
        sd.set(k, tf.reshape(t, want));
        t.dispose();
      }
    }
    return sd;
  }

  /**
   * Load timm- or official-named tensors (detected), with MLP weights as `(out, in)` or `(out, in, 1, 1)`
   * and GRN parameters as `(C)` or `(1, 1, 1, C)`. Strict by default.
   */
  override loadStateDict(sd: StateDict, opts: LoadStateDictOptions = {}): LoadWeightsResult {
    const entries = sd instanceof Map ? sd : new Map(Object.entries(sd));
    // Conform to the shapes the parameters take in PyTorch layout (MLP weights 2-D, GRN 1-D).
    const norm = toTimmStateDict(entries, new Map(this.namedParameters().map(([k, p]) => [k, p.torchShape])));
    try {
      const r = super.loadStateDict(norm.sd, opts);
      return { ...r, naming: norm.naming };
    } catch (e) {
      if (e instanceof StateDictError && e.result.mismatched.some((m) => m.key.startsWith('head.fc.'))) {
        throw new StateDictError(
          `${e.message}\n  The classifier (head.fc.*) has another number of classes: pass { skipHead: true } to ` +
            'loadWeights to keep this model\'s head (fine-tuning), or create the model with the matching numClasses.',
          e.result,
        );
      }
      throw e;
    } finally {
      for (const t of norm.created) t.dispose();
    }
  }

  /**
   * Load weights from safetensors (bytes, a Node path, a URL, a `Response`/`Blob`, a parsed file, a
   * `WeightsFile`) or a state dict. Strict by default; `skipHead` leaves `head.fc.*` untouched (and ignores it
   * in the checkpoint). Integer tensors and NaN / ±Inf are refused unless `allowIntegerCast` / `allowNonFinite`.
   */
  async loadWeights(source: WeightsInput, opts: LoadWeightsOptions = {}): Promise<LoadWeightsResult> {
    const w = await readWeights(source);
    const sd = w.stateDict(opts);
    return this.loadStateDict(sd, {
      strict: opts.strict ?? true,
      skip: opts.skipHead ? ['head.fc.'] : [],
      allowNonFinite: opts.allowNonFinite ?? false,
    });
  }

  /**
   * The weights as safetensors bytes with timm names and shapes (timm loads them strictly) and the shared
   * metadata rule (`arch`, `family: 'convnextv2'`, `config`). With a Node path, also written there (atomically).
   * `dtype: 'float16' | 'bfloat16'` halves the file.
   */
  async saveWeights(path?: string, opts: SaveWeightsOptions = {}): Promise<Uint8Array> {
    return writeWeights(this, {
      arch: this.config.name,
      family: FAMILY,
      config: this.config,
      ...(path !== undefined ? { path } : {}),
      ...(opts.dtype !== undefined ? { dtype: opts.dtype } : {}),
    });
  }

  /** The four stage outputs as timm's `feature_info`: channels `dims[i]`, reductions 4, 8, 16, 32. */
  get featureInfo(): FeatureInfo[] {
    return this.config.dims.map((numChs, index) => ({ index, module: `stages.${index}`, numChs, reduction: 4 * 2 ** index }));
  }
}

/**
 * Build a registered ConvNeXt V2 (`listModels()`), optionally changing its architecture. With
 * `featuresOnly: true` (timm's `features_only`), a `FeatureModel` whose `forward` returns the stage outputs of
 * `outIndices` (default all four: strides 4, 8, 16, 32) as NHWC maps, described by `featureInfo`; it has no
 * classifier.
 */
export function createModel(name: string, overrides: CreateModelOptions & PretrainedCreateOptions & FeaturesOnly): Promise<FeatureModel<ConvNeXtV2>>;
export function createModel(name: string, overrides: CreateModelOptions & PretrainedCreateOptions & { featuresOnly?: false }): Promise<ConvNeXtV2>;
export function createModel(name: string, overrides: CreateModelOptions & FeaturesOnly & { pretrained?: false }): FeatureModel<ConvNeXtV2>;
export function createModel(name: string, overrides?: CreateModelOptions & { featuresOnly?: false; pretrained?: false }): ConvNeXtV2;
export function createModel(
  name: string,
  overrides: CreateModelOptions & { featuresOnly?: boolean; outIndices?: FeaturesOnlyOptions['outIndices']; pretrained?: boolean | string } = {},
): ConvNeXtV2 | FeatureModel<ConvNeXtV2> | Promise<ConvNeXtV2 | FeatureModel<ConvNeXtV2>> {
  if (overrides.pretrained) return createPretrainedModel(name, overrides as CreateModelOptions & PretrainedCreateOptions & { featuresOnly?: boolean });
  const { seed, featuresOnly, outIndices, pretrained: _p, ...arch } = overrides;
  if (!featuresOnly) {
    if (outIndices !== undefined) throw new Error('createModel: outIndices needs featuresOnly: true');
    return new ConvNeXtV2(resolveConfig(name, arch), { seed: seed ?? 0 });
  }
  const model = new ConvNeXtV2(resolveConfig(name, { ...arch, numClasses: 0 }), { seed: seed ?? 0 });
  try {
    return new FeatureModel(model, model.featureInfo, outIndices !== undefined ? { outIndices } : {});
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/**
 * `createModel(name, { pretrained: true | tag | hub id })`: the registered default tag (or the one named)
 * from the hub (`fromPretrained`, cached), with the architecture overrides, a new `numClasses` classifier,
 * or the feature maps (`featuresOnly`).
 */
async function createPretrainedModel(
  name: string,
  opts: CreateModelOptions & PretrainedCreateOptions & { featuresOnly?: boolean; outIndices?: FeaturesOnlyOptions['outIndices'] },
): Promise<ConvNeXtV2 | FeatureModel<ConvNeXtV2>> {
  const { featuresOnly, outIndices, ...rest } = opts;
  const model = await createPretrained<ConvNeXtV2>(name, featuresOnly ? { ...rest, numClasses: 0 } : rest);
  if (!featuresOnly) return model;
  try {
    return new FeatureModel(model, model.featureInfo, outIndices !== undefined ? { outIndices } : {});
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/** `createModel`'s featuresOnly options. */
export interface FeaturesOnly extends FeaturesOnlyOptions {
  featuresOnly: true;
}

// Register into the one model registry where the model class is defined, so that any use of the package
// (even a bundle that keeps only `ConvNeXtV2`) registers the family: no side-effect-only module to drop.
registerConvNeXtV2();
