/**
 * Mixup and CutMix per batch (timm's `Mixup`, mode 'batch'), seeded. With probability `prob` a batch is mixed
 * with its reverse (sample i with sample B−1−i): by CutMix with probability `switchProb` when both are on,
 * else Mixup; λ ~ Beta(α, α).
 * - Mixup: x ← λ·x + (1 − λ)·flip(x).
 * - CutMix: a box of area ≈ (1 − λ)·H·W centred uniformly at random (clipped to the image) is pasted from
 *   flip(x); λ is then corrected to 1 − box area / (H·W).
 * Targets: λ·smooth(y) + (1 − λ)·smooth(flip(y)) with timm's smoothed one-hot (off ε/K, on 1 − ε + ε/K).
 * All random draws are on the host (`Rng`), so the state is small and checkpointable.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '@softbias/tensor-ops';
import { smoothOneHot } from './loss.js';

export interface MixupOptions {
  /** Beta α for Mixup; 0 disables it. Default 0.8. */
  mixupAlpha?: number;
  /** Beta α for CutMix; 0 disables it. Default 1.0. */
  cutmixAlpha?: number;
  /** Probability of mixing a batch. Default 1. */
  prob?: number;
  /** Probability of CutMix when both are enabled. Default 0.5. */
  switchProb?: number;
  /** Label smoothing folded into the targets. Default 0.1. */
  labelSmoothing?: number;
  numClasses: number;
  seed?: number;
}

export interface MixedBatch {
  x: tf.Tensor4D;
  /** Soft targets [B, K]. */
  targets: tf.Tensor2D;
  lam: number;
  kind: 'mixup' | 'cutmix' | 'none';
  /** CutMix box [top, bottom, left, right) (rows yl..yh, columns xl..xh). */
  box?: [number, number, number, number];
}

/** Gamma(a, 1) by Marsaglia–Tsang (boosted for a < 1). */
export function sampleGamma(rng: Rng, a: number): number {
  if (!(a > 0)) throw new RangeError(`gamma shape must be > 0, got ${a}`);
  if (a < 1) {
    let u = rng.random();
    while (u === 0) u = rng.random();
    return sampleGamma(rng, a + 1) * u ** (1 / a);
  }
  const d = a - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = rng.normal();
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = rng.random();
    if (u < 1 - 0.0331 * x ** 4) return d * v;
    if (u > 0 && Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
  }
}

/** Beta(a, b) = X / (X + Y), X ~ Gamma(a), Y ~ Gamma(b). */
export function sampleBeta(rng: Rng, a: number, b: number): number {
  const x = sampleGamma(rng, a);
  const y = sampleGamma(rng, b);
  return x / (x + y);
}

/**
 * timm's CutMix box (`Mixup.rand_bbox` with margin 0, then `cutmix_bbox_and_lam` with correct_lam): cut sides
 * ⌊H·√(1 − λ)⌋ × ⌊W·√(1 − λ)⌋ centred at (cy, cx) (drawn uniformly in [0, H) × [0, W)), each side
 * extended by ⌊cut/2⌋ both ways and clipped to the image; λ corrected to 1 − box area / (H·W).
 * `box` is [yl, yh, xl, xh): rows yl..yh−1, columns xl..xh−1.
 */
export function cutmixBox(H: number, W: number, lam: number, cy: number, cx: number): { lam: number; box: [number, number, number, number] } {
  const ratio = Math.sqrt(1 - lam);
  const cutH = Math.trunc(H * ratio);
  const cutW = Math.trunc(W * ratio);
  const clip = (v: number, n: number) => Math.min(Math.max(v, 0), n);
  const yl = clip(cy - Math.floor(cutH / 2), H);
  const yh = clip(cy + Math.floor(cutH / 2), H);
  const xl = clip(cx - Math.floor(cutW / 2), W);
  const xh = clip(cx + Math.floor(cutW / 2), W);
  return { lam: 1 - ((yh - yl) * (xh - xl)) / (H * W), box: [yl, yh, xl, xh] };
}

export class Mixup {
  readonly mixupAlpha: number;
  readonly cutmixAlpha: number;
  readonly prob: number;
  readonly switchProb: number;
  readonly labelSmoothing: number;
  readonly numClasses: number;
  readonly rng: Rng;

  constructor(opts: MixupOptions) {
    this.mixupAlpha = opts.mixupAlpha ?? 0.8;
    this.cutmixAlpha = opts.cutmixAlpha ?? 1.0;
    this.prob = opts.prob ?? 1;
    this.switchProb = opts.switchProb ?? 0.5;
    this.labelSmoothing = opts.labelSmoothing ?? 0.1;
    this.numClasses = opts.numClasses;
    if (!(Number.isInteger(this.numClasses) && this.numClasses > 0)) throw new RangeError(`Mixup: numClasses must be a positive integer`);
    if (!(this.mixupAlpha >= 0 && this.cutmixAlpha >= 0)) throw new RangeError('Mixup: alphas must be ≥ 0');
    this.rng = new Rng(opts.seed ?? 0);
  }

  /** Draw this batch's parameters (kind, λ and the CutMix box) for images of size H×W. */
  draw(H: number, W: number): { kind: MixedBatch['kind']; lam: number; box?: [number, number, number, number] } {
    let lam = 1;
    let cutmix = false;
    let active = false;
    if (this.rng.random() < this.prob) {
      if (this.mixupAlpha > 0 && this.cutmixAlpha > 0) {
        cutmix = this.rng.random() < this.switchProb;
        lam = cutmix ? sampleBeta(this.rng, this.cutmixAlpha, this.cutmixAlpha) : sampleBeta(this.rng, this.mixupAlpha, this.mixupAlpha);
        active = true;
      } else if (this.mixupAlpha > 0) {
        lam = sampleBeta(this.rng, this.mixupAlpha, this.mixupAlpha);
        active = true;
      } else if (this.cutmixAlpha > 0) {
        cutmix = true;
        lam = sampleBeta(this.rng, this.cutmixAlpha, this.cutmixAlpha);
        active = true;
      }
    }
    if (!active) return { kind: 'none', lam: 1 };
    if (!cutmix) return { kind: 'mixup', lam };
    const cy = this.rng.int(H);
    const cx = this.rng.int(W);
    return { kind: 'cutmix', ...cutmixBox(H, W, lam, cy, cx) };
  }

  /** Mix a batch `x` [B, H, W, C] with labels [B]. The inputs are not disposed; the outputs are new tensors. */
  async apply(x: tf.Tensor4D, labels: tf.Tensor | ArrayLike<number>): Promise<MixedBatch> {
    if (x.rank !== 4) throw new Error(`Mixup: expected x [B, H, W, C], got shape [${x.shape}]`);
    const [B, H, W] = x.shape;
    const y = labels instanceof tf.Tensor ? await labels.data() : labels;
    if (y.length !== B) throw new Error(`Mixup: ${B} images but ${y.length} labels`);
    const d = this.draw(H, W);
    const K = this.numClasses;
    const a = smoothOneHot(y, K, this.labelSmoothing);
    const t = new Float32Array(B * K);
    for (let i = 0; i < B; i++) for (let k = 0; k < K; k++) t[i * K + k] = d.lam * a[i * K + k]! + (1 - d.lam) * a[(B - 1 - i) * K + k]!;
    const targets = tf.tensor2d(t, [B, K]);
    let mixed: tf.Tensor4D;
    if (d.kind === 'none') mixed = tf.clone(x);
    else if (d.kind === 'mixup') mixed = tf.tidy(() => tf.add(tf.mul(x, d.lam), tf.mul(tf.reverse(x, 0), 1 - d.lam)));
    else {
      const [yl, yh, xl, xh] = d.box!;
      const mask = new Float32Array(H * W);
      for (let r = yl; r < yh; r++) mask.fill(1, r * W + xl, r * W + xh);
      mixed = tf.tidy(() => {
        const m = tf.tensor4d(mask, [1, H, W, 1]);
        return tf.add(tf.mul(x, tf.sub(1, m)), tf.mul(tf.reverse(x, 0), m));
      });
    }
    return { x: mixed, targets, lam: d.lam, kind: d.kind, ...(d.box ? { box: d.box } : {}) };
  }
}
