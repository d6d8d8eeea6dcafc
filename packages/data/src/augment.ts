/**
 * Per-sample augmentation and normalisation on the host, from uint8 HWC pixels straight into a float32 batch.
 * Computed in JavaScript with the seeded `Rng`, so a batch is the same on every backend and a resumed run
 * sees the same images.
 */
import type { Rng } from '@softbias/tensor-ops';

export type CropSpec =
  /** torchvision `RandomCrop(size, padding)`: pad by `padding` (zeros, or reflection), crop a random window back. */
  | { kind: 'pad-crop'; padding: number; fill?: 'zero' | 'reflect' }
  /**
   * torchvision `RandomResizedCrop`'s box (`get_params`: random area fraction in `scale`, aspect ratio in `ratio`),
   * then a bilinear resize WITHOUT antialiasing (torchvision's `antialias=False`; torchvision ≥ 0.17 antialiases by
   * default, which differs only when the crop is larger than the output, i.e. when downscaling).
   */
  | { kind: 'random-resized-crop'; scale?: readonly [number, number]; ratio?: readonly [number, number] };

export interface AugmentOptions {
  crop?: CropSpec;
  /** Horizontal flip probability (true = 0.5). */
  hflip?: boolean | number;
}

/**
 * The training augmentation softbias' trainers use (CLI `train`, the demo and study, the web fine-tune): at
 * the data's own size a padded random crop (torchvision `RandomCrop(size, padding)`, padding
 * max(2, round(H / 16)): 2 px on 28–32 px images) and a horizontal flip; at another output size (a checkpoint's
 * input size, ConvNeXt V2's 32 px minimum on 28 px images) a random resized crop of 50–100% of the area and a flip.
 */
export function trainingAugment(dataSize: readonly [number, number], outputSize: readonly [number, number] = dataSize): AugmentOptions {
  if (outputSize[0] !== dataSize[0] || outputSize[1] !== dataSize[1]) return { crop: { kind: 'random-resized-crop', scale: [0.5, 1] }, hflip: true };
  return { crop: { kind: 'pad-crop', padding: Math.max(2, Math.round(dataSize[0] / 16)) }, hflip: true };
}

export interface Normalization {
  /** Per-channel mean of pixels scaled to [0, 1] (one value applies to every channel). */
  mean?: readonly number[];
  std?: readonly number[];
}

/** A crop window in source pixels: top, left, height, width. */
export interface CropBox {
  top: number;
  left: number;
  height: number;
  width: number;
}

/** Python's `round` (half to even), which torchvision's `int(round(...))` uses. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * torchvision's `RandomResizedCrop.get_params`: up to 10 tries of area ~ U(scale)·H·W and aspect ratio
 * exp(U(log ratio)), sides rounded half to even (Python's `round`), kept if they fit; top then left uniform
 * among the positions; after 10 misses a centred crop with the ratio clamped to `ratio` (or the whole image).
 */
export function randomResizedCropBox(
  H: number,
  W: number,
  rng: Rng,
  scale: readonly [number, number] = [0.08, 1],
  ratio: readonly [number, number] = [3 / 4, 4 / 3],
): CropBox {
  if (!(scale[0] > 0 && scale[0] <= scale[1] && scale[1] <= 1)) throw new RangeError(`random-resized-crop: bad scale [${scale}]`);
  if (!(ratio[0] > 0 && ratio[0] <= ratio[1])) throw new RangeError(`random-resized-crop: bad ratio [${ratio}]`);
  const area = H * W;
  const logR0 = Math.log(ratio[0]);
  const logR1 = Math.log(ratio[1]);
  for (let attempt = 0; attempt < 10; attempt++) {
    const target = area * (scale[0] + (scale[1] - scale[0]) * rng.random());
    const aspect = Math.exp(logR0 + (logR1 - logR0) * rng.random());
    const w = roundHalfEven(Math.sqrt(target * aspect));
    const h = roundHalfEven(Math.sqrt(target / aspect));
    if (w > 0 && w <= W && h > 0 && h <= H) {
      const top = rng.int(H - h + 1);
      const left = rng.int(W - w + 1);
      return { top, left, height: h, width: w };
    }
  }
  const inRatio = W / H;
  let w: number;
  let h: number;
  if (inRatio < ratio[0]) {
    w = W;
    h = roundHalfEven(w / ratio[0]);
  } else if (inRatio > ratio[1]) {
    h = H;
    w = roundHalfEven(h * ratio[1]);
  } else {
    w = W;
    h = H;
  }
  return { top: Math.floor((H - h) / 2), left: Math.floor((W - w) / 2), height: h, width: w };
}

/** Source taps and weights per output index (PyTorch bilinear, align_corners = false, no antialias). */
function bilinearTaps(outSize: number, inStart: number, inSize: number): { i0: Int32Array; i1: Int32Array; t: Float64Array } {
  const scale = inSize / outSize;
  const i0 = new Int32Array(outSize);
  const i1 = new Int32Array(outSize);
  const t = new Float64Array(outSize);
  for (let o = 0; o < outSize; o++) {
    const s = Math.max(0, (o + 0.5) * scale - 0.5);
    const f = Math.min(Math.floor(s), inSize - 1);
    i0[o] = inStart + f;
    i1[o] = inStart + Math.min(f + 1, inSize - 1);
    t[o] = s - f;
  }
  return { i0, i1, t };
}

/**
 * Bilinear resize of a uint8 HWC image region (default the whole image) to [outH, outW]; float output in
 * pixel units (0–255), PyTorch `interpolate(mode='bilinear', align_corners=False)` semantics.
 */
export function resizeBilinear(
  src: Uint8Array,
  [H, W, C]: readonly [number, number, number],
  outH: number,
  outW: number,
  box: CropBox = { top: 0, left: 0, height: H, width: W },
): Float32Array {
  const ys = bilinearTaps(outH, box.top, box.height);
  const xs = bilinearTaps(outW, box.left, box.width);
  const out = new Float32Array(outH * outW * C);
  for (let y = 0; y < outH; y++) {
    const r0 = ys.i0[y]! * W;
    const r1 = ys.i1[y]! * W;
    const ty = ys.t[y]!;
    for (let x = 0; x < outW; x++) {
      const c0 = xs.i0[x]!;
      const c1 = xs.i1[x]!;
      const tx = xs.t[x]!;
      for (let c = 0; c < C; c++) {
        const p00 = src[(r0 + c0) * C + c]!;
        const p01 = src[(r0 + c1) * C + c]!;
        const p10 = src[(r1 + c0) * C + c]!;
        const p11 = src[(r1 + c1) * C + c]!;
        const top = p00 + (p01 - p00) * tx;
        const bot = p10 + (p11 - p10) * tx;
        out[(y * outW + x) * C + c] = top + (bot - top) * ty;
      }
    }
  }
  return out;
}

/** Validated normalisation: value = (pixel / 255 − mean_c) / std_c  as  pixel · scale_c + shift_c. */
export function normalizationCoefficients(C: number, norm: Normalization): { scale: Float64Array; shift: Float64Array } {
  const pick = (arr: readonly number[] | undefined, dflt: number, name: string) => {
    if (!arr) return new Float64Array(C).fill(dflt);
    if (arr.length !== 1 && arr.length !== C) throw new Error(`normalisation: ${name} has ${arr.length} values for ${C} channels`);
    return Float64Array.from({ length: C }, (_, c) => arr[arr.length === 1 ? 0 : c]!);
  };
  const mean = pick(norm.mean, 0, 'mean');
  const std = pick(norm.std, 1, 'std');
  for (const s of std) if (!(s > 0)) throw new Error(`normalisation: std must be positive, got ${s}`);
  return { scale: mean.map((_, c) => 1 / (255 * std[c]!)), shift: mean.map((m, c) => -m / std[c]!) };
}

function reflect(i: number, n: number): number {
  if (n === 1) return 0;
  while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
  return i;
}

/**
 * Render one sample into `out` at `offset` ([outH, outW, C] float32): crop (random when `rng` and a crop
 * are given), flip, normalise. Draw order per sample: crop parameters, then the flip.
 */
export function renderSample(
  src: Uint8Array,
  shape: readonly [number, number, number],
  out: Float32Array,
  offset: number,
  outH: number,
  outW: number,
  aug: AugmentOptions | undefined,
  coeffs: { scale: Float64Array; shift: Float64Array },
  rng: Rng | null,
): void {
  const [H, W, C] = shape;
  const crop = rng ? aug?.crop : undefined;
  const flipP = aug?.hflip === true ? 0.5 : typeof aug?.hflip === 'number' ? aug.hflip : 0;
  let pixels: Float32Array | null = null; // float pixels [outH, outW, C] when resampled
  let dy = 0;
  let dx = 0;
  let pad = 0;
  let reflectPad = false;
  if (crop?.kind === 'pad-crop') {
    if (outH !== H || outW !== W) throw new Error(`pad-crop keeps the input size ${H}×${W}; got output size ${outH}×${outW}`);
    pad = crop.padding;
    if (!(Number.isInteger(pad) && pad >= 0)) throw new RangeError(`pad-crop: padding must be a non-negative integer, got ${pad}`);
    reflectPad = crop.fill === 'reflect';
    dy = rng!.int(2 * pad + 1);
    dx = rng!.int(2 * pad + 1);
  } else if (crop?.kind === 'random-resized-crop') {
    pixels = resizeBilinear(src, shape, outH, outW, randomResizedCropBox(H, W, rng!, crop.scale, crop.ratio));
  } else if (outH !== H || outW !== W) {
    pixels = resizeBilinear(src, shape, outH, outW);
  }
  const flip = rng !== null && flipP > 0 && rng.random() < flipP;
  const { scale, shift } = coeffs;
  for (let y = 0; y < outH; y++) {
    for (let x = 0; x < outW; x++) {
      const xo = flip ? outW - 1 - x : x;
      const o = offset + (y * outW + xo) * C;
      if (pixels) {
        const s = (y * outW + x) * C;
        for (let c = 0; c < C; c++) out[o + c] = pixels[s + c]! * scale[c]! + shift[c]!;
        continue;
      }
      let sy = y + dy - pad;
      let sx = x + dx - pad;
      if (sy < 0 || sy >= H || sx < 0 || sx >= W) {
        if (!reflectPad) {
          for (let c = 0; c < C; c++) out[o + c] = shift[c]!; // a zero pixel, normalised
          continue;
        }
        sy = reflect(sy, H);
        sx = reflect(sx, W);
      }
      const s = (sy * W + sx) * C;
      for (let c = 0; c < C; c++) out[o + c] = src[s + c]! * scale[c]! + shift[c]!;
    }
  }
}
