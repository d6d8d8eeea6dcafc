/**
 * Rebuilding a ConvNeXt V2 from a weights file: the architecture (stored config, else read off the tensor
 * shapes) is bounded and every tensor's name, shape and dtype checked against it before the model is
 * allocated.
 */
import type { StateDictEntry } from '@softbias/tensor-ops';
import {
  type FromFileOptions,
  type WeightsInput,
  WeightsFile,
  checkArchitecture,
  checkWeights,
  readWeights,
  adoptFileMetadata,
} from '@softbias/tensor-ops/models';
import { inferConfig, toTimmStateDict } from './checkpoint.js';
import { MODELS, parameterShapes, resolveConfig, type ConvNeXtV2Config, type ConvNeXtV2Overrides } from './config.js';
import { ConvNeXtV2, FAMILY } from './model.js';

export interface LoadModelOptions extends Omit<FromFileOptions, 'overrides'> {
  /** Architecture overrides (e.g. `dropPathRate`, `headInitScale`) on top of what the file says. */
  overrides?: ConvNeXtV2Overrides;
}

/** A file written by this package (camelCase config with depths, dims and numClasses), not a timm config. */
function storedConfig(w: WeightsFile): (Partial<ConvNeXtV2Config> & Record<string, unknown>) | undefined {
  const c = w.config as (Partial<ConvNeXtV2Config> & Record<string, unknown>) | undefined;
  if (!c || !Array.isArray(c.depths) || !Array.isArray(c.dims) || typeof c.numClasses !== 'number') return undefined;
  return c;
}

/** The architecture a weights file holds (stored config, else read off the timm / official tensor shapes). */
export function configFromWeights(w: WeightsFile, overrides: ConvNeXtV2Overrides = {}): ConvNeXtV2Config {
  if (w.family !== undefined && w.family !== FAMILY && w.hasSoftbiasMetadata) {
    throw new Error(`loadModel: this file holds a '${w.family}' model, not ConvNeXt V2`);
  }
  const stored = storedConfig(w);
  if (stored) {
    const name = typeof stored.name === 'string' && MODELS.some((m) => m.name === stored.name) ? stored.name : 'convnextv2_custom';
    checkArchitecture("ConvNeXt V2 (the file's config)", { depth: (stored.depths as number[]).reduce((a, b) => a + b, 0), width: stored.dims as number[] });
    return resolveConfig(name, { ...stored, ...overrides });
  }
  const shapesOnly = new Map<string, StateDictEntry>(w.names().map((n) => [n, { data: new Float32Array(0), shape: w.shape(n)! }]));
  const inferred = inferConfig(toTimmStateDict(shapesOnly, new Map()).sd);
  return resolveConfig(inferred.name, { ...inferred, ...overrides });
}

/** Dims that differ only by unit axes in the keys ConvNeXt V2 checkpoints store either way. */
const VARIANT = /\.mlp\.(fc1\.weight|fc2\.weight|grn\.weight|grn\.bias)$/;
const squeeze = (s: readonly number[]) => s.filter((d) => d !== 1).join(',');

/** Check a file against an architecture (bounds, every tensor) without allocating; throws a `WeightsError`. */
export function checkFileFits(w: WeightsFile, cfg: ConvNeXtV2Config, opts: { allowIntegerCast?: boolean } = {}): void {
  const { depths, dims, inChans, numClasses } = cfg;
  checkArchitecture('ConvNeXt V2', { depth: depths.reduce((a, b) => a + b, 0), width: [...dims, inChans, ...(numClasses > 0 ? [numClasses] : [])] });
  const expected = parameterShapes(cfg);
  // Official names → timm names (shapes only), so the comparison is by timm key.
  const shapesOnly = new Map<string, StateDictEntry>(w.names().map((n) => [n, { data: new Float32Array(0), shape: w.shape(n)! }]));
  const renamed = toTimmStateDict(shapesOnly, new Map());
  const view = new WeightsFile(null, renamed.sd, { label: w.label });
  checkWeights(`ConvNeXt V2 '${cfg.name}' (depths [${depths}], dims [${dims}])`, view, expected, {
    equivalent: (k, want, got) => VARIANT.test(k) && squeeze(want) === squeeze(got),
    ...(opts.allowIntegerCast !== undefined ? { allowIntegerCast: opts.allowIntegerCast } : {}),
  });
  if (!opts.allowIntegerCast) {
    // Dtypes are checked on the file's own names (a state dict's view has none).
    checkWeights('ConvNeXt V2', w, w.names().map((n) => [n, w.shape(n)!] as const), {});
  }
}

/** Rebuild and load (strictly) the ConvNeXt V2 a read weights file holds. */
export async function modelFromWeights(w: WeightsFile, opts: LoadModelOptions = {}): Promise<ConvNeXtV2> {
  const cfg = configFromWeights(w, opts.overrides);
  checkFileFits(w, cfg, opts);
  const sd = w.stateDict(opts);
  const model = new ConvNeXtV2(cfg, { seed: opts.seed ?? 0 });
  try {
    model.loadStateDict(sd, { allowNonFinite: opts.allowNonFinite ?? false });
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

/**
 * Rebuild a model from a checkpoint and load it strictly: the architecture comes from the file's
 * `__metadata__.config` (written by `saveWeights`), or else is read off the tensor shapes (any timm or
 * official ConvNeXt V2 checkpoint). The file is checked against it before anything is allocated.
 */
export async function loadModel(source: WeightsInput, opts: LoadModelOptions = {}): Promise<ConvNeXtV2> {
  const w = await readWeights(source, opts);
  const model = await modelFromWeights(w, opts);
  adoptFileMetadata(model, w); // its class names and the preprocessing it was trained with
  return model;
}
