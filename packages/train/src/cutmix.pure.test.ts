import { describe, it, expect } from 'vitest';
import { cutmixBox } from '@softbias/train';

/**
 * timm `Mixup.rand_bbox(img_shape, lam)` (margin 0; timm/data/mixup.py) with its centre given, then
 * `cutmix_bbox_and_lam(..., correct_lam=True)`, written here from their definitions: cut = int(side·√(1 − λ))
 * (truncation), box = clip(centre ∓ cut // 2, 0, side), λ ← 1 − box area / (H·W).
 */
function timmRandBbox(H: number, W: number, lam: number, cy: number, cx: number) {
  const r = Math.sqrt(1 - lam);
  const ch = Math.trunc(H * r);
  const cw = Math.trunc(W * r);
  const clip = (v: number, n: number) => Math.min(Math.max(v, 0), n);
  const box = [clip(cy - Math.floor(ch / 2), H), clip(cy + Math.floor(ch / 2), H), clip(cx - Math.floor(cw / 2), W), clip(cx + Math.floor(cw / 2), W)];
  return { box, lam: 1 - ((box[1]! - box[0]!) * (box[3]! - box[2]!)) / (H * W) };
}

describe("CutMix box = timm's rand_bbox + correct_lam", () => {
  it('literal cases (values of timm\'s formulas): centred, at corners, odd cuts, λ → 1 and λ = 0', () => {
    const cases: [number, number, number, number, number, number[], number][] = [
      [32, 32, 0.5, 16, 16, [5, 27, 5, 27], 0.52734375],
      [32, 32, 0.5, 0, 31, [0, 11, 20, 32], 0.87109375],
      [224, 224, 0.3, 10, 200, [0, 103, 107, 224], 0.7598254145408163],
      [7, 5, 0.1, 3, 2, [0, 6, 0, 4], 0.3142857142857143],
      [6, 9, 0.9999, 5, 0, [5, 5, 0, 0], 1],
      [6, 9, 0, 2, 4, [0, 5, 0, 8], 0.2592592592592593],
      [28, 28, 0.75, 27, 27, [20, 28, 20, 28], 0.9183673469387755],
    ];
    for (const [H, W, lam, cy, cx, box, lamOut] of cases) {
      const r = cutmixBox(H, W, lam, cy, cx);
      expect(r.box, `${H}x${W} λ=${lam} at (${cy}, ${cx})`).toEqual(box);
      expect(r.lam).toBeCloseTo(lamOut, 14);
    }
  });

  it('every centre of small images at many λ', () => {
    for (const [H, W] of [[5, 7], [8, 8], [13, 4]] as const)
      for (let k = 0; k <= 40; k++) {
        const lam = k / 40;
        for (let cy = 0; cy < H; cy++)
          for (let cx = 0; cx < W; cx++) {
            const want = timmRandBbox(H, W, lam, cy, cx);
            const got = cutmixBox(H, W, lam, cy, cx);
            expect(got.box).toEqual(want.box);
            expect(got.lam).toBe(want.lam);
          }
      }
  });
});
