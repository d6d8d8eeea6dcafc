/**
 * Pretrained models by hub id: `fromPretrained('timm/convnextv2_atto.fcmae_ft_in1k')` for any timm
 * checkpoint of a registered architecture. The architecture and its released tags come from the one
 * registry (each family lists its timm tags in its entries); the files come from the hub client (`hub.ts`,
 * cached); the weights are read by the one reader (`readWeights`).
 */
import type { VisionModel } from './contract.js';
import { type HubOptions, HubError, hubDownload } from './hub.js';
import { type PretrainedConfig, pretrainedConfigFromTimm, setPretrainedConfig } from './pretrained.js';

export { pretrainedConfigFromTimm };
import { type ModelEntry, type ModelRegistry, models } from './registry.js';
import type { StateDictEntry } from '../module.js';
import { type WeightsFile, WeightsError, readWeights } from './weights.js';

/** A released checkpoint of a registered architecture (timm's `<arch>.<tag>`, e.g. `convnextv2_atto.fcmae_ft_in1k`). */
export interface PretrainedTag {
  /** The tag after the dot: `fb_in1k`, `fcmae_ft_in22k_in1k_384`, `fcmae`. */
  tag: string;
  /** The hub repository holding it (`timm/<arch>.<tag>`). */
  hubId: string;
  /** Input size, crop, normalisation, classes and licence of these weights (timm's `pretrained_cfg`). */
  pretrainedConfig: PretrainedConfig;
  /**
   * An encoder without classifier (timm `num_classes=0` tags such as ConvNeXt V2's `.fcmae`): loaded as a
   * headless model (`numClasses` 0) that returns features. `absent` lists the state-dict prefixes the
   * checkpoint does not have (initialised as the family does).
   */
  encoderOnly?: { absent: readonly string[]; note: string };
}

export interface FromPretrainedOptions extends HubOptions {
  /** A new classifier with this many outputs (0: none) instead of the checkpoint's, for fine-tuning. */
  numClasses?: number;
  /** Parameter dtype: 'float32' (the only one tfjs computes in; F16 / BF16 files are widened on load). */
  dtype?: 'float32';
  /** Where warnings go (the CC-BY-NC licence on first download, encoder-only checkpoints). Default console.warn. */
  onWarning?: (message: string) => void;
  /** The registry to look the architecture up in. Default `models`. */
  registry?: ModelRegistry<VisionModel>;
  /** Architecture overrides of the registered model (the family's camelCase names, e.g. `dropPathRate`, `seed`). */
  overrides?: Record<string, unknown>;
}

/** `createModel(name, { pretrained })`: the hub options besides the weights' tag. */
export interface PretrainedCreateOptions extends Omit<FromPretrainedOptions, 'numClasses' | 'registry' | 'overrides'> {
  /** true: the registered default tag; a tag ('fcmae_ft_in22k_in1k') or a full hub id of this architecture. */
  pretrained: true | string;
}

/** What was loaded, besides the model. */
export interface PretrainedInfo {
  /** The hub repository (`timm/convnextv2_atto.fcmae_ft_in1k`). */
  repo: string;
  /** The registered architecture (`convnextv2_atto`). */
  architecture: string;
  /** The tag, when the id names one (`fcmae_ft_in1k`). */
  tag: string | undefined;
  /** The checkpoint had no classifier (the model is headless unless `numClasses` was given). */
  encoderOnly: boolean;
  license: string | null;
  /** The checkpoint's class names (config.json `label_names`), when it has them. */
  labels: string[] | undefined;
  pretrainedConfig: PretrainedConfig;
  /** Whether the weights came from the cache (no download). */
  fromCache: boolean;
  /** Where the weights are cached. */
  location: string;
}

export interface ParsedHubId {
  repo: string;
  /** `<arch>` of `<arch>.<tag>` (the repository name before its first dot). */
  architecture: string;
  tag: string | undefined;
}

/**
 * `timm/convnextv2_atto.fcmae_ft_in1k`, `hf-hub:timm/…`, `https://huggingface.co/timm/…`, or a bare
 * `convnextv2_atto.fcmae_ft_in1k` (the `timm/` organisation) → repository, architecture and tag. A bare
 * registered name (`convit_tiny`) is its default tag.
 */
export function parseHubId(id: string, registry: ModelRegistry<VisionModel> = models): ParsedHubId {
  if (typeof id !== 'string' || id.trim() === '') throw new HubError(`fromPretrained: expected a hub id such as timm/convit_tiny.fb_in1k, got ${JSON.stringify(id)}`, 'id');
  let s = id.trim().replace(/^hf[-_]hub:/, '').replace(/^https?:\/\/huggingface\.co\//, '').replace(/\/+$/, '');
  if (!s.includes('/')) {
    if (!s.includes('.') && registry.has(s)) {
      const tag = defaultTag(registry.get(s));
      if (!tag) throw new HubError(`${s} has no released weights (registered with pretrained weights: ${registry.list({ pretrained: true }).join(', ')})`, 'id');
      s = tag.hubId;
    } else {
      s = `timm/${s}`;
    }
  }
  const name = s.slice(s.indexOf('/') + 1);
  const dot = name.indexOf('.');
  return { repo: s, architecture: dot < 0 ? name : name.slice(0, dot), tag: dot < 0 ? undefined : name.slice(dot + 1) };
}

/** The registered default tag of an entry: the one its `pretrainedConfig.weights` names, else its first. */
export function defaultTag(entry: ModelEntry<VisionModel>): PretrainedTag | undefined {
  const tags = entry.tags ?? [];
  return tags.find((t) => t.hubId === entry.pretrainedConfig.weights) ?? tags[0];
}

const warned = new Set<string>();

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

function labelsOf(config: Record<string, unknown>): string[] | undefined {
  const pc = config['pretrained_cfg'] as Record<string, unknown> | undefined;
  for (const v of [config['label_names'], pc?.['label_names']]) {
    if (Array.isArray(v) && v.length > 0 && v.every((s) => typeof s === 'string')) return [...v];
  }
  return undefined;
}

/**
 * timm's `adapt_input_conv`: a first convolution [O, 3, kh, kw] for `chans` input channels — summed over RGB
 * for one channel; for more, the RGB filters repeated and scaled by 3 / chans.
 */
export function adaptInputConv(e: { data: Float32Array; shape: readonly number[] }, chans: number, label = 'weights'): { data: Float32Array; shape: number[] } {
  const [O, I, kh, kw] = e.shape as [number, number, number, number];
  if (e.shape.length !== 4 || I !== 3) throw new WeightsError(`${label}: cannot adapt a first convolution of shape [${e.shape}] to ${chans} input channels`);
  const k = kh * kw;
  const out = new Float32Array(O * chans * k);
  for (let o = 0; o < O; o++) {
    for (let c = 0; c < chans; c++) {
      for (let j = 0; j < k; j++) {
        let v: number;
        if (chans === 1) v = e.data[(o * 3 + 0) * k + j]! + e.data[(o * 3 + 1) * k + j]! + e.data[(o * 3 + 2) * k + j]!;
        else v = (e.data[(o * 3 + (c % 3)) * k + j]! * 3) / chans;
        out[(o * chans + c) * k + j] = v;
      }
    }
  }
  return { data: out, shape: [O, chans, kh, kw] };
}

/** The checkpoint's normalisation for `chans` channels: the channel average for one, repeated for more. */
function adaptNormalisation(cfg: PretrainedConfig, chans: number): PretrainedConfig {
  if (chans === 3) return cfg;
  const avg = (v: readonly number[]) => v.reduce((a, b) => a + b, 0) / v.length;
  const fit = (v: readonly [number, number, number]) => (chans === 1 ? [avg(v), avg(v), avg(v)] : v) as [number, number, number];
  return { ...cfg, inputSize: [chans, cfg.inputSize[1], cfg.inputSize[2]], mean: fit(cfg.mean), std: fit(cfg.std) };
}

/** A model loaded from the hub by id, and what was loaded. See {@link fromPretrained}. */
export async function fromPretrainedWithInfo(id: string, opts: FromPretrainedOptions = {}): Promise<{ model: VisionModel; info: PretrainedInfo }> {
  const registry = opts.registry ?? models;
  const warn = opts.onWarning ?? ((m: string) => console.warn(m));
  if (opts.dtype !== undefined && opts.dtype !== 'float32') {
    throw new RangeError(`fromPretrained: dtype '${String(opts.dtype)}' is not supported: models compute in float32 (F16 / BF16 files are widened when loaded)`);
  }
  if (opts.numClasses !== undefined && !(Number.isInteger(opts.numClasses) && opts.numClasses >= 0)) {
    throw new RangeError(`fromPretrained: numClasses must be an integer ≥ 0, got ${opts.numClasses}`);
  }
  const parsed = parseHubId(id, registry);
  const { repo } = parsed;
  const { registry: _r, numClasses, dtype: _d, onWarning: _w, overrides: _o, ...hub } = opts;
  // config.json: architecture, num_classes, pretrained_cfg and label names (timm writes one in every repo).
  let config: Record<string, unknown> = {};
  try {
    const file = await hubDownload(repo, 'config.json', hub);
    const parsedJson: unknown = JSON.parse(new TextDecoder().decode(file.bytes));
    if (parsedJson === null || typeof parsedJson !== 'object' || Array.isArray(parsedJson)) throw new SyntaxError('not a JSON object');
    config = parsedJson as Record<string, unknown>;
  } catch (e) {
    if (e instanceof SyntaxError) throw new HubError(`${repo}/config.json is not a JSON object (${e.message})`, 'content', { repo, file: 'config.json' });
    // A repository without config.json still loads when its id names a registered architecture and tag.
    if (!(e instanceof HubError && e.kind === 'not-found' && registry.has(parsed.architecture))) throw e;
  }
  const architecture = typeof config['architecture'] === 'string' ? config['architecture'] : parsed.architecture;
  if (!registry.has(architecture)) {
    const known = registry
      .list({ pretrained: true })
      .flatMap((n) => (registry.get(n).tags ?? []).map((t) => t.hubId))
      .join(', ');
    throw new HubError(`${repo} holds a '${architecture}', which is not a registered architecture; registered checkpoints: ${known}`, 'id', { repo });
  }
  const entry = registry.get(architecture);
  const tags = entry.tags ?? [];
  const known = tags.find((t) => t.hubId === repo) ?? (parsed.architecture === architecture ? tags.find((t) => t.tag === parsed.tag) : undefined);
  const pcRaw = (config['pretrained_cfg'] ?? {}) as Record<string, unknown>;
  let pretrainedConfig = known?.pretrainedConfig ?? pretrainedConfigFromTimm({ ...pcRaw, ...(num(config['num_classes']) !== undefined ? { num_classes: config['num_classes'] } : {}) }, { ...entry.pretrainedConfig, weights: repo });
  const labels = labelsOf(config);
  const license = pretrainedConfig.license ?? (typeof pcRaw['license'] === 'string' ? pcRaw['license'] : null);

  const weights = await hubDownload(repo, 'model.safetensors', hub);
  if (!weights.fromCache && license && /(^|-)nc(-|$)/i.test(license) && !warned.has(repo)) {
    warned.add(repo);
    warn(`${repo}: these weights are licensed ${license} (non-commercial use only: https://creativecommons.org/licenses/by-nc/4.0/)`);
  }
  const w = await readWeights(weights.bytes, { label: `${repo}/model.safetensors` });
  const classifierKey = `${pretrainedConfig.classifier}.weight`;
  const fileClasses = w.shape(classifierKey)?.[0];
  const encoderOnly = known?.encoderOnly !== undefined || (fileClasses === undefined && pretrainedConfig.numClasses === 0);
  const model = entry.create({ ...(opts.overrides ?? {}), numClasses: encoderOnly ? 0 : (fileClasses ?? pretrainedConfig.numClasses) });
  try {
    // Another number of input channels (e.g. { inChans: 1 } for grey images): the first convolution adapted as timm's adapt_input_conv.
    const firstKey = `${pretrainedConfig.firstConv}.weight`;
    const fileChans = w.shape(firstKey)?.[1];
    const modelChans = model.namedParameters().find(([k]) => k === firstKey)?.[1].torchShape[1];
    let source: WeightsFile | Map<string, StateDictEntry> = w;
    if (fileChans !== undefined && modelChans !== undefined && fileChans !== modelChans) {
      const sd = w.stateDict();
      sd.set(firstKey, adaptInputConv(sd.get(firstKey) as { data: Float32Array; shape: number[] }, modelChans, w.label));
      source = sd;
      pretrainedConfig = adaptNormalisation(pretrainedConfig, modelChans);
    }
    const res = await model.loadWeights(source, { strict: !encoderOnly });
    if (encoderOnly) {
      const absent = known?.encoderOnly?.absent ?? [`${pretrainedConfig.classifier}.`];
      const missing = res.missing.filter((k) => !absent.some((p) => k.startsWith(p)));
      if (missing.length || res.unexpected.length) {
        throw new WeightsError(
          `${w.label} does not fit ${architecture} as an encoder:` +
            (missing.length ? ` missing ${missing.slice(0, 8).join(', ')}${missing.length > 8 ? ', …' : ''}` : '') +
            (res.unexpected.length ? ` unexpected ${res.unexpected.slice(0, 8).join(', ')}${res.unexpected.length > 8 ? ', …' : ''}` : ''),
        );
      }
      warn(
        `${repo} is ${known?.encoderOnly?.note ?? 'an encoder without a classifier'}: the model is headless (numClasses 0, forward returns ` +
          `pooled features)${numClasses ? `; a new ${numClasses}-class classifier was added for fine-tuning` : '; pass { numClasses } for a new classifier to fine-tune'}`,
      );
    }
    if (numClasses !== undefined && numClasses !== model.numClasses) model.resetClassifier(numClasses);
  } catch (e) {
    model.dispose();
    throw e;
  }
  if (labels) pretrainedConfig = { ...pretrainedConfig, labelNames: labels };
  // The tag's preprocessing (its input size, crop, normalisation), with this model's channels and classes.
  setPretrainedConfig(model, pretrainedConfig);
  return {
    model,
    info: {
      repo,
      architecture,
      tag: known?.tag ?? (parsed.architecture === architecture ? parsed.tag : undefined),
      encoderOnly,
      license,
      labels,
      pretrainedConfig: model.pretrainedConfig,
      fromCache: weights.fromCache,
      location: weights.location,
    },
  };
}

/**
 * A pretrained model by hub id: `fromPretrained('timm/convnextv2_atto.fcmae_ft_in1k')`, any timm checkpoint
 * of a registered architecture (`timm/` may be left out; a bare registered name takes its default tag).
 * Fetches the repository's `config.json` and `model.safetensors` (cached: see `HubOptions`), builds the
 * registered architecture and loads the weights strictly. `numClasses` replaces the classifier (fine-tuning);
 * encoder-only tags (ConvNeXt V2 `.fcmae`) give a headless model and say so through `onWarning`. The
 * model's `pretrainedConfig` is the checkpoint's (input size, crop, mean / std, licence, label names).
 */
export async function fromPretrained(id: string, opts: FromPretrainedOptions = {}): Promise<VisionModel> {
  return (await fromPretrainedWithInfo(id, opts)).model;
}

const HUB_OPTIONS = new Set(['endpoint', 'revision', 'offline', 'cache', 'token', 'onProgress', 'signal', 'timeoutMs', 'retries', 'fetch', 'onWarning', 'dtype']);

/**
 * What a family's `createModel(name, { pretrained, …options })` does: the hub id of `name`'s default tag
 * (`pretrained: true`), of a tag of it, or a full id of the same architecture; hub options (`offline`,
 * `onProgress`, …) go to the hub, `numClasses` replaces the classifier, the rest are architecture overrides.
 */
export async function createPretrained<M extends VisionModel = VisionModel>(
  name: string,
  options: PretrainedCreateOptions & { numClasses?: number } & Record<string, unknown>,
  registry: ModelRegistry<VisionModel> = models,
): Promise<M> {
  const { pretrained, numClasses, ...rest } = options;
  const entry = registry.get(name);
  let id: string;
  if (pretrained === true) {
    const tag = defaultTag(entry);
    if (!tag) throw new HubError(`${name} has no released weights; registered with weights: ${registry.list({ pretrained: true }).join(', ')}`, 'id');
    id = tag.hubId;
  } else if (typeof pretrained === 'string' && pretrained !== '') {
    id = pretrained.includes('/') || pretrained.startsWith(`${name}.`) ? pretrained : `timm/${name}.${pretrained.replace(/^\./, '')}`;
  } else {
    throw new TypeError(`createModel: pretrained must be true, a tag or a hub id, got ${JSON.stringify(pretrained)}`);
  }
  const parsed = parseHubId(id, registry);
  if (parsed.architecture !== name) throw new HubError(`createModel('${name}'): '${id}' holds a ${parsed.architecture}, not a ${name}`, 'id');
  const hub: Record<string, unknown> = {};
  const overrides: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(rest)) (HUB_OPTIONS.has(k) ? hub : overrides)[k] = v;
  return (await fromPretrained(id, {
    ...(hub as Omit<FromPretrainedOptions, 'registry' | 'overrides' | 'numClasses'>),
    ...(numClasses !== undefined ? { numClasses } : {}),
    overrides,
    registry,
  })) as M;
}
