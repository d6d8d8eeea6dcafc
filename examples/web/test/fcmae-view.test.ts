/**
 * The FCMAE tab's computation on each backend: the mask removes the asked share of patches, the visible input is
 * the image outside them, the loss is the mean per-patch loss over removed patches, the reconstruction is the
 * model's prediction (un-normalised per patch with norm-pix loss), and nothing leaks.
 */
import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend } from '@softbias/test-utils';
import { createFcmae, loadFcmae } from '@softbias/models-convnextv2/fcmae';
import { numRemoved, randomMaskData } from '@softbias/sparse-conv';
import { Rng } from '@softbias/tensor-ops';
import { IMAGENET_MEAN, IMAGENET_STD, fcmaeInput, fcmaePretrain, fcmaeView, trainingImage } from '../src/fcmae-view.js';

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

  it('pre-training steps: fit on FCMAE’s loss — a step’s loss is the model’s masked loss, the weights move, repeatable, no leak', async () => {
    const start = tf.memory().numTensors;
    const model = createFcmae({ depths: [1, 1, 1, 1], dims: [8, 16, 32, 64], imgSize: 64, decoderDepth: 1, decoderEmbedDim: 16, normPixLoss: true, seed: 4 });
    const weights = await model.saveWeights();
    model.dispose();
    const images = new Uint8Array(2 * 64 * 64 * 3);
    images.set(trainingImage(picture(80, 70), 64), 0);
    images.set(trainingImage(picture(50, 90), 64), 64 * 64 * 3);
    const spec = { weights, images, count: 2, steps: 1, lr: 1e-3, ratio: 0.5, seed: 7 };
    const seen: number[] = [];
    const a = await fcmaePretrain(spec, (step) => seen.push(step));
    expect(seen).toEqual([1]);
    expect(a.losses).toHaveLength(1);
    // The step trains the untouched model: its loss is FCMAE's masked loss on the batch (both images; the
    // loader's order is seeded, so both orders are tried) with the first mask of Rng(seed).
    const m0 = await loadFcmae(weights);
    const mask = randomMaskData({ batch: 2, numPatches: [2, 2], ratio: 0.5, rng: new Rng(7) });
    const lossOf = async (order: number[]) => {
      const l = tf.tidy(() => {
        const x = tf.div(tf.sub(tf.div(tf.tensor4d(Float32Array.from(images), [2, 64, 64, 3]), 255), IMAGENET_MEAN as unknown as number[]), IMAGENET_STD as unknown as number[]);
        return m0.computeLoss(tf.gather(x, order), { mask });
      });
      const v = (await l.data())[0]!;
      l.dispose();
      return v;
    };
    const candidates = [await lossOf([0, 1]), await lossOf([1, 0])];
    const closest = Math.min(...candidates.map((c) => Math.abs(c - a.losses[0]!)));
    expect(closest).toBeLessThanOrEqual(1e-4 * Math.max(1, a.losses[0]!));
    // The trained weights differ from the start, and a second run gives the same.
    const m1 = await loadFcmae(a.weights);
    const w0 = (await m0.namedParameters()[0]![1].variable.data()) as Float32Array;
    const w1 = (await m1.namedParameters()[0]![1].variable.data()) as Float32Array;
    expect(w1.some((v, i) => v !== w0[i])).toBe(true);
    m0.dispose();
    m1.dispose();
    const b = await fcmaePretrain(spec);
    expect(b.losses).toEqual(a.losses);
    expect(Buffer.from(b.weights).equals(Buffer.from(a.weights))).toBe(true);
    expect(tf.memory().numTensors).toBe(start);
  });
});
