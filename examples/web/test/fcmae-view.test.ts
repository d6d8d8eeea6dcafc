/**
 * The FCMAE tab's computation on each backend: the mask removes the asked share of patches, the visible input is
 * the image outside them, the loss is the mean per-patch loss over removed patches, the reconstruction is the
 * model's prediction (un-normalised per patch with norm-pix loss), and nothing leaks.
 */
import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend } from '@softbias/test-utils';
import { createFcmae } from '@softbias/models-convnextv2/fcmae';
import { numRemoved } from '@softbias/sparse-conv';
import { fcmaeInput, fcmaeView } from '../src/fcmae-view.js';

function picture(w: number, h: number) {
  const data = new Uint8ClampedArray(w * h * 4);
  for (let i = 0; i < w * h; i++) data.set([(i * 7) % 256, (i * 13) % 256, (i * 29) % 256, 255], 4 * i);
  return { data, width: w, height: h };
}

describeBackend('web app: FCMAE mask, visible input, reconstruction, per-patch loss', () => {
  it('mask ratio, visible part, loss = mean of the removed patches’ losses; no leak', async () => {
    const start = tf.memory().numTensors;
    // A narrow FCMAE (the page's default is atto): the same code paths, a fraction of the work on SwiftShader.
    const model = createFcmae({ depths: [1, 1, 1, 1], dims: [8, 16, 32, 64], imgSize: 128, decoderDepth: 1, decoderEmbedDim: 16, normPixLoss: true, seed: 3 });
    const x = fcmaeInput(model, picture(80, 70));
    expect(x.shape).toEqual([1, 128, 128, 3]);
    for (const ratio of [0.25, 0.75]) {
      const v = await fcmaeView(model, x, ratio, 5);
      const L = v.grid[0] * v.grid[1];
      expect(L).toBe(16); // 128 px / 32 px patches
      expect(v.removed).toBe(numRemoved(L, ratio));
      let sum = 0;
      for (let l = 0; l < L; l++) sum += v.perPatch[l]! * v.mask[l]!;
      expect(Math.abs(v.loss - sum / v.removed)).toBeLessThanOrEqual(1e-4 * Math.max(1, v.loss));
      // A pixel of a removed patch is grey in the visible input and reconstructed in the composite; a kept one is the input.
      const [, gw] = v.grid;
      for (let l = 0; l < L; l++) {
        const py = Math.floor(l / gw) * v.patchSize + 3;
        const px = (l % gw) * v.patchSize + 5;
        const i = (py * v.width + px) * 3;
        if (v.mask[l]) {
          expect(v.visible[i]).toBeCloseTo(0.5, 6);
          expect(v.composite[i]).toBeCloseTo(v.reconstruction[i]!, 6);
        } else {
          expect(v.visible[i]).toBeCloseTo(v.input[i]!, 6);
          expect(v.composite[i]).toBeCloseTo(v.input[i]!, 6);
        }
      }
    }
    x.dispose();
    model.dispose();
    expect(tf.memory().numTensors).toBe(start);
  });

  it('without norm-pix loss the reconstruction is the prediction itself', async () => {
    const model = createFcmae({ depths: [1, 1, 1, 1], dims: [8, 16, 32, 64], imgSize: 64, decoderDepth: 1, decoderEmbedDim: 16, normPixLoss: false, seed: 1 });
    const x = fcmaeInput(model, picture(64, 64));
    const v = await fcmaeView(model, x, 0.5, 2);
    const out = model.forward(x, { mask: v.mask });
    const rec = tf.tidy(() => tf.clipByValue(tf.add(tf.mul(model.unpatchify(tf.reshape(out.pred, [1, 4, 32 * 32 * 3]), v.grid), [0.229, 0.224, 0.225]), [0.485, 0.456, 0.406]), 0, 1));
    const want = (await rec.data()) as Float32Array;
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(want[i]! - v.reconstruction[i]!));
    expect(worst).toBeLessThanOrEqual(1e-5);
    tf.dispose([rec, out.loss, out.pred, out.mask, x]);
    model.dispose();
  });
});
