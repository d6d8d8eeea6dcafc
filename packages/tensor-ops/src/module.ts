/**
 * A small PyTorch-like module system: modules own named parameters (PyTorch/timm `state_dict` keys),
 * child modules, and a train/eval mode.
 */
import * as tf from '@tensorflow/tfjs-core';
import { type ParamLayout, fromTorch, toTorch, torchShape } from './layout.js';

export interface ParameterOptions {
  /** Layout of the tensor relative to PyTorch (see `layout.ts`). Default `plain`. */
  layout?: ParamLayout;
  /** Whether optimizers update it. Default true. */
  trainable?: boolean;
  /** Excluded from weight decay (norms, biases, embeddings, gates). Default: rank ≤ 1. */
  noWeightDecay?: boolean;
}

/** A named, trainable tensor held in tfjs layout. */
export class Parameter {
  readonly variable: tf.Variable;
  readonly layout: ParamLayout;
  noWeightDecay: boolean;

  constructor(value: tf.Tensor, name: string, opts: ParameterOptions = {}) {
    this.layout = opts.layout ?? 'plain';
    this.noWeightDecay = opts.noWeightDecay ?? value.rank <= 1;
    this.variable = tf.variable(value, opts.trainable ?? true, `${name}_${nextParameterId()}`, 'float32');
  }

  /** Whether optimizers (and `tf.variableGrads` without a list) update it. */
  get trainable(): boolean {
    return this.variable.trainable;
  }
  set trainable(v: boolean) {
    this.variable.trainable = v;
  }

  /** The current value (tfjs layout). */
  get value(): tf.Variable {
    return this.variable;
  }

  get shape(): number[] {
    return this.variable.shape;
  }

  /** PyTorch shape of this parameter. */
  get torchShape(): number[] {
    return torchShape(this.layout, this.variable.shape);
  }

  /** Replace the value (tfjs layout); the argument is not disposed. */
  assign(value: tf.Tensor): void {
    if (!tf.util.arraysEqual(value.shape, this.variable.shape)) {
      throw new Error(`Parameter.assign: shape [${value.shape}] does not match [${this.variable.shape}]`);
    }
    this.variable.assign(value.dtype === 'float32' ? value : tf.cast(value, 'float32'));
  }

  dispose(): void {
    if (!this.variable.isDisposed) this.variable.dispose();
  }
}
/**
 * tfjs variable names must be unique per engine. The counter lives on globalThis, beside tfjs' own engine, so
 * that two instances of this module (a test runner re-evaluating it, a dual ESM/CJS load) never reuse a name.
 */
function nextParameterId(): number {
  const g = globalThis as { __softbiasParameterId?: number };
  g.__softbiasParameterId = (g.__softbiasParameterId ?? 0) + 1;
  return g.__softbiasParameterId;
}

export interface LoadStateDictOptions {
  /**
   * Throw on missing or unexpected keys (all listed in one error). Default true. Mis-shaped entries (and
   * entries whose data does not fill their shape) throw in both modes, as in PyTorch.
   */
  strict?: boolean;
  /** Keys (or key prefixes ending in '.') to leave untouched and not report. */
  skip?: readonly string[];
  /**
   * Load NaN / ±Infinity values. Default false: an entry of host data (`{ data, shape }`, what weight files
   * give) holding one is invalid and the load throws, changing nothing. (Tensor entries are not read back.)
   */
  allowNonFinite?: boolean;
}

export interface LoadStateDictResult {
  loaded: string[];
  missing: string[];
  unexpected: string[];
  mismatched: { key: string; expected: number[]; got: number[] }[];
  /** Entries that cannot be loaded whatever the shape (disposed tensors, data that does not fill its shape). */
  invalid: { key: string; reason: string }[];
}

export class StateDictError extends Error {
  constructor(
    message: string,
    readonly result: LoadStateDictResult,
  ) {
    super(message);
    this.name = 'StateDictError';
  }
}

/** A tensor in PyTorch layout, or raw float32 data with its PyTorch shape (from a checkpoint reader). */
export type StateDictEntry = tf.Tensor | { data: Float32Array; shape: number[] };
export type StateDict = Record<string, StateDictEntry> | Map<string, StateDictEntry>;

function entryShape(e: StateDictEntry): number[] {
  return e instanceof tf.Tensor ? e.shape : [...e.shape];
}

/**
 * Why an entry cannot be loaded whatever its shape (disposed tensor, data that does not fill its shape,
 * NaN / ±Infinity unless `allowNonFinite`); undefined when it can. The one check `loadStateDict` and
 * `readWeights` (`@softbias/tensor-ops/models`) apply.
 */
export function entryDefect(e: StateDictEntry, allowNonFinite = false): string | undefined {
  if (e instanceof tf.Tensor) return e.isDisposed ? 'the tensor is disposed' : undefined;
  if (e === null || typeof e !== 'object' || !Array.isArray(e.shape)) return 'not a tensor or { data, shape }';
  if (!e.shape.every((d) => Number.isInteger(d) && d >= 0)) return `invalid shape [${e.shape}]`;
  const n = e.shape.reduce((a, b) => a * b, 1);
  if (!e.data || typeof e.data.length !== 'number' || e.data.length !== n) {
    return `${e.data?.length} values do not fill shape [${e.shape}]`;
  }
  if (!allowNonFinite) {
    const d = e.data as ArrayLike<number>;
    for (let i = 0; i < d.length; i++) {
      const v = d[i]!;
      if (v - v !== 0) {
        let count = 0;
        for (let j = i; j < d.length; j++) if (d[j]! - d[j]! !== 0) count++;
        return `holds ${v} at index ${i} (${count} non-finite value${count > 1 ? 's' : ''}; pass { allowNonFinite: true } to load them anyway)`;
      }
    }
  }
  return undefined;
}

export class Module {
  /** Train mode (dropout, drop-path active). Modules start in eval mode. */
  training = false;
  private readonly _params = new Map<string, Parameter>();
  private readonly _children = new Map<string, Module>();
  private _disposed = false;

  /**
   * Register a parameter under a local name (no dots), in tfjs layout `opts.layout`. The module takes the
   * tensor over: its data moves into the parameter's variable and `value` is disposed. Returns the parameter.
   */
  protected registerParameter(name: string, value: tf.Tensor, opts: ParameterOptions = {}): Parameter {
    if (name.includes('.')) throw new Error(`parameter name '${name}' must not contain '.'`);
    if (this._params.has(name) || this._children.has(name)) throw new Error(`'${name}' is already registered`);
    const p = new Parameter(value, name, opts);
    value.dispose();
    this._params.set(name, p);
    return p;
  }

  /** Register a child module under a local name ('blocks' → children named 'blocks.0' via ModuleList). */
  protected registerModule<M extends Module>(name: string, module: M): M {
    if (this._params.has(name) || this._children.has(name)) throw new Error(`'${name}' is already registered`);
    this._children.set(name, module);
    return module;
  }

  /**
   * Put `module` in the slot of the registered child `name` (same place in the state dict order), disposing
   * the child it replaces unless `{ dispose: false }`. The new child takes this module's train/eval mode.
   * Replaceable slots (a classifier that `resetClassifier` swaps) need no `namedParameters` override.
   */
  replaceModule<M extends Module>(name: string, module: M, opts: { dispose?: boolean } = {}): M {
    const old = this._children.get(name);
    if (!old) {
      throw new Error(`replaceModule: no child module '${name}'; children: ${[...this._children.keys()].join(', ') || 'none'}`);
    }
    if (old !== module && (opts.dispose ?? true)) old.dispose();
    this._children.set(name, module);
    module.train(this.training);
    return module;
  }

  /** Children in registration order. */
  children(): [string, Module][] {
    return [...this._children.entries()];
  }

  /** Every module below (and including) this one, with dotted names. */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [name, child] of this._children) out.push(...child.namedModules(prefix ? `${prefix}.${name}` : name));
    return out;
  }

  /** Every parameter with its full PyTorch `state_dict` key, in registration order. */
  namedParameters(prefix = ''): [string, Parameter][] {
    const out: [string, Parameter][] = [];
    for (const [name, p] of this._params) out.push([prefix ? `${prefix}.${name}` : name, p]);
    for (const [name, child] of this._children) out.push(...child.namedParameters(prefix ? `${prefix}.${name}` : name));
    return out;
  }

  parameters(): Parameter[] {
    return this.namedParameters().map(([, p]) => p);
  }

  /** Trainable parameters (what an optimizer updates). */
  trainableParameters(): [string, Parameter][] {
    return this.namedParameters().filter(([, p]) => p.trainable);
  }

  /** Number of scalars, optionally only trainable ones. */
  numParameters(trainableOnly = false): number {
    return this.parameters()
      .filter((p) => !trainableOnly || p.trainable)
      .reduce((n, p) => n + p.variable.size, 0);
  }

  /** Names AdamW must not decay. */
  noWeightDecay(): Set<string> {
    return new Set(this.namedParameters().filter(([, p]) => p.noWeightDecay).map(([n]) => n));
  }

  /** Set train (true) or eval (false) mode on this module and all children. */
  train(mode = true): this {
    for (const [, m] of this.namedModules()) {
      const changed = m.training !== mode;
      m.training = mode;
      if (changed) m.onModeChange(mode);
    }
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Hook: called when `train()`/`eval()` changes this module's mode. */
  protected onModeChange(_training: boolean): void {}

  /** Hook: called after `loadStateDict` assigned values (invalidate caches here). */
  protected onWeightsLoaded(): void {}

  /**
   * The state dict in PyTorch layout: new tensors the caller owns (dispose them), keyed by timm names.
   */
  stateDict(): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    for (const [name, p] of this.namedParameters()) out.set(name, toTorch(p.layout, p.variable));
    return out;
  }

  /**
   * Load PyTorch-layout tensors by name. Lists every missing, unexpected and mis-shaped key in one error
   * (strict mode, the default) before touching any parameter, so a failed load changes nothing.
   * The entries are not disposed.
   */
  loadStateDict(sd: StateDict, opts: LoadStateDictOptions = {}): LoadStateDictResult {
    const strict = opts.strict ?? true;
    const skip = opts.skip ?? [];
    const isSkipped = (k: string) => skip.some((s) => (s.endsWith('.') ? k.startsWith(s) : k === s));
    const entries = sd instanceof Map ? sd : new Map(Object.entries(sd));
    const params = new Map(this.namedParameters());
    const result: LoadStateDictResult = { loaded: [], missing: [], unexpected: [], mismatched: [], invalid: [] };
    for (const [k, p] of params) {
      if (isSkipped(k)) continue;
      const e = entries.get(k);
      if (e === undefined) {
        result.missing.push(k);
        continue;
      }
      const defect = entryDefect(e, opts.allowNonFinite ?? false);
      if (defect) {
        result.invalid.push({ key: k, reason: defect });
        continue;
      }
      const got = entryShape(e);
      if (!tf.util.arraysEqual(got, p.torchShape)) result.mismatched.push({ key: k, expected: p.torchShape, got });
    }
    for (const k of entries.keys()) if (!params.has(k) && !isSkipped(k)) result.unexpected.push(k);
    const fatal = result.mismatched.length + result.invalid.length;
    const problems = result.missing.length + result.unexpected.length + fatal;
    if (problems > 0 && (strict || fatal > 0)) {
      throw new StateDictError(describeStateDictProblems(this.constructor.name, result), result);
    }
    for (const [k, p] of params) {
      const e = entries.get(k);
      if (e === undefined || isSkipped(k)) continue;
      tf.tidy(() => {
        const t = e instanceof tf.Tensor ? e : tf.tensor(e.data, e.shape, 'float32');
        p.assign(fromTorch(p.layout, t));
      });
      result.loaded.push(k);
    }
    for (const [, m] of this.namedModules()) m.onWeightsLoaded();
    return result;
  }

  /** Free every parameter. The module is unusable afterwards. */
  dispose(): void {
    if (this._disposed) return;
    this._disposed = true;
    for (const p of this._params.values()) p.dispose();
    for (const c of this._children.values()) c.dispose();
  }

  get isDisposed(): boolean {
    return this._disposed;
  }
}

export function describeStateDictProblems(what: string, r: LoadStateDictResult): string {
  const lines = [`Error(s) in loading state_dict for ${what}:`];
  const list = (ks: string[]) => ks.map((k) => `"${k}"`).join(', ');
  if (r.missing.length) lines.push(`  Missing key(s) (${r.missing.length}): ${list(r.missing)}`);
  if (r.unexpected.length) lines.push(`  Unexpected key(s) (${r.unexpected.length}): ${list(r.unexpected)}`);
  for (const m of r.mismatched) {
    lines.push(`  Size mismatch for "${m.key}": checkpoint has shape [${m.got}], the model expects [${m.expected}]`);
  }
  for (const m of r.invalid ?? []) lines.push(`  Invalid entry "${m.key}": ${m.reason}`);
  return lines.join('\n');
}

/** An ordered list of child modules named '0', '1', … (PyTorch `nn.ModuleList` / `nn.Sequential`). */
export class ModuleList<M extends Module = Module> extends Module {
  readonly items: M[] = [];
  constructor(items: Iterable<M> = []) {
    super();
    for (const m of items) this.push(m);
  }
  push(m: M): void {
    this.registerModule(String(this.items.length), m);
    this.items.push(m);
  }
  get length(): number {
    return this.items.length;
  }
  at(i: number): M {
    const m = this.items[i < 0 ? this.items.length + i : i];
    if (!m) throw new RangeError(`ModuleList index ${i} out of range (length ${this.items.length})`);
    return m;
  }
  [Symbol.iterator](): Iterator<M> {
    return this.items[Symbol.iterator]();
  }
}
