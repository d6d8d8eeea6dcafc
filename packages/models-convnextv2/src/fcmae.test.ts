/**
 * FCMAE parity with the fcmae_tiny fixture (official models/fcmae.py with the sparse encoder's exact dense
 * equivalent) on every backend: encoder output, decoder input, prediction, targets, per-patch losses and losses,
 * with batch-pooled (reference) and per-sample encoder GRN, through the sparse and the dense-masked encoder;
 * gradients by finite differences on a tiny model; training steps; fine-tuning hand-off; no tensor leaks.
 */
import * as tf from '@tensorflow/tfjs-core';
import { it, expect, afterAll } from 'vitest';
import { describeBackend, defaultAtol, excludedHere, expectClose, expectNoLeak, loadFixture, reducedHere } from '@softbias/test-utils';
import { Rng } from '@softbias/tensor-ops';
import { createFcmae, type Fcmae } from './fcmae.js';

const fx = loadFixture('fcmae_tiny');
const cfg = fx.config;
// Reduced on SwiftShader WebGPU (vitest.exclusions.ts): the first image alone, against the per-sample GRN
// tensors (batch-pooled statistics of one image are per-sample statistics).
const oneImage = reducedHere('convnextv2/fcmae/one-image');
const NB = oneImage ? 1 : 2;

/** NCHW fixture data → NHWC, first `nb` images. */
function nhwc(name: string, nb = NB): Float32Array {
  const { data, shape } = fx.get(name);
  const [, C, H, W] = shape as [number, number, number, number];
  const out = new Float32Array(nb * H * W * C);
  for (let b = 0; b < nb; b++)
    for (let c = 0; c < C; c++)
      for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) out[((b * H + y) * W + x) * C + c] = data[((b * C + c) * H + y) * W + x]!;
  return out;
}

function firstImages(name: string, nb = NB): Float32Array {
  const { data, shape } = fx.get(name);
  const per = data.length / shape[0]!;
  return data.subarray(0, nb * per);
}

function fixtureModel(): Fcmae {
  const m = createFcmae({
    imgSize: cfg.img_size,
    inChans: cfg.in_chans,
    depths: cfg.depths,
    dims: cfg.dims,
    decoderDepth: cfg.decoder_depth,
    decoderEmbedDim: cfg.decoder_embed_dim,
    patchSize: cfg.patch_size,
    maskRatio: cfg.mask_ratio,
  });
  m.loadStateDict(fx.weights);
  return m;
}

describeBackend('FCMAE vs fcmae_tiny', () => {
  const model = fixtureModel();
  const x = tf.tensor4d(firstImages('input_nhwc'), [NB, 128, 128, 3]);
  const mask = firstImages('mask');
  afterAll(() => {
    model.dispose();
    x.dispose();
  });

  const variants = ['', '_grn_per_sample'] as const;
  const forms = ['sparse', 'dense'] as const;

  for (const v of variants) {
    for (const form of forms) {
      const skip = v === '' ? excludedHere('convnextv2/fcmae/grn-batch-pooled') : undefined;
      it.skipIf(skip)(`${form} encoder, decoder_in, pred, per-patch losses and losses${v}`, async () => {
        const grnStats = v === '' ? 'batch' : 'sample';
        const label = (n: string) => `fcmae_tiny/${form}/${n}${v}`;
        const atol = (n: string) => fx.atol(`${n}${v}`);
        await expectNoLeak(async () => {
          const latent = model.forwardEncoder(x, mask, { encoder: form, grnStats });
          await expectClose(latent, nhwc(`encoder_out${v}`), atol('encoder_out'), label('encoder_out'), [NB, 4, 4, 64]);
          const din = model.decoderInput(latent, mask);
          await expectClose(din, nhwc(`decoder_in${v}`), atol('decoder_in'), label('decoder_in'), [NB, 4, 4, 32]);
          const pred = model.forwardDecoder(latent, mask);
          await expectClose(pred, nhwc(`pred${v}`), atol('pred'), label('pred'), [NB, 4, 4, 3072]);
          // pred_patches is pred.reshape(B, 3072, L).permute: our pred reshaped to [B, L, 3072]
          const pp = tf.reshape(pred, [NB, 16, 3072]);
          if (v === '') await expectClose(pp, firstImages('pred_patches'), fx.atol('pred_patches'), label('pred_patches'));
          for (const normPix of [false, true]) {
            const sfx = normPix ? '_normpix' : '';
            const lpp = model.lossPerPatch(x, pred, normPix);
            await expectClose(lpp, firstImages(`loss_per_patch${sfx}${v}`), fx.atol(`loss_per_patch${sfx}${v}`), label(`loss_per_patch${sfx}`), [NB, 16]);
            const loss = model.forwardLoss(x, pred, mask, normPix);
            let want: number[];
            if (NB === 2) want = Array.from(fx.get(`loss${sfx}${v}`).data);
            else {
              // one image: Σ(lpp·mask)/Σmask over image 0, in float64 from the fixture's per-patch values
              const l = fx.get(`loss_per_patch${sfx}${v}`).data;
              let s = 0;
              let n = 0;
              for (let i = 0; i < 16; i++) {
                s += l[i]! * mask[i]!;
                n += mask[i]!;
              }
              want = [s / n];
            }
            await expectClose(loss, want, fx.atol(`loss${sfx}${v}`), label(`loss${sfx}`), []);
            tf.dispose([lpp, loss]);
          }
          tf.dispose([latent, din, pred, pp]);
        }, `fcmae ${form}`);
      });
    }
  }

  it('targets: patchify with index (py·32 + px)·3 + c, norm-pix with the unbiased variance', async () => {
    const t = model.target(x, false);
    await expectClose(t, firstImages('target_patches'), fx.atol('target_patches'), 'fcmae_tiny/target_patches', [NB, 16, 3072]);
    const tn = model.target(x, true);
    await expectClose(tn, firstImages('target_patches_normpix'), fx.atol('target_patches_normpix'), 'fcmae_tiny/target_patches_normpix', [NB, 16, 3072]);
    const back = model.unpatchify(t);
    await expectClose(back, await x.data(), 0, 'unpatchify(patchify(x))', [NB, 128, 128, 3]);
    tf.dispose([t, tn, back]);
  });

  it('forward returns loss, pred and mask; draws masks at the ratio when none is given', async () => {
    const grnStats = oneImage ? 'sample' : 'batch';
    const v = oneImage ? '_grn_per_sample' : '';
    await expectNoLeak(async () => {
      const out = model.forward(x, { mask, grnStats, normPixLoss: true });
      expect(out.pred.shape).toEqual([NB, 4, 4, 3072]);
      expect(Array.from(await out.mask.data())).toEqual(Array.from(mask));
      if (!oneImage) await expectClose(out.loss, fx.get(`loss_normpix${v}`).data, fx.atol(`loss_normpix${v}`), 'fcmae_tiny/forward/loss_normpix');
      const drawn = model.forward(x, { grnStats });
      const md = (await drawn.mask.data()) as Float32Array;
      for (let b = 0; b < NB; b++) expect(md.subarray(b * 16, (b + 1) * 16).reduce((a, c) => a + c, 0)).toBe(10); // 16 − int(16·0.4)
      expect(Number.isFinite((await drawn.loss.data())[0]!)).toBe(true);
      tf.dispose([out.loss, out.pred, out.mask, drawn.loss, drawn.pred, drawn.mask]);
    }, 'fcmae forward');
  });

  it('rejects bad inputs with the expected shape', () => {
    const bad = tf.zeros([1, 100, 128, 3]);
    expect(() => model.forward(bad, { mask })).toThrow(/\[B, H, W, 3\].*multiples of 32/);
    const bad2 = tf.zeros([1, 128, 128, 1]);
    expect(() => model.forward(bad2)).toThrow(/\[B, H, W, 3\]/);
    expect(() => model.forwardEncoder(x, new Float32Array(5))).toThrow(new RegExp(`\\[${NB}, 16\\] mask`));
    tf.dispose([bad, bad2]);
  });
});

// ------------------------------------------------------------------------------------------ gradients, training

/** A tiny FCMAE (64 px, 2×2 patch grid) with O(1) random weights in every parameter (nothing zero). */
function tinyModel(seed: number): Fcmae {
  const m = createFcmae({ imgSize: 64, depths: [1, 1, 1, 1], dims: [4, 8, 8, 8], decoderDepth: 1, decoderEmbedDim: 8, maskRatio: 0.5, init: 'timm', seed });
  const rng = new Rng(seed + 1);
  tf.tidy(() => {
    for (const [name, p] of m.namedParameters()) {
      const fanIn = p.torchShape.length > 1 ? p.torchShape.slice(1).reduce((a, b) => a * b, 1) : 1;
      const std = /norm|stem\.1|downsample\.0/.test(name) ? 0.2 : p.torchShape.length > 1 ? 1 / Math.sqrt(fanIn) : 0.3;
      const mean = /(norm|stem\.1|downsample\.0)\.weight$/.test(name) ? 1 : 0;
      const d = new Float32Array(p.variable.size);
      for (let i = 0; i < d.length; i++) d[i] = mean + std * rng.normal();
      p.assign(tf.tensor(d, p.shape));
    }
  });
  return m;
}

describeBackend('FCMAE gradients and training', () => {
  const B = 2;
  const img = (seed: number) => {
    const rng = new Rng(seed);
    const d = new Float32Array(B * 64 * 64 * 3);
    for (let i = 0; i < d.length; i++) d[i] = rng.normal();
    return tf.tensor4d(d, [B, 64, 64, 3]);
  };
  const mask = [0, 1, 1, 0, /* img 1 */ 1, 0, 0, 1];

  it('sparse-encoder gradients match finite differences (directional), both GRN statistics, norm-pix loss', async () => {
    const model = tinyModel(3);
    const x = img(4);
    const names = model.namedParameters().map(([n]) => n);
    const vars = model.namedParameters().map(([, p]) => p.variable);
    const rng = new Rng(9);
    for (const grnStats of ['batch', 'sample'] as const) {
      const f = () => model.computeLoss(x, { mask, grnStats, normPixLoss: true });
      const { value, grads } = tf.variableGrads(f, vars);
      // a random direction over all parameters; the directional derivative two ways
      const dir = vars.map((v) => tf.tensor(Float32Array.from({ length: v.size }, () => rng.normal()), v.shape));
      let analytic = 0;
      for (let i = 0; i < vars.length; i++) {
        const g = grads[vars[i]!.name]!;
        const gd = await g.data();
        expect(gd.every(Number.isFinite), `${names[i]} gradient is finite`).toBe(true);
        const dot = tf.tidy(() => tf.sum(tf.mul(g, dir[i]!)));
        analytic += (await dot.data())[0]!;
        dot.dispose();
      }
      // central difference: truncation error ∝ eps², float32 rounding ∝ 1/eps; 3e-4 balances them here (≈ 5e-4 relative)
      const eps = 3e-4;
      const orig = vars.map((v) => tf.clone(v));
      const shift = (s: number) =>
        vars.forEach((v, i) => {
          v.assign(tf.tidy(() => tf.add(orig[i]!, tf.mul(dir[i]!, s))));
        });
      shift(eps);
      const fp = f();
      const lp = (await fp.data())[0]!;
      shift(-eps);
      const fm = f();
      const lm = (await fm.data())[0]!;
      vars.forEach((v, i) => {
        v.assign(orig[i]!);
      });
      const numeric = (lp - lm) / (2 * eps);
      const rel = Math.abs(numeric - analytic) / Math.max(1, Math.abs(analytic));
      await expectClose([analytic], [numeric], 5e-3 * Math.max(1, Math.abs(numeric)), `fcmae-tiny-model/${grnStats}/directional derivative`);
      expect(rel).toBeLessThan(5e-3);
      tf.dispose([value, fp, fm, ...Object.values(grads), ...dir, ...orig]);
    }
    model.dispose();
    x.dispose();
  });

  it('sparse and dense-masked encoders give the same gradients', async () => {
    const model = tinyModel(5);
    const x = img(6);
    const vars = model.namedParameters().map(([, p]) => p.variable);
    for (const grnStats of ['batch', 'sample'] as const) {
      const a = tf.variableGrads(() => model.computeLoss(x, { mask, grnStats, encoder: 'sparse' }), vars);
      const b = tf.variableGrads(() => model.computeLoss(x, { mask, grnStats, encoder: 'dense' }), vars);
      await expectClose(a.value, await b.value.data(), 1e-5, `grads/${grnStats}/loss`);
      for (const [name, p] of model.namedParameters()) {
        const want = await b.grads[p.variable.name]!.data();
        await expectClose(a.grads[p.variable.name]!, want, defaultAtol(want), `grads/${grnStats}/${name}`);
      }
      tf.dispose([a.value, b.value, ...Object.values(a.grads), ...Object.values(b.grads)]);
    }
    model.dispose();
    x.dispose();
  });

  it('training steps lower the loss, leak nothing', async () => {
    const model = tinyModel(7);
    const x = img(8);
    const opt = tf.train.sgd(0.05);
    const losses: number[] = [];
    await expectNoLeak(async () => {
      for (let step = 0; step < 4; step++) {
        const cost = opt.minimize(() => model.computeLoss(x, { mask, normPixLoss: true }), true);
        losses.push((await cost!.data())[0]!);
        cost!.dispose();
      }
    }, 'fcmae training');
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(losses[3]!).toBeLessThan(losses[0]!);
    opt.dispose();
    model.dispose();
    x.dispose();
  });

  it('encoderToClassifier: the dense ConvNeXt V2 equals the unmasked encoder (per-sample GRN)', async () => {
    const model = tinyModel(11);
    const x = img(12);
    const clf = model.encoderToClassifier(5);
    expect(clf.numClasses).toBe(5);
    const dense = clf.forwardFeatures(x);
    const unmasked = model.forwardEncoder(x, new Float32Array(B * 4), { grnStats: 'sample' });
    const want = await dense.data();
    await expectClose(unmasked, want, defaultAtol(want), 'encoderToClassifier/features');
    // the encoder weights are shared by value; the classifier owns copies
    const sd = clf.stateDict();
    const enc = model.encoder.stateDict();
    for (const [k, t] of enc) await expectClose(sd.get(k)!, await t.data(), 0, `encoderToClassifier/${k}`);
    tf.dispose([dense, unmasked, ...sd.values(), ...enc.values()]);
    clf.dispose();
    model.dispose();
    x.dispose();
  });
});
