import { describe, it, expect } from 'vitest';
import type { Rng } from '@softbias/tensor-ops';
import { Rng as SeededRng } from '@softbias/tensor-ops';
import { randomResizedCropBox } from '@softbias/data';

/** Python's round(): half to even. */
const pyRound = (x: number) => {
  const f = Math.floor(x);
  const d = x - f;
  return d > 0.5 ? f + 1 : d < 0.5 ? f : f % 2 === 0 ? f : f + 1;
};

/**
 * torchvision `RandomResizedCrop.get_params(img, scale, ratio)` (torchvision/transforms/transforms.py), written here
 * from its definition, drawing its uniforms from `u()` in the same order (area, log-aspect, then top and left as
 * randint(0, n) = ⌊u·n⌋): 10 attempts; w = int(round(√(area·aspect))), h = int(round(√(area/aspect))); accepted
 * if 0 < w ≤ W and 0 < h ≤ H; else the fallback: in_ratio = W/H below min(ratio) → w = W, h = round(w/min);
 * above max(ratio) → h = H, w = round(h·max); otherwise the whole image; centred with (H − h) // 2, (W − w) // 2.
 */
function torchvisionGetParams(H: number, W: number, scale: readonly [number, number], ratio: readonly [number, number], u: () => number) {
  const area = H * W;
  const lr = [Math.log(ratio[0]), Math.log(ratio[1])] as const;
  for (let k = 0; k < 10; k++) {
    const targetArea = area * (scale[0] + (scale[1] - scale[0]) * u());
    const aspect = Math.exp(lr[0] + (lr[1] - lr[0]) * u());
    const w = pyRound(Math.sqrt(targetArea * aspect));
    const h = pyRound(Math.sqrt(targetArea / aspect));
    if (w > 0 && w <= W && h > 0 && h <= H) {
      const i = Math.floor(u() * (H - h + 1));
      const j = Math.floor(u() * (W - w + 1));
      return { top: i, left: j, height: h, width: w };
    }
  }
  const inRatio = W / H;
  let w: number;
  let h: number;
  if (inRatio < Math.min(...ratio)) {
    w = W;
    h = pyRound(w / Math.min(...ratio));
  } else if (inRatio > Math.max(...ratio)) {
    h = H;
    w = pyRound(h * Math.max(...ratio));
  } else {
    w = W;
    h = H;
  }
  return { top: Math.floor((H - h) / 2), left: Math.floor((W - w) / 2), height: h, width: w };
}

/** An Rng that replays a list of uniforms (int(n) = ⌊u·n⌋, as Rng.int). */
function scripted(us: number[]): Rng {
  let k = 0;
  const random = () => {
    if (k >= us.length) throw new Error('scripted rng: out of draws');
    return us[k++]!;
  };
  return { random, int: (n: number) => Math.floor(random() * n) } as unknown as Rng;
}

describe("random-resized-crop box = torchvision's RandomResizedCrop.get_params", () => {
  it('the same uniforms give the same box: 3000 draws over image shapes, scales and ratios', () => {
    const src = new SeededRng(17);
    const shapes = [[224, 224], [32, 24], [28, 28], [17, 60], [5, 3]] as const;
    const params = [
      [[0.08, 1], [3 / 4, 4 / 3]],
      [[0.5, 1], [3 / 4, 4 / 3]],
      [[0.9, 1], [0.2, 5]],
      [[0.6, 1], [2, 3]],
    ] as const;
    let n = 0;
    for (const [H, W] of shapes)
      for (const [scale, ratio] of params)
        for (let t = 0; t < 150; t++) {
          const us = Array.from({ length: 40 }, () => src.random());
          const want = torchvisionGetParams(H, W, scale, ratio, scripted(us).random);
          expect(randomResizedCropBox(H, W, scripted(us), scale, ratio), `${H}x${W} scale [${scale}] ratio [${ratio}]`).toEqual(want);
          n++;
        }
    expect(n).toBe(3000);
  });

  it('fallback after 10 misses: ratio clamped, sides rounded half to even as Python does', () => {
    // scale [1, 1] on a 1×10 image with ratio [0.4, 2.5]: every attempt asks for more than fits; in_ratio 0.1 <
    // 0.4 → w = 1, h = round(1 / 0.4) = round(2.5) = 2 (half to even), centred: top (10 − 2) // 2 = 4.
    const always = () => scripted(Array.from({ length: 20 }, () => 0.5));
    expect(randomResizedCropBox(10, 1, always(), [1, 1], [0.4, 2.5])).toEqual({ top: 4, left: 0, height: 2, width: 1 });
    // 10 wide, 1 high: in_ratio 10 > 2.5 → h = 1, w = round(2.5) = 2, left (10 − 2) // 2 = 4.
    expect(randomResizedCropBox(1, 10, always(), [1, 1], [0.4, 2.5])).toEqual({ top: 0, left: 4, height: 1, width: 2 });
    // 3 wide, 10 high: w = 3, h = round(7.5) = 8 (even), top 1.
    expect(randomResizedCropBox(10, 3, always(), [1, 1], [0.4, 2.5])).toEqual({ top: 1, left: 0, height: 8, width: 3 });
    for (const [H, W] of [[10, 1], [1, 10], [10, 3]] as const) {
      const us = Array.from({ length: 20 }, () => 0.5);
      expect(randomResizedCropBox(H, W, scripted(us), [1, 1], [0.4, 2.5])).toEqual(torchvisionGetParams(H, W, [1, 1], [0.4, 2.5], scripted(us).random));
    }
  });

  it('a side that lands on .5 inside the attempts rounds half to even (area 6.25·aspect 1 → 2.5 → 2)', () => {
    // H = W = 5, scale [0.25, 0.25] → target 6.25; ratio [1, 1] → √6.25 = 2.5 → 2 (Math.round would give 3).
    const box = randomResizedCropBox(5, 5, scripted([0, 0, 0, 0]), [0.25, 0.25], [1, 1]);
    expect(box).toEqual({ top: 0, left: 0, height: 2, width: 2 });
  });
});
