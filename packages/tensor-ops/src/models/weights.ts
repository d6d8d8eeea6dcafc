/**
 * One weights reader and one writer for every model family.
 *
 * The writer's one metadata rule: `__metadata__ = { format: 'pt', arch, family, config }` — `arch` the
 * registered model name (or the family for a custom architecture), `family` the model family, `config` the
 * resolved architecture as JSON. The reader also accepts the older forms: `arch` + `library` (ConViT files)
 * and `config.architecture` (ConvNeXt V2 / FCMAE files), and files with no metadata at all (timm / official
 * checkpoints: the family is told from the tensor names by the registry).
 *
 * Before a model is allocated, `checkWeights` compares the file's tensors (names, shapes, dtypes) with the
 * architecture's expected shapes and `checkArchitecture` bounds the configuration, so a tiny file whose
 * config describes a giant model fails with a clear error instead of exhausting memory.
 */
import * as tf from '@tensorflow/tfjs-core';
import { type Module, type StateDict, type StateDictEntry, entryDefect } from '../module.js';
import {
  SafetensorsFile,
  type SerializeOptions,
  type WeightsSource,
  readSafetensors,
  writeFileAtomic,
} from '../safetensors.js';
import { saveSafetensorsBytes } from '../weights.js';
import { ownLabelNames } from './labels.js';
import { explicitPretrainedConfig, pretrainedConfigToTimm } from './pretrained.js';

/** Anything a model's weights can be read from. */
export type WeightsInput = WeightsSource | SafetensorsFile | WeightsFile | StateDict;

/** A weights file (or state dict) that cannot be used as asked: names what is wrong, and where. */
export class WeightsError extends Error {
  constructor(
    message: string,
    readonly problems: readonly string[] = [],
  ) {
    super(message);
    this.name = 'WeightsError';
  }
}

const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16', 'F64']);

export interface ReadWeightsOptions {
  /** Load NaN / ±Infinity values. Default false: `stateDict()` throws naming the tensors. */
  allowNonFinite?: boolean;
  /** Convert integer / BOOL tensors to float32. Default false: `stateDict()` throws naming them. */
  allowIntegerCast?: boolean;
  /** Where the weights came from, for error messages (default: the path / URL when there is one). */
  label?: string;
}

/** Tensor names, shapes and dtypes, plus the metadata rule, of a weights file or state dict. */
export class WeightsFile {
  /** `__metadata__` (empty for a state dict). */
  readonly metadata: Readonly<Record<string, string>>;
  /** Registered model name (or family) the file names: `arch`, else the old `config.name`. */
  readonly arch: string | undefined;
  /** Model family the file names: `family`, else the old `config.architecture`. */
  readonly family: string | undefined;
  /** The old `library` field (`@softbias/models-convit`), when present. */
  readonly library: string | undefined;
  /** `__metadata__.config` parsed (an object), or undefined when absent. */
  readonly config: Readonly<Record<string, unknown>> | undefined;
  /** Whether `arch` / `family` / `config.architecture` came from a softbias writer (not only tensor names). */
  readonly hasSoftbiasMetadata: boolean;
  private readonly entries: Map<string, { shape: number[]; dtype: string }>;

  constructor(
    /** The parsed safetensors file, or null when made from a state dict. */
    readonly file: SafetensorsFile | null,
    private readonly sd: Map<string, StateDictEntry> | null,
    readonly options: ReadWeightsOptions = {},
  ) {
    this.entries = new Map();
    if (file) {
      for (const n of file.names()) {
        const e = file.info(n);
        this.entries.set(n, { shape: [...e.shape], dtype: e.dtype });
      }
      this.metadata = file.metadata;
    } else {
      for (const [n, e] of sd!) {
        const shape = e instanceof tf.Tensor ? e.shape : Array.isArray(e?.shape) ? [...e.shape] : [];
        this.entries.set(n, { shape, dtype: e instanceof tf.Tensor ? (e.dtype === 'float32' ? 'F32' : e.dtype) : 'F32' });
      }
      this.metadata = {};
    }
    const raw = this.metadata['config'];
    let config: Record<string, unknown> | undefined;
    if (raw !== undefined) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(raw);
      } catch {
        throw new WeightsError(`${this.label}: __metadata__.config is not valid JSON`);
      }
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
        throw new WeightsError(`${this.label}: __metadata__.config is not a JSON object`);
      }
      config = parsed as Record<string, unknown>;
    }
    this.config = config;
    const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);
    this.family = str(this.metadata['family']) ?? str(config?.['architecture']);
    this.arch = str(this.metadata['arch']) ?? str(config?.['name']);
    this.library = str(this.metadata['library']);
    this.hasSoftbiasMetadata =
      str(this.metadata['arch']) !== undefined || this.library !== undefined || str(config?.['architecture']) !== undefined;
  }

  /** For messages: where the weights came from. */
  get label(): string {
    return this.options.label ?? 'weights';
  }

  /** Tensor names in file order. */
  names(): string[] {
    return [...this.entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** The stored (PyTorch) shape of a tensor, or undefined. */
  shape(name: string): number[] | undefined {
    const e = this.entries.get(name);
    return e ? [...e.shape] : undefined;
  }

  /** The stored dtype of a tensor (safetensors names: F32, I64, BOOL, …), or undefined. */
  dtype(name: string): string | undefined {
    return this.entries.get(name)?.dtype;
  }

  /** Every tensor's shape, keyed by name. */
  shapes(): Map<string, number[]> {
    return new Map([...this.entries].map(([k, e]) => [k, [...e.shape]]));
  }

  /**
   * The tensors to load (host float32 data for files; the entries themselves for a state dict), checked:
   * integer / BOOL tensors and NaN / ±Infinity are refused (one error naming every offending tensor)
   * unless `allowIntegerCast` / `allowNonFinite`. `names` restricts it to some tensors.
   */
  stateDict(opts: ReadWeightsOptions & { names?: Iterable<string> } = {}): Map<string, StateDictEntry> {
    const allowCast = opts.allowIntegerCast ?? this.options.allowIntegerCast ?? false;
    const allowNonFinite = opts.allowNonFinite ?? this.options.allowNonFinite ?? false;
    const names = opts.names ? [...opts.names] : this.names();
    if (!allowCast) {
      const ints = names.filter((n) => this.entries.has(n) && !FLOAT_DTYPES.has(this.entries.get(n)!.dtype));
      if (ints.length) {
        const list = ints.slice(0, 10).map((n) => `'${n}' (${this.entries.get(n)!.dtype})`).join(', ');
        throw new WeightsError(
          `${this.label}: ${ints.length} tensor(s) are not floating point where float32 weights are expected: ${list}` +
            `${ints.length > 10 ? ', …' : ''}; pass { allowIntegerCast: true } to convert them`,
          ints,
        );
      }
    }
    const out = new Map<string, StateDictEntry>();
    const problems: string[] = [];
    for (const n of names) {
      if (!this.entries.has(n)) continue;
      const e: StateDictEntry = this.file ? this.file.getFloat32(n) : this.sd!.get(n)!;
      const defect = entryDefect(e, allowNonFinite);
      if (defect) problems.push(`'${n}' ${defect}`);
      out.set(n, e);
    }
    if (problems.length) {
      throw new WeightsError(`${this.label}: invalid tensor(s):\n  ${problems.join('\n  ')}`, problems);
    }
    return out;
  }
}

function isStateDict(s: unknown): s is StateDict {
  if (s instanceof Map) return true;
  if (typeof s !== 'object' || s === null) return false;
  if (s instanceof Uint8Array || s instanceof ArrayBuffer || s instanceof URL || s instanceof SafetensorsFile) return false;
  if (typeof (s as SafetensorsFile).getFloat32 === 'function') return false;
  if (typeof Response !== 'undefined' && s instanceof Response) return false;
  if (typeof Blob !== 'undefined' && s instanceof Blob) return false;
  return true;
}

/**
 * Read weights from any source: safetensors bytes, a Node path, a `file:` / `http(s):` URL, a `Response` /
 * `Blob`, a parsed `SafetensorsFile`, a `WeightsFile` (returned as is), or a state dict (`Map` / record of
 * tensors or `{ data, shape }`). Reads the header and metadata only; tensors are decoded by `stateDict()`.
 */
export async function readWeights(source: WeightsInput, opts: ReadWeightsOptions = {}): Promise<WeightsFile> {
  if (source instanceof WeightsFile) return source;
  if (source === null || source === undefined) throw new WeightsError('readWeights: no weights given (null)');
  const label = opts.label ?? (typeof source === 'string' ? source : source instanceof URL ? source.href : undefined);
  const o = label !== undefined ? { ...opts, label } : opts;
  if (isStateDict(source)) return new WeightsFile(null, source instanceof Map ? source : new Map(Object.entries(source)), o);
  const file =
    source instanceof SafetensorsFile || typeof (source as unknown as SafetensorsFile).getFloat32 === 'function'
      ? (source as SafetensorsFile)
      : await readSafetensors(source as WeightsSource);
  return new WeightsFile(file, null, o);
}

export interface WriteWeightsOptions {
  /** Registered model name (or the family, for a custom architecture). */
  arch: string;
  /** Model family (registry family name). */
  family: string;
  /** The resolved architecture, stored as JSON in `__metadata__.config`. */
  config: unknown;
  /**
   * More string metadata; cannot replace format / arch / family / config. `labels` (a JSON list of class names)
   * defaults to the model's own names (`ownLabelNames`) when it has them.
   */
  metadata?: Record<string, string>;
  /**
   * Stored float dtype: 'float32' (default), 'float16' or 'bfloat16' (half the file; `readWeights` decodes
   * them to float32), or the safetensors names 'F32' / 'F16' / 'BF16'.
   */
  dtype?: WeightsDtype;
  /** Node: also write the bytes to this path, atomically. */
  path?: string;
}

/** The float dtypes weights can be stored in (tfjs-style names, or the safetensors ones). */
export type WeightsDtype = 'float32' | 'float16' | 'bfloat16' | 'F32' | 'F16' | 'BF16';

const STORED: Record<string, NonNullable<SerializeOptions['dtype']>> = {
  float32: 'F32', float16: 'F16', bfloat16: 'BF16', F32: 'F32', F16: 'F16', BF16: 'BF16',
};

/** The safetensors dtype of a `WeightsDtype`; throws a `WeightsError` listing the valid ones. */
export function storedDtype(dtype: WeightsDtype): NonNullable<SerializeOptions['dtype']> {
  const d = typeof dtype === 'string' && Object.prototype.hasOwnProperty.call(STORED, dtype) ? STORED[dtype] : undefined;
  if (!d) throw new WeightsError(`writeWeights: dtype must be 'float32', 'float16' or 'bfloat16', got ${JSON.stringify(dtype)}`);
  return d;
}

/** A module's weights as safetensors bytes under the one metadata rule (timm names; timm loads them). */
export async function writeWeights(module: Module, opts: WriteWeightsOptions): Promise<Uint8Array> {
  if (typeof opts.arch !== 'string' || opts.arch === '') throw new WeightsError('writeWeights: arch must be a non-empty string');
  if (typeof opts.family !== 'string' || opts.family === '') throw new WeightsError('writeWeights: family must be a non-empty string');
  const metadata: Record<string, string> = { ...(opts.metadata ?? {}), format: 'pt', arch: opts.arch, family: opts.family };
  // The model's own class names travel with its weights (read back by `labelNamesOf` / `models.fromFile`).
  const labels = ownLabelNames(module);
  if (metadata['labels'] === undefined && labels !== undefined) metadata['labels'] = JSON.stringify(labels);
  // The preprocessing it was trained with, when it has its own (setPretrainedConfig, fromPretrained, a loaded file's).
  const pc = explicitPretrainedConfig(module);
  if (metadata['pretrained_cfg'] === undefined && pc !== undefined) metadata['pretrained_cfg'] = JSON.stringify(pretrainedConfigToTimm(pc));
  const bytes = await saveSafetensorsBytes(module, {
    metadata,
    config: opts.config,
    ...(opts.dtype !== undefined ? { dtype: storedDtype(opts.dtype) } : {}),
  });
  if (opts.path !== undefined) await writeFileAtomic(opts.path, bytes);
  return bytes;
}

// ------------------------------------------------------------------------------------- before allocating

/** Bounds on a configuration read from a file (or given by a user) before anything is allocated. */
export interface ArchitectureLimits {
  /** Largest input side in pixels. */
  maxImageSize: number;
  /** Most blocks in total. */
  maxDepth: number;
  /** Widest layer (channels / embedding width). */
  maxWidth: number;
  /** Most parameters (scalars). */
  maxParameters: number;
}

export const DEFAULT_ARCHITECTURE_LIMITS: Readonly<ArchitectureLimits> = {
  maxImageSize: 8192,
  maxDepth: 1024,
  maxWidth: 65536,
  maxParameters: 4e9,
};

/** Sizes of an architecture to bound (any may be omitted). */
export interface ArchitectureSizes {
  imageSize?: number | readonly number[];
  depth?: number;
  width?: number | readonly number[];
}

/** Throws a `WeightsError` naming the setting when a size is not a positive integer or exceeds its bound. */
export function checkArchitecture(what: string, sizes: ArchitectureSizes, limits: Partial<ArchitectureLimits> = {}): void {
  const lim = { ...DEFAULT_ARCHITECTURE_LIMITS, ...limits };
  const list = (v: number | readonly number[] | undefined) => (v === undefined ? [] : typeof v === 'number' ? [v] : [...v]);
  const check = (name: string, values: number[], max: number, key: keyof ArchitectureLimits) => {
    for (const v of values) {
      if (!Number.isSafeInteger(v) || v < 1) throw new WeightsError(`${what}: ${name} must be positive integers, got ${JSON.stringify(values)}`);
      if (v > max) {
        throw new WeightsError(`${what}: ${name} ${v} exceeds the limit of ${max} (${key}); is the configuration right?`);
      }
    }
  };
  check('image size', list(sizes.imageSize), lim.maxImageSize, 'maxImageSize');
  check('depth', list(sizes.depth), lim.maxDepth, 'maxDepth');
  check('width', list(sizes.width), lim.maxWidth, 'maxWidth');
}

export interface CheckWeightsOptions {
  /** Report missing and unexpected tensors (default true); mis-shaped ones are always errors. */
  strict?: boolean;
  /** Names (or prefixes ending in '.') the model will not load from the file (e.g. the head). */
  skip?: readonly string[];
  /** Accept integer / BOOL tensors (they will be converted). Default false. */
  allowIntegerCast?: boolean;
  /** Shapes that differ only in a way the family converts (e.g. `(out, in)` vs `(out, in, 1, 1)`). */
  equivalent?: (name: string, expected: readonly number[], got: readonly number[]) => boolean;
  /** Bound the total parameter count (default `DEFAULT_ARCHITECTURE_LIMITS.maxParameters`). */
  maxParameters?: number;
}

/**
 * Compare a file's tensors with what an architecture expects (name → PyTorch shape), without allocating
 * anything: one `WeightsError` lists every missing, unexpected, mis-shaped and non-float tensor.
 */
export function checkWeights(
  what: string,
  w: WeightsFile,
  expected: Iterable<readonly [string, readonly number[]]>,
  opts: CheckWeightsOptions = {},
): void {
  const strict = opts.strict ?? true;
  const skip = opts.skip ?? [];
  const isSkipped = (k: string) => skip.some((s) => (s.endsWith('.') ? k.startsWith(s) : k === s));
  const maxParams = opts.maxParameters ?? DEFAULT_ARCHITECTURE_LIMITS.maxParameters;
  const want = new Map<string, readonly number[]>();
  let count = 0;
  for (const [k, s] of expected) {
    want.set(k, s);
    count += s.reduce((a, b) => a * b, 1);
    if (count > maxParams) throw new WeightsError(`${what}: the architecture has more than ${maxParams} parameters (maxParameters)`);
  }
  const problems: string[] = [];
  const missing = [...want.keys()].filter((k) => !isSkipped(k) && !w.has(k));
  const unexpected = w.names().filter((k) => !isSkipped(k) && !want.has(k));
  if (strict && missing.length) problems.push(`missing tensor(s) (${missing.length}): ${quote(missing)}`);
  if (strict && unexpected.length) problems.push(`unexpected tensor(s) (${unexpected.length}): ${quote(unexpected)}`);
  for (const [k, s] of want) {
    if (isSkipped(k) || !w.has(k)) continue;
    const got = w.shape(k)!;
    if (!tf.util.arraysEqual(got, [...s]) && !opts.equivalent?.(k, s, got)) {
      problems.push(`size mismatch for '${k}': the file has [${got}], the architecture expects [${s}]`);
    }
    const dt = w.dtype(k)!;
    if (!FLOAT_DTYPES.has(dt) && !opts.allowIntegerCast) {
      problems.push(`'${k}' is ${dt} where float32 weights are expected (pass { allowIntegerCast: true } to convert)`);
    }
  }
  if (problems.length) {
    throw new WeightsError(`${w.label} does not fit ${what}:\n  ${problems.join('\n  ')}`, problems);
  }
}

function quote(keys: string[]): string {
  const shown = keys.slice(0, 12).map((k) => `'${k}'`).join(', ');
  return keys.length > 12 ? `${shown}, … (${keys.length - 12} more)` : shown;
}
