/**
 * Training checkpoints as one safetensors file, written atomically (temporary file, fsync, rename):
 *
 * - tensors: the model's parameters under their own (PyTorch) names and layouts; the optimizer moments as
 *   `optimizer.exp_avg.<name>` / `optimizer.exp_avg_sq.<name>` (PyTorch layout, like the weights); the EMA as
 *   `ema.<name>`;
 * - `__metadata__`: `format` = 'softbias-checkpoint' and `softbias.checkpoint` = JSON with the step, the
 *   optimizer's hyper-parameters and per-parameter step counts, the EMA's decay and update count, every random
 *   generator's state (the model's own — drop path, dropout — found by walking the module tree, plus any you
 *   pass), the sampler state and your extra fields.
 *
 * Everything is float32 or exact JSON numbers, so a resumed run continues bit for bit.
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  type Module,
  Rng,
  crc32,
  fromTorch,
  toTorch,
  serializeSafetensors,
  parseSafetensors,
  readBytes,
  writeFileAtomic,
  type SafetensorsFile,
  type WeightsSource,
  type WriteTensor,
} from '@softbias/tensor-ops';
import type { AdamW } from './adamw.js';
import type { ModelEma } from './ema.js';

export const CHECKPOINT_FORMAT = 'softbias-checkpoint';
const META_KEY = 'softbias.checkpoint';

export interface TrainingState {
  model: Module;
  optimizer?: AdamW;
  ema?: ModelEma;
  /** Updates done. */
  step: number;
  /** Extra generators to save besides the model's own (e.g. the mixup generator), by a stable name. */
  rngs?: Record<string, Rng>;
  /** The data sampler's state (JSON). */
  sampler?: unknown;
  /** Anything else (JSON): history, config… */
  extra?: Record<string, unknown>;
  /** The run's settings (JSON), compared by `fit` on resume. */
  settings?: Record<string, unknown>;
}

export interface CheckpointMeta {
  version: 1;
  step: number;
  optimizer?: { config: ReturnType<AdamW['config']>; steps: Record<string, number> };
  ema?: { decay: number; warmup: boolean; updates: number };
  rngs: Record<string, (number | null)[]>;
  sampler?: unknown;
  extra?: Record<string, unknown>;
  /** CRC-32 of the data section (every tensor's stored bytes in file order); absent in older checkpoints. */
  dataCrc32?: number;
  /** The run's settings (`fit` stores epochs, optimizer, schedule, mixup, EMA, parameter shapes…); absent in older checkpoints. */
  settings?: Record<string, unknown>;
}

/** A checkpoint that cannot be read, verified or restored; `path` names the file (or source). */
export class CheckpointError extends Error {
  constructor(
    readonly path: string,
    message: string,
    cause?: unknown,
    /** What is wrong, without the file's name. */
    readonly detail: string = message,
  ) {
    super(message, cause !== undefined ? { cause } : undefined);
    this.name = 'CheckpointError';
  }
}

/** Every `Rng` held by a module of the tree (DropPath, Dropout, …), keyed '<module path>#<field>'. */
export function moduleRngs(model: Module): Map<string, Rng> {
  const out = new Map<string, Rng>();
  const seen = new Set<Rng>();
  for (const [path, m] of model.namedModules()) {
    for (const [field, v] of Object.entries(m)) {
      if (v instanceof Rng && !seen.has(v)) {
        seen.add(v);
        out.set(`${path}#${field}`, v);
      }
    }
  }
  return out;
}

async function host(t: tf.Tensor): Promise<WriteTensor> {
  return { data: (await t.data()) as Float32Array, shape: t.shape };
}

const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** CRC-32 of the tensors' bytes as safetensors stores them (float32 little-endian, in order): the data section. */
function dataCrc(tensors: readonly [string, WriteTensor][]): number {
  let c = 0;
  for (const [, t] of tensors) {
    let bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    if (!littleEndian) {
      bytes = new Uint8Array(t.data.byteLength);
      const v = new DataView(bytes.buffer);
      for (let i = 0; i < t.data.length; i++) v.setFloat32(4 * i, t.data[i]!, true);
    }
    c = crc32(bytes, c);
  }
  return c;
}

/** Serialise a training state to safetensors bytes. */
export async function checkpointBytes(state: TrainingState): Promise<Uint8Array> {
  if (!(Number.isSafeInteger(state.step) && state.step >= 0)) throw new RangeError(`checkpoint: step must be a non-negative integer, got ${state.step}`);
  const tensors: [string, WriteTensor][] = [];
  const layouts = new Map(state.model.namedParameters().map(([n, p]) => [n, p.layout]));
  const torchHost = async (name: string, t: tf.Tensor) => {
    const tt = toTorch(layouts.get(name) ?? 'plain', t);
    try {
      return await host(tt);
    } finally {
      if (tt !== t) tt.dispose();
    }
  };
  for (const [name, p] of state.model.namedParameters()) tensors.push([name, await torchHost(name, p.variable)]);
  const meta: CheckpointMeta = { version: 1, step: state.step, rngs: {} };
  if (state.optimizer) {
    const steps: Record<string, number> = {};
    for (const name of state.optimizer.slotNames()) {
      const s = state.optimizer.slot(name)!;
      steps[name] = s.step;
      tensors.push([`optimizer.exp_avg.${name}`, await torchHost(name, s.m)]);
      tensors.push([`optimizer.exp_avg_sq.${name}`, await torchHost(name, s.v)]);
    }
    meta.optimizer = { config: state.optimizer.config(), steps };
  }
  if (state.ema) {
    for (const [name, t] of state.ema.shadow) tensors.push([`ema.${name}`, await torchHost(name, t)]);
    meta.ema = { decay: state.ema.decay, warmup: state.ema.warmup, updates: state.ema.updates };
  }
  const rngs = new Map([...moduleRngs(state.model), ...Object.entries(state.rngs ?? {}).map(([k, r]) => [`extra:${k}`, r] as const)]);
  // Canonical form: the four state words as unsigned integers, the cached normal (or null).
  for (const [k, r] of rngs) meta.rngs[k] = r.getState().map((v, i) => (i < 4 ? v >>> 0 : Number.isNaN(v) ? null : v));
  if (state.sampler !== undefined) meta.sampler = state.sampler;
  if (state.extra !== undefined) meta.extra = state.extra;
  if (state.settings !== undefined) meta.settings = state.settings;
  meta.dataCrc32 = dataCrc(tensors);
  return serializeSafetensors(tensors, { metadata: { format: CHECKPOINT_FORMAT, [META_KEY]: JSON.stringify(meta) } });
}

/**
 * Save a training state to a Node path atomically; returns the bytes written. A symbolic link is written
 * through (its target replaced); temporary files left by an interrupted save are removed.
 */
export async function saveCheckpoint(path: string, state: TrainingState): Promise<Uint8Array> {
  const bytes = await checkpointBytes(state);
  try {
    await writeFileAtomic(path, bytes);
  } catch (e) {
    throw new CheckpointError(path, `checkpoint ${path}: cannot save: ${causeMessage(e)}`, e);
  }
  return bytes;
}

type Fail = (msg: string, cause?: unknown) => never;

function failer(name: string | undefined): Fail {
  return (msg, cause) => {
    throw new CheckpointError(name ?? '(bytes)', name ? `checkpoint ${name}: ${msg}` : `checkpoint: ${msg}`, cause, msg);
  };
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Read and validate the metadata of a checkpoint (`name`, e.g. its path, goes into the errors). Throws a
 * `CheckpointError` if the file is not a softbias checkpoint or its metadata is malformed (bad JSON, a negative
 * or fractional step, malformed optimizer / EMA / generator state).
 */
export function checkpointMeta(file: SafetensorsFile, name?: string): CheckpointMeta {
  const fail: Fail = failer(name);
  const raw = file.metadata[META_KEY];
  if (file.metadata['format'] !== CHECKPOINT_FORMAT || raw === undefined) {
    fail(`not a softbias training checkpoint (no '${META_KEY}' metadata); for weights only, use loadWeights / loadSafetensorsInto`);
  }
  let meta: CheckpointMeta;
  try {
    meta = JSON.parse(raw) as CheckpointMeta;
  } catch (e) {
    return fail(`the '${META_KEY}' metadata is not valid JSON (${(e as Error).message}): the file is corrupted`, e);
  }
  if (!isObject(meta)) fail(`the '${META_KEY}' metadata is not a JSON object`);
  if (meta.version !== 1) fail(`checkpoint version ${JSON.stringify(meta.version)} is not supported (expected 1)`);
  if (!isCount(meta.step)) fail(`step must be a non-negative integer, got ${JSON.stringify(meta.step)}`);
  if (!isObject(meta.rngs)) fail(`'rngs' must be an object`);
  for (const [k, st] of Object.entries(meta.rngs)) {
    const ok = Array.isArray(st) && st.length === 5 && st.slice(0, 4).every((v) => isCount(v) && v <= 0xffffffff) && (st[4] === null || Number.isFinite(st[4]));
    if (!ok) fail(`random generator '${k}' has a malformed state ${JSON.stringify(st)}`);
  }
  if (meta.optimizer !== undefined) {
    if (!isObject(meta.optimizer) || !isObject(meta.optimizer.steps)) fail(`'optimizer' must hold a 'steps' object`);
    for (const [k, v] of Object.entries(meta.optimizer.steps)) if (!isCount(v)) fail(`optimizer step of '${k}' must be a non-negative integer, got ${JSON.stringify(v)}`);
  }
  if (meta.ema !== undefined) {
    if (!isObject(meta.ema) || !isCount(meta.ema.updates)) fail(`'ema.updates' must be a non-negative integer, got ${JSON.stringify((meta.ema as { updates?: unknown } | null)?.updates)}`);
  }
  if (meta.settings !== undefined && !isObject(meta.settings)) fail(`'settings' must be an object`);
  if (meta.dataCrc32 !== undefined && !(isCount(meta.dataCrc32) && meta.dataCrc32 <= 0xffffffff)) fail(`'dataCrc32' must be a 32-bit unsigned integer, got ${JSON.stringify(meta.dataCrc32)}`);
  return meta;
}

/** Check the stored CRC-32 of the tensor data (checkpoints written before it existed have none: skipped). */
export function verifyCheckpointData(file: SafetensorsFile, meta: CheckpointMeta, name?: string): void {
  if (meta.dataCrc32 === undefined) return;
  const got = crc32(file.dataSection());
  if (got !== meta.dataCrc32) {
    failer(name)(`tensor data checksum mismatch (stored CRC-32 ${hex(meta.dataCrc32)}, computed ${hex(got)}): the file is corrupted`);
  }
}

const hex = (v: number) => `0x${v.toString(16).padStart(8, '0')}`;

function sourceName(source: WeightsSource | SafetensorsFile): string | undefined {
  if (typeof source === 'string') return source;
  if (typeof URL !== 'undefined' && source instanceof URL) return source.href;
  return undefined;
}

/** Read and parse a checkpoint source; every failure is a `CheckpointError` naming it. */
async function openCheckpoint(source: WeightsSource | SafetensorsFile, name: string | undefined): Promise<SafetensorsFile> {
  if (isFile(source)) return source;
  const fail: Fail = failer(name);
  let bytes: Uint8Array;
  try {
    bytes = await readBytes(source);
  } catch (e) {
    return fail(`cannot read: ${causeMessage(e)}`, e);
  }
  try {
    return parseSafetensors(bytes);
  } catch (e) {
    return fail(causeMessage(e), e);
  }
}

interface HostTensor {
  data: Float32Array;
  shape: number[];
}

/**
 * Restore a checkpoint into `state`'s model, optimizer, EMA and generators (strict: every parameter, moment
 * and generator must be there, with the model's shapes, finite, and the tensor data must match its stored
 * checksum). Everything is read and checked before anything is changed: a failed load leaves the model,
 * optimizer, EMA and generators as they were. Returns the metadata (step, sampler, extra) for the caller to
 * continue from. Errors are `CheckpointError`s naming the file (`opts.name`, or the path / URL given).
 */
export async function loadCheckpoint(
  source: WeightsSource | SafetensorsFile,
  state: Omit<TrainingState, 'step'>,
  opts: { name?: string } = {},
): Promise<CheckpointMeta> {
  const name = opts.name ?? sourceName(source);
  const fail: Fail = failer(name);
  const file = await openCheckpoint(source, name);
  const meta = checkpointMeta(file, name);
  verifyCheckpointData(file, meta, name);
  const params = new Map(state.model.namedParameters());
  const read = (key: string, param: string): HostTensor => {
    const p = params.get(param);
    if (!p) return fail(`state for '${param}', which the model does not have`);
    if (!file.has(key)) return fail(`lacks tensor '${key}'`);
    let t: HostTensor;
    try {
      t = file.getFloat32(key);
    } catch (e) {
      return fail(`tensor '${key}': ${causeMessage(e)}`, e);
    }
    if (!tf.util.arraysEqual(t.shape, p.torchShape)) fail(`tensor '${key}' has shape [${t.shape}], the model's '${param}' is [${p.torchShape}]`);
    for (let i = 0; i < t.data.length; i++) {
      if (!Number.isFinite(t.data[i]!)) fail(`tensor '${key}' holds ${t.data[i]} at index ${i}`);
    }
    return t;
  };
  // 1. Read and check everything into host memory.
  const missing = [...params.keys()].filter((n) => !file.has(n));
  if (missing.length) fail(`lacks parameter(s) ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? `, … (${missing.length} in all)` : ''}`);
  const sd = new Map<string, HostTensor>();
  for (const n of params.keys()) sd.set(n, read(n, n));
  const known = new Set(params.keys());
  const slots: [string, number, HostTensor, HostTensor][] = [];
  if (state.optimizer) {
    if (!meta.optimizer) fail('holds no optimizer state');
    for (const [n, step] of Object.entries(meta.optimizer.steps)) {
      slots.push([n, step, read(`optimizer.exp_avg.${n}`, n), read(`optimizer.exp_avg_sq.${n}`, n)]);
    }
  }
  const shadows: [string, HostTensor][] = [];
  if (state.ema) {
    if (!meta.ema) fail('holds no EMA state');
    for (const [n] of state.ema.shadow) shadows.push([n, read(`ema.${n}`, n)]);
  }
  const unexpected = file.names().filter((k) => !known.has(k) && !(/^optimizer\.exp_avg(_sq)?\./.test(k) && known.has(k.replace(/^optimizer\.exp_avg(_sq)?\./, ''))) && !(k.startsWith('ema.') && known.has(k.slice(4))));
  if (unexpected.length) fail(`holds tensor(s) the model does not have: ${unexpected.slice(0, 5).join(', ')}${unexpected.length > 5 ? `, … (${unexpected.length} in all)` : ''}`);
  const rngs = new Map([...moduleRngs(state.model), ...Object.entries(state.rngs ?? {}).map(([k, r]) => [`extra:${k}`, r] as const)]);
  const rngStates: [Rng, number[]][] = [];
  for (const [k, r] of rngs) {
    const s = meta.rngs[k];
    if (!s) fail(`has no state for random generator '${k}'`);
    rngStates.push([r, s.map((v) => (v === null ? NaN : v))]);
  }
  // 2. Commit (nothing below can fail on a checked state).
  try {
    state.model.loadStateDict(sd);
  } catch (e) {
    fail(causeMessage(e), e);
  }
  const toDevice = (n: string, t: HostTensor): tf.Tensor => tf.tidy(() => fromTorch(params.get(n)!.layout, tf.tensor(t.data, t.shape, 'float32')));
  for (const [n, step, m, v] of slots) state.optimizer!.setSlot(n, { step, m: toDevice(n, m), v: toDevice(n, v) });
  for (const [n, t] of shadows) state.ema!.setShadow(n, toDevice(n, t));
  if (state.ema) state.ema.updates = meta.ema!.updates;
  for (const [r, s] of rngStates) r.setState(s);
  return meta;
}

/** The system error's own message for read failures, else the message without a library prefix. */
export function causeMessage(e: unknown): string {
  const cause = (e as { cause?: unknown } | null)?.cause;
  if (cause instanceof Error && typeof (cause as { code?: unknown }).code === 'string') return cause.message;
  return e instanceof Error ? e.message.replace(/^safetensors: /, '') : String(e);
}

function isFile(s: unknown): s is SafetensorsFile {
  return typeof s === 'object' && s !== null && typeof (s as SafetensorsFile).getFloat32 === 'function';
}

/**
 * The weights of a checkpoint as a plain safetensors file (PyTorch names and layouts, what `loadWeights` and
 * timm read): the trained weights, or with `{ ema: true }` the EMA weights under the same names.
 */
export async function weightsFromCheckpoint(source: WeightsSource | SafetensorsFile, opts: { ema?: boolean; name?: string } = {}): Promise<Uint8Array> {
  const name = opts.name ?? sourceName(source);
  const file = await openCheckpoint(source, name);
  const meta = checkpointMeta(file, name);
  verifyCheckpointData(file, meta, name);
  if (opts.ema && !meta.ema) failer(name)('holds no EMA weights');
  const tensors: [string, WriteTensor][] = [];
  for (const name of file.names()) {
    if (name.startsWith('optimizer.')) continue;
    const isEma = name.startsWith('ema.');
    if (isEma !== Boolean(opts.ema)) continue;
    tensors.push([isEma ? name.slice(4) : name, file.getFloat32(name)]);
  }
  return serializeSafetensors(tensors, { metadata: { format: 'pt' } });
}
