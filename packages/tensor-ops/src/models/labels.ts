/**
 * Class names: the ImageNet-1k names shipped with the library (timm's order and WordNet lemmas), a
 * checkpoint's own names (its metadata or config), and which names `classify` uses for a model.
 */
import { LEMMAS, SYNSETS } from './imagenet-labels.js';
import type { VisionModel } from './contract.js';
import type { WeightsFile } from './weights.js';

let lemmas: readonly string[] | undefined;
let synsets: readonly string[] | undefined;

/**
 * The 1000 ImageNet-1k class names in the order of every ImageNet-1k checkpoint ('tench, Tinca tinca',
 * 'goldfish, Carassius auratus', …): timm's `ImageNetInfo` descriptions (transformers' `id2label`).
 */
export function imagenetLabels(): readonly string[] {
  lemmas ??= Object.freeze(LEMMAS.split('|'));
  return lemmas;
}

/** The 1000 ImageNet-1k WordNet synset ids ('n01440764', …), timm's `label_names`, in the same order. */
export function imagenetSynsets(): readonly string[] {
  synsets ??= Object.freeze(Array.from({ length: SYNSETS.length / 9 }, (_, i) => SYNSETS.slice(i * 9, i * 9 + 9)));
  return synsets;
}

function stringList(v: unknown): string[] | undefined {
  return Array.isArray(v) && v.length > 0 && v.every((s) => typeof s === 'string') ? [...v] : undefined;
}

/** `id2label` ({ "0": "cat", … }) as a list, when it covers 0…n−1. */
function fromId2Label(v: unknown): string[] | undefined {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
  const entries = Object.entries(v as Record<string, unknown>);
  const out: string[] = new Array(entries.length);
  for (const [k, name] of entries) {
    const i = Number(k);
    if (!Number.isInteger(i) || i < 0 || i >= entries.length || typeof name !== 'string') return undefined;
    out[i] = name;
  }
  return out.every((s) => typeof s === 'string') ? out : undefined;
}

/**
 * A checkpoint's own class names, or undefined: `__metadata__.labels` (a JSON list of strings, as
 * `writeWeights({ metadata: { labels } })` stores them), else its config's `label_names` / `labelNames` /
 * `id2label` (a hub `config.json` parsed as an object works too).
 */
export function labelNamesOf(source: WeightsFile | { metadata?: Readonly<Record<string, string>>; config?: unknown } | Record<string, unknown>): string[] | undefined {
  const s = source as { metadata?: Record<string, unknown>; config?: unknown };
  const raw = s.metadata && typeof s.metadata === 'object' ? s.metadata['labels'] : undefined;
  if (typeof raw === 'string') {
    try {
      const list = stringList(JSON.parse(raw));
      if (list) return list;
    } catch {
      // not JSON: fall through to the config
    }
  }
  const configs = [s.config, source].filter((c): c is Record<string, unknown> => c !== null && typeof c === 'object');
  for (const c of configs) {
    const list = stringList(c['label_names']) ?? stringList(c['labelNames']) ?? fromId2Label(c['id2label']);
    if (list) return list;
    const pc = c['pretrained_cfg'];
    if (pc && typeof pc === 'object') {
      const inner = stringList((pc as Record<string, unknown>)['label_names']);
      if (inner) return inner;
    }
  }
  return undefined;
}

const remembered = new WeakMap<object, readonly string[]>();

/** Remember the class names of a model loaded from a checkpoint that has them (`models.fromFile` does this). */
export function setLabelNames(model: object, labels: readonly string[] | undefined): void {
  if (labels === undefined) remembered.delete(model);
  else remembered.set(model, Object.freeze([...labels]));
}

/**
 * The class names a model carries, when they fit its classifier (one per class): remembered for it
 * (`models.fromFile`, `setLabelNames`) or its pretrained config's `labelNames`; undefined otherwise (none, or a
 * classifier replaced by `resetClassifier` since). `writeWeights` stores them as `__metadata__.labels`.
 */
export function ownLabelNames(model: object): readonly string[] | undefined {
  const names = remembered.get(model) ?? (model as Partial<VisionModel>).pretrainedConfig?.labelNames;
  const n = (model as Partial<VisionModel>).numClasses;
  return names !== undefined && (n === undefined || names.length === n) ? names : undefined;
}

/**
 * The class names `classify` uses for a model: `labels` when given (their number must be `numClasses`), else
 * the checkpoint's own (`ownLabelNames`), else the ImageNet-1k names for a 1000-class model; undefined
 * otherwise (then `classify` says 'class <i>').
 */
export function labelNamesFor(model: VisionModel, labels?: readonly string[]): readonly string[] | undefined {
  if (labels !== undefined) {
    if (labels.length !== model.numClasses) {
      throw new RangeError(`classify: ${labels.length} label names for a model with ${model.numClasses} classes`);
    }
    return labels;
  }
  return ownLabelNames(model) ?? (model.numClasses === 1000 ? imagenetLabels() : undefined);
}
