import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend, expectClose } from '@softbias/test-utils';
import { Rng } from '@softbias/tensor-ops';
import { Mixup, sampleBeta, smoothOneHot } from '@softbias/train';

describeBackend('mixup / cutmix', () => {
  it('Beta sampler: mean a/(a+b) and variance ab/((a+b)²(a+b+1))', () => {
    const rng = new Rng(3);
    for (const [a, b] of [[0.8, 0.8], [1, 1], [0.2, 0.2], [2, 5]] as const) {
      const n = 20000;
      let s = 0;
      let s2 = 0;
      let lo = Infinity;
      let hi = -Infinity;
      for (let i = 0; i < n; i++) {
        const v = sampleBeta(rng, a, b);
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
        s += v;
        s2 += v * v;
      }
      expect(lo).toBeGreaterThanOrEqual(0);
      expect(hi).toBeLessThanOrEqual(1);
      const mean = s / n;
      const variance = s2 / n - mean * mean;
      expect(Math.abs(mean - a / (a + b))).toBeLessThan(0.01);
      expect(Math.abs(variance - (a * b) / ((a + b) ** 2 * (a + b + 1)))).toBeLessThan(0.01);
    }
  });

  it('mixed images and targets equal their definition; seeded; state restores', async () => {
    const rng = new Rng(2);
    const [B, H, W, C, K] = [4, 6, 5, 2, 3];
    const xs = Float32Array.from({ length: B * H * W * C }, () => rng.normal());
    const labels = [0, 2, 1, 2];
    const x = tf.tensor4d(xs, [B, H, W, C]);
    const mix = new Mixup({ numClasses: K, seed: 11, labelSmoothing: 0.1 });
    const kinds = new Set<string>();
    for (let trial = 0; trial < 12; trial++) {
      const state = mix.rng.getState();
      const r = await mix.apply(x, labels);
      kinds.add(r.kind);
      const soft = smoothOneHot(labels, K, 0.1);
      const wantT: number[] = [];
      for (let i = 0; i < B; i++) for (let k = 0; k < K; k++) wantT.push(r.lam * soft[i * K + k]! + (1 - r.lam) * soft[(B - 1 - i) * K + k]!);
      await expectClose(r.targets, wantT, 1e-6, 'mixup/targets');
      const want: number[] = [];
      for (let b = 0; b < B; b++)
        for (let h = 0; h < H; h++)
          for (let w = 0; w < W; w++)
            for (let c = 0; c < C; c++) {
              const own = xs[((b * H + h) * W + w) * C + c]!;
              const other = xs[(((B - 1 - b) * H + h) * W + w) * C + c]!;
              if (r.kind === 'mixup') want.push(r.lam * own + (1 - r.lam) * other);
              else {
                const [yl, yh, xl, xh] = r.box!;
                want.push(h >= yl && h < yh && w >= xl && w < xh ? other : own);
              }
            }
      await expectClose(r.x, want, 1e-5, `mixup/${r.kind}`);
      if (r.kind === 'cutmix') {
        const [yl, yh, xl, xh] = r.box!;
        expect(r.lam).toBeCloseTo(1 - ((yh - yl) * (xh - xl)) / (H * W), 12);
      }
      // Restoring the generator state replays the same draw.
      mix.rng.setState(state);
      const again = await mix.apply(x, labels);
      expect(again.lam).toBe(r.lam);
      expect(again.kind).toBe(r.kind);
      tf.dispose([r.x, r.targets, again.x, again.targets]);
    }
    expect(kinds).toEqual(new Set(['mixup', 'cutmix']));
    const off = new Mixup({ numClasses: K, prob: 0 });
    const none = await off.apply(x, labels);
    expect(none.kind).toBe('none');
    await expectClose(none.x, xs, 0, 'mixup/none');
    tf.dispose([none.x, none.targets, x]);
  });
});
