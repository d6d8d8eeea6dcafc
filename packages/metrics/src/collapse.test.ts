import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend, expectClose } from '@softbias/test-utils';
import { Rng } from '@softbias/tensor-ops';
import { featureCollapse, FeatureCollapseMeter } from '@softbias/metrics';

/** Definition, float64: 1/C² Σ_i Σ_j (1 − cos(X_i, X_j)) / 2 per image; cos = 0 when a norm is 0. */
function collapseDef(data: Float32Array, B: number, P: number, C: number): number[] {
  const out: number[] = [];
  for (let b = 0; b < B; b++) {
    let s = 0;
    for (let i = 0; i < C; i++)
      for (let j = 0; j < C; j++) {
        let dot = 0;
        let ni = 0;
        let nj = 0;
        for (let p = 0; p < P; p++) {
          const u = data[(b * P + p) * C + i]!;
          const v = data[(b * P + p) * C + j]!;
          dot += u * v;
          ni += u * u;
          nj += v * v;
        }
        const cos = ni === 0 || nj === 0 ? 0 : dot / (Math.sqrt(ni) * Math.sqrt(nj));
        s += (1 - cos) / 2;
      }
    out.push(s / (C * C));
  }
  return out;
}

describeBackend('feature collapse (ConvNeXt V2)', () => {
  it('equals the pairwise cosine-distance definition; collapsed channels give 0', async () => {
    const rng = new Rng(4);
    const [B, H, W, C] = [3, 4, 5, 7];
    const data = Float32Array.from({ length: B * H * W * C }, () => rng.normal());
    for (let p = 0; p < H * W; p++) data[(2 * H * W + p) * C + 3] = 0; // a dead channel in image 2
    const x = tf.tensor4d(data, [B, H, W, C]);
    const got = await featureCollapse(x);
    await expectClose(got, collapseDef(data, B, H * W, C), 1e-5, 'featureCollapse');
    // All channels the same (up to positive scale): distance 0.
    const same = Float32Array.from({ length: 2 * 6 * C }, (_, i) => (Math.floor(i / C) + 1) * ((i % C) + 1));
    await expectClose(await featureCollapse(tf.tensor3d(same, [2, 6, C])), [0, 0], 1e-6, 'collapsed');
    const meter = new FeatureCollapseMeter();
    await meter.update([x, tf.tensor3d(same, [2, 6, C])]);
    await meter.update([tf.slice(x, [0, 0, 0, 0], [1, H, W, C]), tf.tensor3d(same.slice(0, 6 * C), [1, 6, C])]);
    const def = collapseDef(data, B, H * W, C);
    const r = meter.result();
    expect(r[0]).toBeCloseTo((def[0]! * 2 + def[1]! + def[2]!) / 4, 5);
    expect(r[1]).toBeCloseTo(0, 6);
    x.dispose();
    await expect(featureCollapse(tf.zeros([3, 3]))).rejects.toThrow(/expected features \[B, H, W, C\]/);
  });
});
