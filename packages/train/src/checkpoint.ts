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
}

export interface CheckpointMeta {
  version: 1;
  step: number;
  optimizer?: { config: ReturnType<AdamW['config']>; steps: Record<string, number> };
  ema?: { decay: number; warmup: boolean; updates: number };
  rngs: Record<string, (number | null)[]>;
  sampler?: unknown;
  extra?: Record<string, unknown>;
}

/** A checkpoint that cannot be read, verified or restored; `path` names the file (or source). */
export class CheckpointError extends Error {
  constructor(
    readonly path: string,
    message: string,
    cause?: unknown,
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

/** Serialise a training state to safetensors bytes. */
export async function checkpointBytes(state: TrainingState): Promise<Uint8Array> {
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
  return serializeSafetensors(tensors, { metadata: { format: CHECKPOINT_FORMAT, [META_KEY]: JSON.stringify(meta) } });
}

/** Save a training state to a Node path atomically; returns the bytes written. */
export async function saveCheckpoint(path: string, state: TrainingState): Promise<Uint8Array> {
  const bytes = await checkpointBytes(state);
  await writeFileAtomic(path, bytes);
  return bytes;
}

/** Read the metadata of a checkpoint. Throws if the file is not a softbias checkpoint. */
export function checkpointMeta(file: SafetensorsFile): CheckpointMeta {
  const raw = file.metadata[META_KEY];
  if (file.metadata['format'] !== CHECKPOINT_FORMAT || raw === undefined) {
    throw new Error(`not a softbias training checkpoint (no '${META_KEY}' metadata); for weights only, use loadWeights / loadSafetensorsInto`);
  }
  const meta = JSON.parse(raw) as CheckpointMeta;
  if (meta.version !== 1) throw new Error(`checkpoint version ${meta.version} is not supported (expected 1)`);
  return meta;
}

/**
 * Restore a checkpoint into `state`'s model, optimizer, EMA and generators (strict: every parameter, moment
 * and generator must be there). Returns the metadata (step, sampler, extra) for the caller to continue from.
 */
export async function loadCheckpoint(source: WeightsSource | SafetensorsFile, state: Omit<TrainingState, 'step'>): Promise<CheckpointMeta> {
  const file = isFile(source) ? source : parseSafetensors(await readBytes(source));
  const meta = checkpointMeta(file);
  const params = state.model.namedParameters();
  const missing = params.map(([n]) => n).filter((n) => !file.has(n));
  if (missing.length) throw new Error(`checkpoint lacks parameter(s) ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''}`);
  const fromFile = (key: string, name: string): tf.Tensor => {
    const t = file.getFloat32(key);
    const layout = state.model.namedParameters().find(([n]) => n === name)?.[1].layout ?? 'plain';
    return tf.tidy(() => fromTorch(layout, tf.tensor(t.data, t.shape, 'float32')));
  };
  // Weights through loadStateDict (shape checks, model hooks).
  const sd = new Map<string, { data: Float32Array; shape: number[] }>();
  for (const [n] of params) sd.set(n, file.getFloat32(n));
  state.model.loadStateDict(sd);
  if (state.optimizer) {
    if (!meta.optimizer) throw new Error('checkpoint holds no optimizer state');
    for (const [name, step] of Object.entries(meta.optimizer.steps)) {
      state.optimizer.setSlot(name, { step, m: fromFile(`optimizer.exp_avg.${name}`, name), v: fromFile(`optimizer.exp_avg_sq.${name}`, name) });
    }
  }
  if (state.ema) {
    if (!meta.ema) throw new Error('checkpoint holds no EMA state');
    for (const [name] of state.ema.shadow) state.ema.setShadow(name, fromFile(`ema.${name}`, name));
    state.ema.updates = meta.ema.updates;
  }
  const rngs = new Map([...moduleRngs(state.model), ...Object.entries(state.rngs ?? {}).map(([k, r]) => [`extra:${k}`, r] as const)]);
  for (const [k, r] of rngs) {
    const s = meta.rngs[k];
    if (!s) throw new Error(`checkpoint has no state for random generator '${k}'`);
    r.setState(s.map((v) => (v === null ? NaN : v)));
  }
  return meta;
}

function isFile(s: unknown): s is SafetensorsFile {
  return typeof s === 'object' && s !== null && typeof (s as SafetensorsFile).getFloat32 === 'function';
}

/**
 * The weights of a checkpoint as a plain safetensors file (PyTorch names and layouts, what `loadWeights` and
 * timm read): the trained weights, or with `{ ema: true }` the EMA weights under the same names.
 */
export async function weightsFromCheckpoint(source: WeightsSource | SafetensorsFile, opts: { ema?: boolean } = {}): Promise<Uint8Array> {
  const file = isFile(source) ? source : parseSafetensors(await readBytes(source));
  const meta = checkpointMeta(file);
  if (opts.ema && !meta.ema) throw new Error('checkpoint holds no EMA weights');
  const tensors: [string, WriteTensor][] = [];
  for (const name of file.names()) {
    if (name.startsWith('optimizer.')) continue;
    const isEma = name.startsWith('ema.');
    if (isEma !== Boolean(opts.ema)) continue;
    tensors.push([isEma ? name.slice(4) : name, file.getFloat32(name)]);
  }
  return serializeSafetensors(tensors, { metadata: { format: 'pt' } });
}
