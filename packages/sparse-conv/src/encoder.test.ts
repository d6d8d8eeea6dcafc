import * as tf from '@tensorflow/tfjs-core';
import { it, expect, afterAll } from 'vitest';
import { describeBackend, loadFixture, expectClose, expectNoLeak, defaultAtol, excludedHere, reducedHere } from '@softbias/test-utils';
import { maskedDenseEncoder, sparseEncoder } from './encoder.js';
import { randomMaskData } from './mask.js';
import { encoderWeightsFrom, randomEncoderWeights } from '../test/fixture-weights.js';

/** NCHW fixture data → NHWC. */
function nchwToNhwc(d: Float32Array, [B, C, H, W]: number[]): Float32Array {
  const out = new Float32Array(d.length);
  for (let b = 0; b < B!; b++)
    for (let c = 0; c < C!; c++)
      for (let y = 0; y < H!; y++) for (let x = 0; x < W!; x++) out[((b * H! + y) * W! + x) * C! + c] = d[((b * C! + c) * H! + y) * W! + x]!;
  return out;
}

describeBackend('masked ConvNeXt V2 encoder vs fcmae_tiny', () => {
  const fx = loadFixture('fcmae_tiny');
  const { weights, dispose } = encoderWeightsFrom(fx.weights);
  afterAll(() => dispose());
  // Reduced on SwiftShader WebGPU (vitest.exclusions.ts): one image of the batch (the per-sample GRN variant is
  // exact for a single image; the batch-pooled one needs both images and runs on cpu/wasm).
  const small = reducedHere('sparse-conv/encoder/one-image');

  for (const form of ['sparse', 'dense-masked'] as const) {
    for (const variant of ['', '_grn_per_sample'] as const) {
      const skip = variant === '' ? excludedHere('sparse-conv/encoder/grn-batch-pooled') : undefined;
      it.skipIf(skip)(`${form} encoder_out${variant}`, async () => {
        const input = fx.get('input_nhwc');
        const mask = fx.get('mask');
        const exp = fx.get(`encoder_out${variant}`);
        const [B, C, H, W] = exp.shape as [number, number, number, number];
        const nb = small ? 1 : B;
        const img = tf.tensor4d(input.data.subarray(0, nb * 128 * 128 * 3), [nb, 128, 128, 3]);
        const m = mask.data.subarray(0, nb * 16);
        const run = form === 'sparse' ? sparseEncoder : maskedDenseEncoder;
        const grnStats = variant === '' ? 'batch' : 'sample';
        const o = await expectNoLeak(async () => {
          const out = run(img, m, weights, { grnStats }).out;
          expect(out.shape).toEqual([nb, H, W, C]);
          const d = (await out.data()) as Float32Array;
          out.dispose();
          return d;
        }, `${form} encoder`);
        const want = nchwToNhwc(exp.data, exp.shape).subarray(0, nb * H * W * C);
        await expectClose(o, want, fx.atol(`encoder_out${variant}`), `fcmae_tiny/${form}/encoder_out${variant}`);
        // exactly zero on masked cells
        for (let b = 0; b < nb; b++)
          for (let l = 0; l < 16; l++)
            if (m[b * 16 + l] === 1) for (let c = 0; c < C; c++) expect(o[(b * 16 + l) * C + c] === 0, "masked cell is 0").toBe(true);
        img.dispose();
      });
    }
  }

  it('sparse == dense-masked on random weights, every stage, both GRN statistics', async () => {
    const dims = [8, 12, 16, 24];
    const depths = [1, 2, 1, 1];
    const rw = randomEncoderWeights(dims, depths, 11);
    const B = small ? 1 : 3;
    const S = small ? 64 : 96;
    const L = (S / 32) ** 2;
    const mask = randomMaskData({ batch: B, numPatches: L, ratio: 0.5, rng: 5 });
    const img = tf.randomNormal([B, S, S, 3], 0, 1, 'float32', 3);
    for (const grnStats of ['batch', 'sample'] as const) {
      const a = sparseEncoder(img, mask, rw.weights, { grnStats, returnStages: true });
      const b = maskedDenseEncoder(img, mask, rw.weights, { grnStats, returnStages: true });
      for (let i = 0; i < 4; i++) {
        const want = await b.stages[i]!.data();
        await expectClose(a.stages[i]!, want, defaultAtol(want), `sparse-vs-dense/${grnStats}/stage${i}`);
      }
      for (const t of [a.out, b.out, ...a.stages, ...b.stages]) t.dispose();
    }
    img.dispose();
    rw.dispose();
  });

  it('sparse and dense-masked gradients agree (input and every weight), both GRN statistics', async () => {
    const dims = [4, 8, 8, 8];
    const depths = [1, 1, 1, 1];
    const rw = randomEncoderWeights(dims, depths, 21);
    const B = 2;
    const mask = [0, 1, 1, 0, 1, 0, 1, 0];
    const img = tf.randomNormal([B, 64, 64, 3], 0, 1, 'float32', 22);
    const R = tf.randomNormal([B, 2, 2, 8], 0, 1, 'float32', 23);
    const w = rw.weights;
    const named: [string, tf.Tensor][] = [
      ['stem.conv.weight', w.stem.conv.weight],
      ['stem.norm.weight', w.stem.norm.weight],
      ...w.stages.flatMap((s, i): [string, tf.Tensor][] => [
        ...(s.downsample
          ? ([
              [`stages.${i}.downsample.conv.weight`, s.downsample.conv.weight],
              [`stages.${i}.downsample.norm.bias`, s.downsample.norm.bias],
            ] as [string, tf.Tensor][])
          : []),
        ...s.blocks.flatMap((b, j): [string, tf.Tensor][] =>
          (['convDw', 'norm', 'fc1', 'grn', 'fc2'] as const).flatMap((op): [string, tf.Tensor][] => [
            [`stages.${i}.blocks.${j}.${op}.weight`, b[op].weight],
            [`stages.${i}.blocks.${j}.${op}.bias`, b[op].bias!],
          ]),
        ),
      ]),
    ];
    const leaves = named.map(([, t]) => t);
    for (const grnStats of ['batch', 'sample'] as const) {
      const loss = (run: typeof sparseEncoder) => (x: tf.Tensor, ..._ws: tf.Tensor[]) => tf.sum(tf.mul(run(x, mask, w, { grnStats }).out, R));
      // tf.grads differentiates w.r.t. its arguments: pass the weights through so they are on the tape
      const gs = tf.grads(loss(sparseEncoder))([img, ...leaves]);
      const gd = tf.grads(loss(maskedDenseEncoder))([img, ...leaves]);
      for (let i = 0; i < gs.length; i++) {
        const want = await gd[i]!.data();
        await expectClose(gs[i]!, want, defaultAtol(want), `encoder-grads/${grnStats}/${i === 0 ? 'input' : named[i - 1]![0]}`);
      }
      tf.dispose([...gs, ...gd]);
    }
    tf.dispose([img, R]);
    rw.dispose();
  });

  it('rejects bad images and masks with the expected shapes', () => {
    tf.tidy(() => {
      const img = tf.zeros([2, 96, 64, 3]);
      expect(() => sparseEncoder(tf.zeros([2, 100, 64, 3]), new Float32Array(12), weights)).toThrow(/multiples of 32/);
      expect(() => sparseEncoder(img, new Float32Array(5), weights)).toThrow(/\[2, 6\] mask/);
      expect(() => maskedDenseEncoder(img, tf.zeros([2, 5]), weights)).toThrow(/shape \[2, 6\]/);
      expect(() => sparseEncoder(img, new Float32Array(12).fill(0.5), weights)).toThrow(/0 \(visible\) or 1/);
      expect(() => sparseEncoder(tf.zeros([2, 96, 64, 4]), new Float32Array(12), weights)).toThrow(/\[2, 96, 64, 3\]/);
    });
  });
});
