/** timm's pretrained (data) config of a model, and the ImageNet normalisation constants. */

/** ImageNet channel means (RGB, 0–1 scale): timm's `IMAGENET_DEFAULT_MEAN`. */
export const IMAGENET_DEFAULT_MEAN: readonly [number, number, number] = [0.485, 0.456, 0.406];
/** ImageNet channel standard deviations (RGB, 0–1 scale): timm's `IMAGENET_DEFAULT_STD`. */
export const IMAGENET_DEFAULT_STD: readonly [number, number, number] = [0.229, 0.224, 0.225];

/** What a model's inputs must look like (timm's `pretrained_cfg`), the same type for every family. */
export interface PretrainedConfig {
  /** [C, H, W] of the training (and default eval) input, as timm's `input_size`. */
  inputSize: readonly [number, number, number];
  /** [C, H, W] timm recommends for evaluation when it differs from `inputSize` (`test_input_size`). */
  testInputSize?: readonly [number, number, number];
  /** Eval crop fraction: resize the short side to ⌊size / cropPct⌋, then centre-crop `size`. */
  cropPct: number;
  /** Crop fraction at `testInputSize`. */
  testCropPct?: number;
  /**
   * timm's `crop_mode`: 'center' (default: resize the short side to ⌊size / cropPct⌋, keeping the aspect
   * ratio, then centre-crop) or 'squash' (resize both sides to ⌊size / cropPct⌋, ignoring the aspect ratio,
   * then centre-crop: timm's 384 / 512 px fine-tunes).
   */
  cropMode?: 'center' | 'squash';
  interpolation: 'bicubic' | 'bilinear';
  mean: readonly [number, number, number];
  std: readonly [number, number, number];
  numClasses: number;
  /** Where the reference weights live (a Hugging Face hub id or URL), or null when none were released. */
  weights: string | null;
  /** Licence of those weights, or null when there are none. */
  license: string | null;
  /** timm's `first_conv` and `classifier`: the state-dict prefixes of the first convolution and the classifier. */
  firstConv: string;
  classifier: string;
  /** The checkpoint's own class names (timm's `label_names`), when it has them; `classify` uses them. */
  labelNames?: readonly string[];
}

/** An ImageNet-1k pretrained config at 224 px (crop 0.875, bicubic) with the given fields replaced. */
export function imagenetConfig(overrides: Partial<PretrainedConfig> & Pick<PretrainedConfig, 'firstConv' | 'classifier'>): PretrainedConfig {
  return {
    inputSize: [3, 224, 224],
    cropPct: 0.875,
    interpolation: 'bicubic',
    mean: IMAGENET_DEFAULT_MEAN,
    std: IMAGENET_DEFAULT_STD,
    numClasses: 1000,
    weights: null,
    license: null,
    ...overrides,
  };
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}
function triple(v: unknown): [number, number, number] | undefined {
  return Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === 'number' && Number.isFinite(x)) ? [v[0], v[1], v[2]] : undefined;
}

/** timm's `pretrained_cfg` (snake_case, in a hub config.json) over a base config. */
export function pretrainedConfigFromTimm(cfg: Record<string, unknown>, base: PretrainedConfig): PretrainedConfig {
  const out: PretrainedConfig = { ...base };
  const input = triple(cfg['input_size']);
  if (input) out.inputSize = input;
  const test = triple(cfg['test_input_size']);
  if (test) out.testInputSize = test;
  const crop = num(cfg['crop_pct']);
  if (crop !== undefined) out.cropPct = crop;
  const testCrop = num(cfg['test_crop_pct']);
  if (testCrop !== undefined) out.testCropPct = testCrop;
  if (cfg['interpolation'] === 'bicubic' || cfg['interpolation'] === 'bilinear') out.interpolation = cfg['interpolation'];
  if (cfg['crop_mode'] === 'squash' || cfg['crop_mode'] === 'center') out.cropMode = cfg['crop_mode'];
  const mean = triple(cfg['mean']);
  if (mean) out.mean = mean;
  const std = triple(cfg['std']);
  if (std) out.std = std;
  const nc = num(cfg['num_classes']);
  if (nc !== undefined) out.numClasses = nc;
  if (typeof cfg['license'] === 'string') out.license = cfg['license'];
  if (typeof cfg['first_conv'] === 'string') out.firstConv = cfg['first_conv'];
  if (typeof cfg['classifier'] === 'string') out.classifier = cfg['classifier'];
  return out;
}

/** A config in timm's `pretrained_cfg` form (snake_case): what `writeWeights` stores as `__metadata__.pretrained_cfg`. */
export function pretrainedConfigToTimm(cfg: PretrainedConfig): Record<string, unknown> {
  return {
    input_size: [...cfg.inputSize],
    ...(cfg.testInputSize ? { test_input_size: [...cfg.testInputSize] } : {}),
    crop_pct: cfg.cropPct,
    ...(cfg.testCropPct !== undefined ? { test_crop_pct: cfg.testCropPct } : {}),
    ...(cfg.cropMode ? { crop_mode: cfg.cropMode } : {}),
    interpolation: cfg.interpolation,
    mean: [...cfg.mean],
    std: [...cfg.std],
    num_classes: cfg.numClasses,
    first_conv: cfg.firstConv,
    classifier: cfg.classifier,
    ...(cfg.license ? { license: cfg.license } : {}),
  };
}

/**
 * `__metadata__.pretrained_cfg` of a weights file (timm's snake_case JSON) checked field by field: an error
 * names the field that is not what timm writes (a hostile or corrupt file fails here, not in preprocessing).
 */
export function parsePretrainedCfgMetadata(raw: string, label: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    throw new RangeError(`${label}: __metadata__.pretrained_cfg is not valid JSON`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new RangeError(`${label}: __metadata__.pretrained_cfg is not a JSON object`);
  const o = v as Record<string, unknown>;
  const bad = (field: string, want: string) => new RangeError(`${label}: __metadata__.pretrained_cfg.${field} must be ${want}, got ${JSON.stringify(o[field])}`);
  for (const f of ['input_size', 'test_input_size']) {
    const t = o[f] === undefined ? undefined : triple(o[f]);
    if (o[f] !== undefined && (!t || !t.every((x) => Number.isInteger(x) && x >= 1 && x <= 8192))) throw bad(f, '[C, H, W] of positive integers');
  }
  for (const f of ['mean', 'std']) {
    const t = o[f] === undefined ? undefined : triple(o[f]);
    if (o[f] !== undefined && (!t || (f === 'std' && !t.every((x) => x > 0)))) throw bad(f, f === 'std' ? '3 positive numbers' : '3 finite numbers');
  }
  for (const f of ['crop_pct', 'test_crop_pct']) {
    const c = num(o[f]);
    if (o[f] !== undefined && (c === undefined || c <= 0 || c > 2)) throw bad(f, 'a number in (0, 2]');
  }
  if (o['interpolation'] !== undefined && o['interpolation'] !== 'bicubic' && o['interpolation'] !== 'bilinear') throw bad('interpolation', "'bicubic' or 'bilinear'");
  if (o['crop_mode'] !== undefined && o['crop_mode'] !== 'center' && o['crop_mode'] !== 'squash') throw bad('crop_mode', "'center' or 'squash'");
  return o;
}

const explicit = new WeakSet<object>();

/**
 * What `setPretrainedConfig` takes: a config's fields, with `mean` / `std` as one value per channel of the
 * model's input or as timm's three (one value, a grey model's statistics, is stored as timm stores it: repeated).
 */
export type PretrainedConfigUpdate = Omit<Partial<PretrainedConfig>, 'mean' | 'std'> & {
  mean?: readonly number[];
  std?: readonly number[];
};

function statTriple(what: 'mean' | 'std', v: readonly number[], positive: boolean): [number, number, number] {
  if (!Array.isArray(v) || (v.length !== 1 && v.length !== 3)) {
    throw new RangeError(`setPretrainedConfig: ${what} takes 1 or 3 values (one per channel), got ${Array.isArray(v) ? v.length : typeof v}`);
  }
  for (const x of v) {
    if (typeof x !== 'number' || !Number.isFinite(x) || (positive && x <= 0)) {
      throw new RangeError(`setPretrainedConfig: ${what} values must be finite${positive ? ' and > 0' : ''} numbers, got ${JSON.stringify(v)}`);
    }
  }
  return [v[0]!, v[v.length === 3 ? 1 : 0]!, v[v.length === 3 ? 2 : 0]!];
}

/**
 * A config's normalisation with one value per input channel (its `inputSize[0]` unless `channels` is given):
 * timm keeps three values even for a grey model, whose one channel takes the first.
 */
export function channelNormalisation(
  cfg: Pick<PretrainedConfig, 'mean' | 'std' | 'inputSize'>,
  channels: number = cfg.inputSize[0],
): { mean: number[]; std: number[] } {
  const per = (v: readonly number[]) => Array.from({ length: channels }, (_, i) => v[i % v.length]!);
  return { mean: per(cfg.mean), std: per(cfg.std) };
}

/**
 * Give a model the preprocessing it was trained with (input size, crop, mean / std, interpolation): it becomes
 * the model's `pretrainedConfig` (with its current classes), `classify` / `preprocess` use it, and
 * `saveWeights` / `writeWeights` store it as `__metadata__.pretrained_cfg`, which `models.fromFile` reads
 * back. `fromPretrained` sets the checkpoint's this way; set it after fine-tuning at another size or
 * normalisation, before saving.
 */
export function setPretrainedConfig(model: object, update: PretrainedConfigUpdate): void {
  const m = model as { pretrainedConfig?: PretrainedConfig; numClasses?: number };
  const base = m.pretrainedConfig;
  if (!base) throw new TypeError('setPretrainedConfig: the model has no pretrainedConfig to start from');
  const { mean, std, ...rest } = update;
  const cfg: Partial<PretrainedConfig> = { ...rest };
  if (mean !== undefined) cfg.mean = statTriple('mean', mean, false);
  if (std !== undefined) cfg.std = statTriple('std', std, true);
  const full: PretrainedConfig = { ...base, ...cfg };
  Object.defineProperty(model, 'pretrainedConfig', {
    configurable: true,
    enumerable: true,
    get: () => {
      const n = m.numClasses ?? full.numClasses;
      return { ...full, numClasses: n, ...(n === full.numClasses ? {} : { labelNames: undefined }) };
    },
  });
  explicit.add(model);
}

/** The preprocessing `writeWeights` stores for a module: set by `setPretrainedConfig` (or loaded), else none. */
export function explicitPretrainedConfig(model: object): PretrainedConfig | undefined {
  return explicit.has(model) ? (model as { pretrainedConfig: PretrainedConfig }).pretrainedConfig : undefined;
}
