/**
 * GRN's mask-aware form against the fcmae_tiny fixture: the reference FCMAE encoder (dense-masked equivalent
 * of the sparse one) rebuilt from this package's blocks, op by op, with `grnMasked`. The fixture stores the
 * encoder output twice, once with the reference's batch-pooled GRN statistics and once per image; the two
 * runs below differ only in `stats`, so matching both isolates GRN's two statistics modes. (The FCMAE model
 * itself, decoder and loss, is tested with fcmae.ts.)
 */
import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend, expectClose, loadFixture, fixtureTensor } from '@softbias/test-utils';
import { gelu } from '@softbias/tensor-ops';
import { grnMasked, type GrnStats } from '@softbias/grn';
import { createModel, type ConvNeXtV2 } from './index.js';

const f = loadFixture('fcmae_tiny');

function encoder(): ConvNeXtV2 {
  const c = f.config;
  const m = createModel('convnextv2_custom', { depths: c.depths, dims: c.dims, inChans: c.in_chans, numClasses: 0 });
  const sd = new Map<string, { data: Float32Array; shape: number[] }>();
  for (const [k, v] of f.weights) if (k.startsWith('encoder.')) sd.set(k.slice('encoder.'.length), v);
  // The FCMAE encoder has no head norm: everything else must load.
  const r = m.loadStateDict(sd, { strict: false });
  expect(r.missing).toEqual(['head.norm.weight', 'head.norm.bias']);
  expect(r.unexpected).toEqual([]);
  return m;
}

/** visible [B, h, w, 1] at a stage whose grid is `scale`× the 4×4 mask grid (the official upsample_mask). */
function visibleAt(mask: Float32Array, B: number, g: number, scale: number): tf.Tensor {
  const n = g * scale;
  const v = new Float32Array(B * n * n);
  for (let b = 0; b < B; b++)
    for (let y = 0; y < n; y++)
      for (let x = 0; x < n; x++) v[(b * n + y) * n + x] = 1 - mask[b * g * g + Math.floor(y / scale) * g + Math.floor(x / scale)]!;
  return tf.tensor4d(v, [B, n, n, 1]);
}

/** The reference encoder on the dense grid: every op followed by zeroing the masked sites. */
function maskedEncoder(m: ConvNeXtV2, x: tf.Tensor, mask: Float32Array, stats: GrnStats): tf.Tensor {
  const B = x.shape[0]!;
  const g = 4;
  return tf.tidy(() => {
    let v = visibleAt(mask, B, g, 8);
    let h = tf.mul(m.stem.forward(x), v);
    for (let i = 0; i < 4; i++) {
      const stage = m.stages.at(i);
      if (stage.downsample) {
        h = tf.mul(stage.downsample.norm.forward(h), v);
        v = visibleAt(mask, B, g, 8 >> i);
        h = tf.mul(stage.downsample.conv.forward(h), v);
      }
      for (const blk of stage.blocks) {
        let y = tf.mul(blk.convDw.forward(h), v);
        y = tf.mul(blk.norm.forward(y), v);
        y = tf.mul(blk.mlp.fc1.forward(y), v);
        y = gelu(y);
        y = grnMasked(y, v, blk.mlp.grn.weight.value, blk.mlp.grn.bias.value, { stats });
        y = tf.mul(blk.mlp.fc2.forward(y), v);
        h = tf.add(h, y);
      }
    }
    return h;
  });
}

describeBackend('grnMasked inside the reference FCMAE encoder (fcmae_tiny)', () => {
  for (const [stats, name] of [
    ['batch', 'encoder_out'],
    ['sample', 'encoder_out_grn_per_sample'],
  ] as const) {
    it(`stats: '${stats}' reproduces ${name}`, async () => {
      const m = encoder();
      const x = fixtureTensor(f.get('input_nhwc'));
      const mask = f.get('mask').data;
      const out = maskedEncoder(m, x, mask, stats);
      const nchw = tf.transpose(out, [0, 3, 1, 2]);
      await expectClose(nchw, f.get(name).data, f.atol(name), `fcmae_tiny/${name}`, f.get(name).shape);
      tf.dispose([x, out, nchw]);
      m.dispose();
    });
  }

  it('the other statistics mode does not match (the fixture distinguishes them)', async () => {
    const m = encoder();
    const x = fixtureTensor(f.get('input_nhwc'));
    const out = maskedEncoder(m, x, f.get('mask').data, 'sample');
    const nchw = tf.transpose(out, [0, 3, 1, 2]);
    const got = await nchw.data();
    const want = f.get('encoder_out').data;
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
    expect(worst).toBeGreaterThan(100 * f.atol('encoder_out'));
    tf.dispose([x, out, nchw]);
    m.dispose();
  });
});
