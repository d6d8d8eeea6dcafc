/**
 * ConvNeXt V2 architectures (the official family), their pretrained-weights configs, and parameter counts
 * computed from the shapes alone.
 */
import {
  IMAGENET_DEFAULT_MEAN,
  IMAGENET_DEFAULT_STD,
  imagenetConfig,
  type PretrainedConfig as SharedPretrainedConfig,
} from '@softbias/tensor-ops/models';

/** The family name of ConvNeXt V2 classifiers in the model registry and in weights files. */
export const FAMILY = 'convnextv2';

/** Architecture of a ConvNeXt V2 classifier. */
export interface ConvNeXtV2Config {
  /** Registered name this config came from (or 'convnextv2_custom'). */
  name: string;
  /** Blocks per stage (4 stages). */
  depths: [number, number, number, number];
  /** Channels per stage. */
  dims: [number, number, number, number];
  inChans: number;
  /** Classifier outputs; 0 = no classifier (`forward` returns the pooled, normalised features). */
  numClasses: number;
  /** Stochastic depth, linearly increasing from 0 to this over all blocks (timm / official). */
  dropPathRate: number;
  /** The classifier's initial weights (and bias) are multiplied by this (official `head_init_scale`). */
  headInitScale: number;
  /**
   * How the block MLP is stored in timm checkpoints: 1×1 conv weights `(out, in, 1, 1)` (timm's
   * atto/femto/pico/nano) or Linear `(out, in)` (tiny and larger, and the official code). Same math; it only
   * decides the shape `saveWeights` writes. Loading accepts both.
   */
  convMlp: boolean;
}

/**
 * What the published weights for an architecture expect, in this package's first form (`inputSize` [H, W]).
 * @deprecated Use `ModelEntry.pretrainedConfig` / `ConvNeXtV2.pretrainedConfig`, the shared
 * `PretrainedConfig` of `@softbias/tensor-ops/models` (`inputSize` [C, H, W], as timm).
 */
export interface PretrainedConfig {
  /** Training resolution [H, W]. */
  inputSize: [number, number];
  /** Evaluation resolution timm recommends for the fine-tuned weights. */
  testInputSize: [number, number];
  /** Centre-crop fraction at `inputSize` (resize the shorter side to size / cropPct, then crop). */
  cropPct: number;
  testCropPct: number;
  interpolation: 'bicubic';
  mean: [number, number, number];
  std: [number, number, number];
  numClasses: number;
  /** Licence of the reference weights (facebookresearch/ConvNeXt-V2 and timm's ports). */
  license: string;
  /** Where the reference weights live. */
  source: string;
}

export interface ModelEntry {
  name: string;
  depths: [number, number, number, number];
  dims: [number, number, number, number];
  convMlp: boolean;
  /** Parameter count the ConvNeXt V2 paper lists (Table 9 / Fig. 1), in millions. */
  paperParamsM: number;
  /** timm's pretrained config of the reference weights (the shared type of every family). */
  pretrainedConfig: SharedPretrainedConfig;
  /** @deprecated The same in the first form ([H, W] sizes): use `pretrainedConfig`. */
  pretrained: PretrainedConfig;
}

/** @deprecated Use `IMAGENET_DEFAULT_MEAN` from `@softbias/tensor-ops/models`. */
export const IMAGENET_MEAN: [number, number, number] = [...IMAGENET_DEFAULT_MEAN];
/** @deprecated Use `IMAGENET_DEFAULT_STD` from `@softbias/tensor-ops/models`. */
export const IMAGENET_STD: [number, number, number] = [...IMAGENET_DEFAULT_STD];

/** The shared pretrained config of a registered size (timm `convnextv2_<size>.fcmae_ft_in1k`). */
function sharedPretrained(size: string): SharedPretrainedConfig {
  return imagenetConfig({
    inputSize: [3, 224, 224],
    testInputSize: [3, 288, 288],
    cropPct: 0.875,
    testCropPct: 0.95,
    weights: `timm/convnextv2_${size}.fcmae_ft_in1k`,
    license: 'CC-BY-NC-4.0',
    firstConv: 'stem.0',
    classifier: 'head.fc',
  });
}

/** The pretrained config of a custom architecture: ImageNet normalisation at 224 px, no reference weights. */
export function customPretrainedConfig(numClasses: number, inChans = 3): SharedPretrainedConfig {
  return imagenetConfig({ inputSize: [inChans, 224, 224], numClasses, firstConv: 'stem.0', classifier: 'head.fc' });
}

function pretrained(): PretrainedConfig {
  return {
    inputSize: [224, 224],
    testInputSize: [288, 288],
    cropPct: 0.875,
    testCropPct: 0.95,
    interpolation: 'bicubic',
    mean: IMAGENET_MEAN,
    std: IMAGENET_STD,
    numClasses: 1000,
    license: 'CC-BY-NC-4.0',
    source: 'https://github.com/facebookresearch/ConvNeXt-V2 (timm: convnextv2_<size>.fcmae_ft_in1k)',
  };
}

function entry(
  size: string,
  depths: [number, number, number, number],
  dims: [number, number, number, number],
  convMlp: boolean,
  paperParamsM: number,
): ModelEntry {
  return { name: `convnextv2_${size}`, depths, dims, convMlp, paperParamsM, pretrainedConfig: sharedPretrained(size), pretrained: pretrained() };
}

/** The registry, smallest first. */
export const MODELS: readonly ModelEntry[] = [
  entry('atto', [2, 2, 6, 2], [40, 80, 160, 320], true, 3.7),
  entry('femto', [2, 2, 6, 2], [48, 96, 192, 384], true, 5.2),
  entry('pico', [2, 2, 6, 2], [64, 128, 256, 512], true, 9.1),
  entry('nano', [2, 2, 8, 2], [80, 160, 320, 640], true, 15.6),
  entry('tiny', [3, 3, 9, 3], [96, 192, 384, 768], false, 28.6),
  entry('base', [3, 3, 27, 3], [128, 256, 512, 1024], false, 89),
  entry('large', [3, 3, 27, 3], [192, 384, 768, 1536], false, 198),
  entry('huge', [3, 3, 27, 3], [352, 704, 1408, 2816], false, 660),
];

/** Registered model names. */
export function listModels(): string[] {
  return MODELS.map((m) => m.name);
}

export function getModelEntry(name: string): ModelEntry {
  const e = MODELS.find((m) => m.name === name);
  if (!e) throw new Error(`unknown ConvNeXt V2 model '${name}'; registered: ${listModels().join(', ')}`);
  return e;
}

/** User overrides of a registered architecture (timm / official constructor arguments, camelCase). */
export interface ConvNeXtV2Overrides {
  numClasses?: number;
  inChans?: number;
  depths?: readonly number[];
  dims?: readonly number[];
  dropPathRate?: number;
  headInitScale?: number;
  convMlp?: boolean;
}

function four(what: string, v: readonly number[]): [number, number, number, number] {
  if (v.length !== 4 || v.some((n) => !Number.isInteger(n) || n < 1)) {
    throw new Error(`ConvNeXt V2: ${what} must be 4 positive integers (one per stage), got [${v}]`);
  }
  return [v[0]!, v[1]!, v[2]!, v[3]!];
}

/** The full config of `name` with `overrides` applied and checked. */
export function resolveConfig(name: string, overrides: ConvNeXtV2Overrides = {}): ConvNeXtV2Config {
  const known = MODELS.find((m) => m.name === name);
  if (!known && name !== 'convnextv2_custom') getModelEntry(name);
  const base = known ?? MODELS[0]!;
  const cfg: ConvNeXtV2Config = {
    name,
    depths: four('depths', overrides.depths ?? base.depths),
    dims: four('dims', overrides.dims ?? base.dims),
    inChans: overrides.inChans ?? 3,
    numClasses: overrides.numClasses ?? base.pretrained.numClasses,
    dropPathRate: overrides.dropPathRate ?? 0,
    headInitScale: overrides.headInitScale ?? 1,
    convMlp: overrides.convMlp ?? base.convMlp,
  };
  if (!Number.isInteger(cfg.inChans) || cfg.inChans < 1) throw new Error(`ConvNeXt V2: inChans must be ≥ 1, got ${cfg.inChans}`);
  if (!Number.isInteger(cfg.numClasses) || cfg.numClasses < 0) {
    throw new Error(`ConvNeXt V2: numClasses must be an integer ≥ 0, got ${cfg.numClasses}`);
  }
  if (!(cfg.dropPathRate >= 0 && cfg.dropPathRate < 1)) {
    throw new Error(`ConvNeXt V2: dropPathRate must be in [0, 1), got ${cfg.dropPathRate}`);
  }
  if (!Number.isFinite(cfg.headInitScale)) throw new Error(`ConvNeXt V2: headInitScale must be finite`);
  return cfg;
}

/** Parameter tensors of a config, as [timm key, PyTorch shape], in state_dict order, without allocating. */
export function parameterShapes(cfg: Pick<ConvNeXtV2Config, 'depths' | 'dims' | 'inChans' | 'numClasses' | 'convMlp'>): [string, number[]][] {
  const out: [string, number[]][] = [];
  const { dims, depths } = cfg;
  const d0 = dims[0];
  out.push(['stem.0.weight', [d0, cfg.inChans, 4, 4]], ['stem.0.bias', [d0]], ['stem.1.weight', [d0]], ['stem.1.bias', [d0]]);
  for (let i = 0; i < 4; i++) {
    const C = dims[i]!;
    if (i > 0) {
      const P = dims[i - 1]!;
      const ds = `stages.${i}.downsample`;
      out.push([`${ds}.0.weight`, [P]], [`${ds}.0.bias`, [P]], [`${ds}.1.weight`, [C, P, 2, 2]], [`${ds}.1.bias`, [C]]);
    }
    const fc = (o: number, n: number) => (cfg.convMlp ? [o, n, 1, 1] : [o, n]);
    for (let j = 0; j < depths[i]!; j++) {
      const b = `stages.${i}.blocks.${j}`;
      out.push(
        [`${b}.conv_dw.weight`, [C, 1, 7, 7]],
        [`${b}.conv_dw.bias`, [C]],
        [`${b}.norm.weight`, [C]],
        [`${b}.norm.bias`, [C]],
        [`${b}.mlp.fc1.weight`, fc(4 * C, C)],
        [`${b}.mlp.fc1.bias`, [4 * C]],
        [`${b}.mlp.grn.weight`, [4 * C]],
        [`${b}.mlp.grn.bias`, [4 * C]],
        [`${b}.mlp.fc2.weight`, fc(C, 4 * C)],
        [`${b}.mlp.fc2.bias`, [C]],
      );
    }
  }
  const d3 = dims[3];
  out.push(['head.norm.weight', [d3]], ['head.norm.bias', [d3]]);
  if (cfg.numClasses > 0) out.push(['head.fc.weight', [cfg.numClasses, d3]], ['head.fc.bias', [cfg.numClasses]]);
  return out;
}

/** Number of parameters of a config (or a registered name with overrides), from the shapes alone. */
export function countParameters(
  cfgOrName: string | Pick<ConvNeXtV2Config, 'depths' | 'dims' | 'inChans' | 'numClasses' | 'convMlp'>,
  overrides: ConvNeXtV2Overrides = {},
): number {
  const cfg = typeof cfgOrName === 'string' ? resolveConfig(cfgOrName, overrides) : cfgOrName;
  return parameterShapes(cfg).reduce((n, [, s]) => n + s.reduce((a, b) => a * b, 1), 0);
}
