/**
 * One registry of models for every family: registered names, their pretrained configs and constructors,
 * and the families' file loaders, so that a weights file of any family is rebuilt with one call.
 */
import type { VisionModel, LoadWeightsOptions } from './contract.js';
import { type PretrainedConfig, parsePretrainedCfgMetadata, pretrainedConfigFromTimm, setPretrainedConfig } from './pretrained.js';
import type { PretrainedTag } from './from-pretrained.js';
import { labelNamesOf, setLabelNames } from './labels.js';
import { FeatureModel } from './features.js';
import { type ReadWeightsOptions, type WeightsFile, type WeightsInput, WeightsError, readWeights } from './weights.js';

/** A registered model name. */
export interface ModelEntry<M = VisionModel> {
  name: string;
  /** The family that builds it (a registered `ModelFamily`). */
  family: string;
  description: string;
  pretrainedConfig: PretrainedConfig;
  /**
   * The released checkpoints (timm tags, from timm's `default_cfgs`) of this architecture: what
   * `fromPretrained('timm/<name>.<tag>')` loads; the default is the one `pretrainedConfig.weights` names.
   */
  tags?: readonly PretrainedTag[];
  /** Build it (timm init, seeded), with architecture overrides in the family's camelCase. */
  create(overrides?: Record<string, unknown>): M;
}

export interface FromFileOptions extends Omit<LoadWeightsOptions, 'skipHead'>, ReadWeightsOptions {
  /** Seed of any parameters the file does not set. Default 0. */
  seed?: number;
  /** Architecture overrides (the family's camelCase names), for files that do not say everything. */
  overrides?: Record<string, unknown>;
}

/** A model family: how a file of it is recognised and rebuilt. */
export interface ModelFamily<M = VisionModel> {
  name: string;
  description: string;
  /** Old `__metadata__.library` values its files carry. */
  libraries?: readonly string[];
  /** Whether a file with no softbias metadata (a timm / official checkpoint) holds this family, by its tensor names. */
  recognises?(names: ReadonlySet<string>): boolean;
  /**
   * Rebuild the model a file holds: its architecture is checked (bounds, every tensor's name, shape and
   * dtype) before anything is allocated. Absent for families that are not `M`s (then `fromFile` refuses
   * the file with `refusal`).
   */
  fromFile?(w: WeightsFile, opts: FromFileOptions): Promise<M>;
  /** Why `fromFile` is not possible, for families without it (e.g. pre-training models). */
  refusal?: string;
}

/** `*` wildcard pattern or substring → predicate. */
function matcher(pattern: string): (name: string) => boolean {
  if (!pattern.includes('*')) return (n) => n.includes(pattern);
  const re = new RegExp(`^${pattern.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  return (n) => re.test(n);
}

export interface ListFilter {
  /** Substring, or a pattern with `*` wildcards matched against the whole name. */
  pattern?: string;
  family?: string;
  /** Only models with released reference weights. */
  pretrained?: boolean;
}

export class ModelRegistry<M = VisionModel> {
  private readonly entries = new Map<string, ModelEntry<M>>();
  private readonly families = new Map<string, ModelFamily<M>>();

  /** `what`: the noun in errors ("unknown model 'x'; registered: …"). */
  constructor(readonly what = 'model') {}

  /** Register a family (once; registering the same object again is a no-op). */
  registerFamily(family: ModelFamily<M>): void {
    const old = this.families.get(family.name);
    if (old && old !== family) throw new Error(`${this.what} family '${family.name}' is already registered`);
    this.families.set(family.name, family);
  }

  /** Register model names (each once; the same entry again is a no-op). Their family must be registered. */
  register(...entries: ModelEntry<M>[]): void {
    for (const e of entries) {
      if (!this.families.has(e.family)) {
        throw new Error(`register '${e.name}': family '${e.family}' is not registered (registerFamily first)`);
      }
      const old = this.entries.get(e.name);
      if (old && old !== e) throw new Error(`${this.what} '${e.name}' is already registered (family ${old.family})`);
      this.entries.set(e.name, e);
    }
  }

  /** Registered names in registration order, optionally filtered (a string is a `pattern`). */
  list(filter?: string | ListFilter): string[] {
    const f: ListFilter = typeof filter === 'string' ? { pattern: filter } : (filter ?? {});
    const match = f.pattern ? matcher(f.pattern) : () => true;
    return [...this.entries.values()]
      .filter((e) => match(e.name) && (f.family === undefined || e.family === f.family))
      .filter((e) => f.pretrained === undefined || (e.pretrainedConfig.weights !== null) === f.pretrained)
      .map((e) => e.name);
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** The entry of a registered name; throws "unknown model 'x'; registered: …". */
  get(name: string): ModelEntry<M> {
    const e = this.entries.get(name);
    if (!e) throw new Error(`unknown ${this.what} '${name}'; registered: ${this.list().join(', ')}`);
    return e;
  }

  /** Registered family names. */
  familyNames(): string[] {
    return [...this.families.keys()];
  }

  /** A registered family; throws listing them. */
  family(name: string): ModelFamily<M> {
    const f = this.families.get(name);
    if (!f) throw new Error(`unknown ${this.what} family '${name}'; registered: ${this.familyNames().join(', ')}`);
    return f;
  }

  /**
   * Build a registered model. With `{ featuresOnly: true, outIndices? }` the family returns a `FeatureModel`
   * (timm's `features_only`: feature maps with `featureInfo`, no classifier).
   */
  create(name: string, overrides: Record<string, unknown> & { featuresOnly: true }): FeatureModel<M extends VisionModel ? M : VisionModel>;
  create(name: string, overrides?: Record<string, unknown>): M;
  create(name: string, overrides: Record<string, unknown> = {}): M | FeatureModel {
    if (overrides['pretrained'] !== undefined && overrides['pretrained'] !== false) {
      throw new TypeError(
        `create('${name}', { pretrained }) is synchronous and downloads nothing: use await fromPretrained('${name}') or ` +
          `createPretrained('${name}', { pretrained: true }) from @softbias/tensor-ops/models`,
      );
    }
    const m = this.get(name).create(overrides);
    if (overrides['featuresOnly'] === true && !(m instanceof FeatureModel)) {
      (m as { dispose?(): void }).dispose?.();
      throw new Error(`${this.what} '${name}': its family does not build featuresOnly models`);
    }
    return m;
  }

  /**
   * The family a file holds (the one place that tells): its `family` / `arch` metadata (a registered
   * family, or a registered model name), the old `config.architecture` and `library` fields, and else its
   * tensor names (each family's `recognises`). Throws when none fits.
   */
  familyOf(w: WeightsFile): ModelFamily<M> {
    const byName = (n: string | undefined) =>
      n === undefined ? undefined : (this.families.get(n) ?? (this.entries.has(n) ? this.families.get(this.entries.get(n)!.family) : undefined));
    const named = byName(w.family) ?? byName(w.arch);
    if (named) return named;
    if (w.library) {
      for (const f of this.families.values()) if (f.libraries?.includes(w.library)) return f;
    }
    const names = new Set(w.names());
    const found = [...this.families.values()].filter((f) => f.recognises?.(names));
    if (found.length === 1) return found[0]!;
    const hint = w.family ?? w.arch;
    throw new WeightsError(
      found.length > 1
        ? `${w.label}: the tensor names fit several ${this.what} families (${found.map((f) => f.name).join(', ')}); the file names none`
        : `${w.label}: not a file of a registered ${this.what} family${hint ? ` (it names '${hint}')` : ''}; registered: ` +
            `${[...this.families.values()].map((f) => `${f.name} (${f.description})`).join('; ')}`,
    );
  }

  /** Rebuild the model a weights file holds, whatever its family, and load it (strict). */
  async fromFile(source: WeightsInput, opts: FromFileOptions = {}): Promise<M> {
    const w = await readWeights(source, opts);
    const family = this.familyOf(w);
    if (!family.fromFile) {
      throw new WeightsError(`${w.label} holds a ${family.description} ('${family.name}'): ${family.refusal ?? 'it cannot be loaded as a model here'}`);
    }
    const model = await family.fromFile(w, opts);
    // The checkpoint's own class names, for classify (the family builds the model; the names stay with it).
    if (model !== null && typeof model === 'object') adoptFileMetadata(model, w);
    return model;
  }
}

/**
 * What a weights file says about the model it rebuilds, given to that model: its class names (`labels`, for
 * classify) and the preprocessing it was trained with (`__metadata__.pretrained_cfg`, as writeWeights stores
 * it). Every loader calls this (`models.fromFile`, each family's `loadModel`); a malformed entry disposes the
 * model and throws a WeightsError naming the field.
 */
export function adoptFileMetadata(model: object, w: WeightsFile): void {
  setLabelNames(model, labelNamesOf(w));
  const raw = w.metadata['pretrained_cfg'];
  if (raw === undefined) return;
  try {
    const base = (model as { pretrainedConfig?: PretrainedConfig }).pretrainedConfig;
    if (!base) return;
    const cfg = pretrainedConfigFromTimm(parsePretrainedCfgMetadata(raw, w.label), base);
    if (cfg.inputSize[0] !== base.inputSize[0]) {
      throw new RangeError(`${w.label}: __metadata__.pretrained_cfg.input_size has ${cfg.inputSize[0]} channel(s), the model takes ${base.inputSize[0]}`);
    }
    setPretrainedConfig(model, cfg);
  } catch (e) {
    (model as { dispose?: () => void }).dispose?.();
    throw e instanceof RangeError ? new WeightsError(e.message) : e;
  }
}

/** The registry every softbias model family registers into (importing a family package registers it). */
export const models: ModelRegistry<VisionModel> = new ModelRegistry<VisionModel>('model');
