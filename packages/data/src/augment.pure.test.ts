import { describe, it, expect } from 'vitest';
import { renderSample, resizeBilinear, randomResizedCropBox, normalizationCoefficients, trainingAugment } from '@softbias/data';
import { Rng } from '@softbias/tensor-ops';

const H = 6;
const W = 5;
const C = 2;
const src = Uint8Array.from({ length: H * W * C }, (_, i) => (i * 29 + 3) % 256);
const at = (y: number, x: number, c: number) => src[(y * W + x) * C + c]!;

describe('augmentation', () => {
  it("trainingAugment: pad-crop + flip at the data's size (padding max(2, round(H/16))), a random resized crop at another", () => {
    expect(trainingAugment([28, 28])).toEqual({ crop: { kind: 'pad-crop', padding: 2 }, hflip: true });
    expect(trainingAugment([32, 32], [32, 32])).toEqual({ crop: { kind: 'pad-crop', padding: 2 }, hflip: true });
    expect(trainingAugment([96, 96])).toEqual({ crop: { kind: 'pad-crop', padding: 6 }, hflip: true });
    expect(trainingAugment([28, 28], [32, 32])).toEqual({ crop: { kind: 'random-resized-crop', scale: [0.5, 1] }, hflip: true });
    expect(trainingAugment([64, 48], [64, 64]).crop?.kind).toBe('random-resized-crop');
  });

  it('bilinear resize follows PyTorch (align_corners=False): known values and a plain definition', () => {
    // F.interpolate([0, 100], size=4, mode='linear') = [0, 25, 75, 100]; size 1 of [0, 100, 50, 20] (scale 4): source 1.5.
    expect(Array.from(resizeBilinear(Uint8Array.from([0, 100]), [1, 2, 1], 1, 4))).toEqual([0, 25, 75, 100]);
    expect(Array.from(resizeBilinear(Uint8Array.from([0, 100, 50, 20]), [1, 4, 1], 1, 1))).toEqual([75]);
    // Plain definition: every output pixel as a weighted sum over all source pixels with the tent weights.
    const tent = (o: number, n: number, outN: number, i: number) => {
      const s = Math.max(0, (o + 0.5) * (n / outN) - 0.5);
      const i0 = Math.min(Math.floor(s), n - 1);
      const i1 = Math.min(i0 + 1, n - 1);
      const t = s - i0;
      return (i === i0 ? 1 - t : 0) + (i === i1 ? t : 0);
    };
    for (const [oh, ow] of [[4, 3], [9, 8], [6, 5]] as const) {
      const got = resizeBilinear(src, [H, W, C], oh, ow);
      for (let y = 0; y < oh; y++)
        for (let x = 0; x < ow; x++)
          for (let c = 0; c < C; c++) {
            let v = 0;
            for (let sy = 0; sy < H; sy++) for (let sx = 0; sx < W; sx++) v += tent(y, H, oh, sy) * tent(x, W, ow, sx) * at(sy, sx, c);
            expect(Math.abs(got[(y * ow + x) * C + c]! - v)).toBeLessThan(1e-3);
          }
    }
  });

  it('pad-and-crop + flip + normalisation equal their definition', () => {
    const mean = [0.5, 0.25];
    const std = [0.2, 0.4];
    const coeffs = normalizationCoefficients(C, { mean, std });
    for (let seed = 0; seed < 20; seed++) {
      const out = new Float32Array(H * W * C + 3);
      renderSample(src, [H, W, C], out, 3, H, W, { crop: { kind: 'pad-crop', padding: 2 }, hflip: true }, coeffs, new Rng(seed));
      const r = new Rng(seed);
      const dy = r.int(5);
      const dx = r.int(5);
      const flip = r.random() < 0.5;
      for (let y = 0; y < H; y++)
        for (let x = 0; x < W; x++)
          for (let c = 0; c < C; c++) {
            const xs = flip ? W - 1 - x : x; // output x shows source column of the un-flipped crop at W-1-x
            const sy = y + dy - 2;
            const sx = xs + dx - 2;
            const p = sy < 0 || sy >= H || sx < 0 || sx >= W ? 0 : at(sy, sx, c);
            expect(out[3 + (y * W + x) * C + c]).toBeCloseTo((p / 255 - mean[c]!) / std[c]!, 5);
          }
    }
    // reflect padding: a crop shifted fully up-left shows mirrored rows/columns.
    const out = new Float32Array(H * W * C);
    const coeffs1 = normalizationCoefficients(C, {});
    let seed = 0;
    for (; ; seed++) {
      const r = new Rng(seed);
      if (r.int(5) === 0 && r.int(5) === 0) break;
    }
    renderSample(src, [H, W, C], out, 0, H, W, { crop: { kind: 'pad-crop', padding: 2, fill: 'reflect' } }, coeffs1, new Rng(seed));
    expect(out[0]! * 255).toBeCloseTo(at(2, 2, 0), 3); // (−2, −2) reflects to (2, 2)
    expect(out[(1 * W + 3) * C + 1]! * 255).toBeCloseTo(at(1, 1, 1), 3); // (−1, 1) → (1, 1)
  });

  it('no augmentation (or no rng) is a plain normalised copy', () => {
    const out = new Float32Array(H * W * C);
    renderSample(src, [H, W, C], out, 0, H, W, { crop: { kind: 'pad-crop', padding: 4 }, hflip: 1 }, normalizationCoefficients(C, { mean: [0.1], std: [0.5] }), null);
    for (let i = 0; i < out.length; i++) expect(out[i]).toBeCloseTo((src[i]! / 255 - 0.1) / 0.5, 5);
  });

  it('random resized crop: torchvision box rules and the resized crop', () => {
    for (let seed = 0; seed < 200; seed++) {
      const b = randomResizedCropBox(32, 24, new Rng(seed), [0.08, 1], [3 / 4, 4 / 3]);
      expect(b.top).toBeGreaterThanOrEqual(0);
      expect(b.left).toBeGreaterThanOrEqual(0);
      expect(b.top + b.height).toBeLessThanOrEqual(32);
      expect(b.left + b.width).toBeLessThanOrEqual(24);
      expect(b.height * b.width).toBeGreaterThan(0);
    }
    expect(randomResizedCropBox(8, 8, new Rng(1), [1, 1], [1, 1])).toEqual({ top: 0, left: 0, height: 8, width: 8 });
    // Impossible ratio → centre crop with the ratio clamped (W/H = 0.5 < 1 → w = W, h = round(W / 1)).
    expect(randomResizedCropBox(10, 5, new Rng(1), [1, 1], [1, 1])).toEqual({ top: 2, left: 0, height: 5, width: 5 });
    const out = new Float32Array(4 * 4 * C);
    renderSample(src, [H, W, C], out, 0, 4, 4, { crop: { kind: 'random-resized-crop', scale: [0.3, 0.6] } }, normalizationCoefficients(C, {}), new Rng(5));
    const box = randomResizedCropBox(H, W, new Rng(5), [0.3, 0.6]);
    const want = resizeBilinear(src, [H, W, C], 4, 4, box);
    for (let i = 0; i < out.length; i++) expect(out[i]! * 255).toBeCloseTo(want[i]!, 3);
  });

  it('bad options', () => {
    expect(() => normalizationCoefficients(3, { mean: [0.1, 0.2] })).toThrow(/mean has 2 values for 3 channels/);
    expect(() => normalizationCoefficients(1, { std: [0] })).toThrow(/std must be positive/);
    const out = new Float32Array(100);
    expect(() => renderSample(src, [H, W, C], out, 0, 4, 4, { crop: { kind: 'pad-crop', padding: 1 } }, normalizationCoefficients(C, {}), new Rng(0))).toThrow(
      /pad-crop keeps the input size 6×5/,
    );
    expect(() => randomResizedCropBox(4, 4, new Rng(0), [0, 1])).toThrow(/bad scale/);
  });
});
