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
