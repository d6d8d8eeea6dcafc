/**
 * The ConvNeXt V2 classifier (timm module tree and names), its constructors and weight I/O.
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  Module,
  ModuleList,
  Rng,
  StateDictError,
  readSafetensors,
  stateDictFromSafetensors,
  saveSafetensorsBytes,
  writeFileAtomic,
  type LoadStateDictOptions,
  type LoadStateDictResult,
  type SafetensorsFile,
  type StateDict,
  type StateDictEntry,
  type WeightsSource,
} from '@softbias/tensor-ops';
import { assertImageBatch } from '@softbias/tensor-ops';
import { ConvNeXtV2Head, ConvNeXtV2Stage, ConvNeXtV2Stem } from './blocks.js';
import {
  MODELS,
  parameterShapes,
  resolveConfig,
  type ConvNeXtV2Config,
  type ConvNeXtV2Overrides,
  type PretrainedConfig,
} from './config.js';
import { inferConfig, toTimmStateDict, type KeyNaming } from './checkpoint.js';
import { preprocess, type ImageInput, type PreprocessOptions } from './preprocess.js';

/** Smallest input side: the total stride is 32 (4 · 2 · 2 · 2) and every stage needs at least one row. */
export const MIN_INPUT_SIZE = 32;

export interface CreateModelOptions extends ConvNeXtV2Overrides {
  /** Seed of the initialisation (and drop-path) random numbers. Default 0. */
  seed?: number;
}

export interface LoadWeightsOptions {
  /** Leave the classifier (`head.fc.*`) as it is: for fine-tuning with another number of classes. */
  skipHead?: boolean;
  /** Throw on missing or unexpected keys (default true). Mis-shaped keys always throw. */
  strict?: boolean;
}

export interface LoadWeightsResult extends LoadStateDictResult {
  /** The key naming found in the checkpoint. */
  naming: KeyNaming;
}

export interface IntermediatesOptions {
  /** Stage indices (negative counts from the end), or n = the last n stages. Default: all four. */
  indices?: number | readonly number[];
  /** Stop after the last requested stage (no `features`). */
  stopEarly?: boolean;
  /** Return only the intermediates. */
  intermediatesOnly?: boolean;
}

export interface IntermediatesResult {
  /** Requested stage outputs, NHWC, in stage order. */
  intermediates: tf.Tensor4D[];
  /** Output of the last stage (what `forwardFeatures` returns), unless stopped early / intermediates only. */
  features: tf.Tensor4D | null;
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

async function readStateDict(source: WeightsInput): Promise<{ sd: Map<string, StateDictEntry>; file: SafetensorsFile | null }> {
  if (isStateDict(source)) return { sd: source instanceof Map ? source : new Map(Object.entries(source)), file: null };
  const file =
    typeof (source as SafetensorsFile).getFloat32 === 'function'
      ? (source as SafetensorsFile)
      : await readSafetensors(source as WeightsSource);
  return { sd: stateDictFromSafetensors(file), file };
}

/**
 * ConvNeXt V2 (timm `ConvNeXt` with `use_grn=True, ls_init_value=None`): `stem`, `stages.0…3`, `head`.
 * Channels-last throughout: inputs [B, H, W, C] float32 with H, W ≥ 32, any size (odd sizes floor at each
 * stride-2 step, as PyTorch does).
 */
export class ConvNeXtV2 extends Module {
  readonly config: ConvNeXtV2Config;
  readonly pretrained: PretrainedConfig | null;
  readonly stem: ConvNeXtV2Stem;
  readonly stages: ModuleList<ConvNeXtV2Stage>;
  readonly head: ConvNeXtV2Head;
  private readonly rng: Rng;

  constructor(config: ConvNeXtV2Config, opts: { seed?: number } = {}) {
    super();
    this.config = { ...config, depths: [...config.depths], dims: [...config.dims] };
    this.pretrained = MODELS.find((m) => m.name === config.name)?.pretrained ?? null;
    this.rng = new Rng(opts.seed ?? 0);
    const { depths, dims } = config;
    this.stem = this.registerModule('stem', new ConvNeXtV2Stem(config.inChans, dims[0], this.rng));
    const total = depths.reduce((a, b) => a + b, 0);
    const rates = Array.from({ length: total }, (_, i) => (total > 1 ? (config.dropPathRate * i) / (total - 1) : 0));
    const stages: ConvNeXtV2Stage[] = [];
    let k = 0;
    for (let i = 0; i < 4; i++) {
      stages.push(
        new ConvNeXtV2Stage(i === 0 ? dims[0] : dims[i - 1]!, dims[i]!, depths[i]!, {
          downsample: i > 0,
          dropPathRates: rates.slice(k, k + depths[i]!),
          rng: this.rng,
        }),
      );
      k += depths[i]!;
    }
    this.stages = this.registerModule('stages', new ModuleList(stages));
    this.head = this.registerModule('head', new ConvNeXtV2Head(dims[3], config.numClasses, this.rng, config.headInitScale));
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

  /** Runs the stem and stages 0…last; stage outputs for which `keep(i)` is true are kept and returned. */
  private runStages(x: tf.Tensor, last: number, keep: (i: number) => boolean): { out: tf.Tensor; kept: tf.Tensor[] } {
    this.checkInput(x);
    const xin = x.dtype === 'float32' ? x : tf.cast(x, 'float32');
    let y = this.stem.forward(xin);
    if (xin !== x) xin.dispose();
    const kept: tf.Tensor[] = [];
    for (let i = 0; i <= last; i++) {
      const next = this.stages.at(i).forward(y);
      if (!kept.includes(y)) y.dispose();
      y = next;
      if (keep(i)) kept.push(y);
    }
    return { out: y, kept };
  }

  /** Last stage output [B, H/32, W/32, dims[3]] (floored per stride-2 step). */
  forwardFeatures(x: tf.Tensor): tf.Tensor4D {
    assertImageBatch(x, { name: 'ConvNeXtV2.forwardFeatures', model: this });
    return this.runStages(x, 3, () => false).out as tf.Tensor4D;
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

  /** Per-stage feature maps (NHWC) and, unless asked not to, the final features. */
  forwardIntermediates(x: tf.Tensor, opts: IntermediatesOptions = {}): IntermediatesResult {
    assertImageBatch(x, { name: 'ConvNeXtV2.forwardIntermediates', model: this });
    const n = 4;
    const idx = opts.indices ?? n;
    const take =
      typeof idx === 'number'
        ? Array.from({ length: idx }, (_, i) => n - idx + i)
        : idx.map((i) => (i < 0 ? n + i : i));
    if ((typeof idx === 'number' && (idx < 1 || idx > n || !Number.isInteger(idx))) || take.some((i) => !(i >= 0 && i < n))) {
      throw new Error(`forwardIntermediates: indices must be stage numbers in [-4, 3] or a count 1…4, got ${JSON.stringify(idx)}`);
    }
    const wanted = new Set(take);
    const last = opts.stopEarly || opts.intermediatesOnly ? Math.max(...take) : n - 1;
    const { out, kept } = this.runStages(x, last, (i) => wanted.has(i));
    let features: tf.Tensor4D | null = out as tf.Tensor4D;
    if (opts.intermediatesOnly || opts.stopEarly) {
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

  /** Preprocess images for this model (its pretrained config's size, crop and normalisation). */
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
   * Load weights from safetensors (bytes, a Node path, a URL, a `Response`/`Blob`, a parsed file) or a state
   * dict. Strict by default; `skipHead` leaves `head.fc.*` untouched (and ignores it in the checkpoint).
   */
  async loadWeights(source: WeightsInput, opts: LoadWeightsOptions = {}): Promise<LoadWeightsResult> {
    const { sd } = await readStateDict(source);
    return this.loadStateDict(sd, { strict: opts.strict ?? true, skip: opts.skipHead ? ['head.fc.'] : [] });
  }

  /**
   * The weights as safetensors bytes with timm names and shapes (timm loads them strictly), the config in
   * `__metadata__.config`. With a Node path, also written there (atomically).
   */
  async saveWeights(path?: string): Promise<Uint8Array> {
    const bytes = await saveSafetensorsBytes(this, { config: { architecture: 'convnextv2', ...this.config } });
    if (path !== undefined) await writeFileAtomic(path, bytes);
    return bytes;
  }
}

/** Build a registered ConvNeXt V2 (`listModels()`), optionally changing its architecture. */
export function createModel(name: string, overrides: CreateModelOptions = {}): ConvNeXtV2 {
  const { seed, ...arch } = overrides;
  return new ConvNeXtV2(resolveConfig(name, arch), { seed: seed ?? 0 });
}

/**
 * Rebuild a model from a checkpoint and load it strictly: the architecture comes from the file's
 * `__metadata__.config` (written by `saveWeights`), or else is read off the tensor shapes (any timm or
 * official ConvNeXt V2 checkpoint).
 */
export async function loadModel(source: WeightsInput, opts: { seed?: number } = {}): Promise<ConvNeXtV2> {
  const { sd, file } = await readStateDict(source);
  let cfg: ConvNeXtV2Config;
  const meta = file?.metadata['config'];
  if (meta) {
    const c = JSON.parse(meta) as Partial<ConvNeXtV2Config> & { architecture?: string };
    if (c.architecture !== undefined && c.architecture !== 'convnextv2') {
      throw new Error(`loadModel: this file holds a '${c.architecture}' model, not ConvNeXt V2`);
    }
    const name = c.name && MODELS.some((m) => m.name === c.name) ? c.name : 'convnextv2_custom';
    cfg = resolveConfig(name, c);
  } else {
    const norm = toTimmStateDict(sd, new Map());
    const inferred = inferConfig(norm.sd);
    cfg = resolveConfig(inferred.name, inferred);
  }
  const model = new ConvNeXtV2(cfg, opts);
  try {
    model.loadStateDict(sd);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

