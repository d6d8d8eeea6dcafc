/** The timm-style model surface, mixers/ablations, training behaviour, memory, preprocessing. */
import * as tf from '@tensorflow/tfjs-core';
import { it, expect, vi } from 'vitest';
import { describeBackend, loadFixture, expectClose, expectNoLeak, fixtureTensor, defaultAtol, excludedHere } from '@softbias/test-utils';
import { Rng } from '@softbias/tensor-ops';
import { Gpsa } from '@softbias/gpsa';
import { createModel, loadModel, preprocess, type ConViT } from '@softbias/models-convit';
import { overridesFor, writeFixtureWeights } from '../test/helpers.js';

// WebGPU runs on SwiftShader (a CPU) here: generous per-test limits.
vi.setConfig({ testTimeout: 900_000 });

const f = loadFixture('convit_micro');
const micro = overridesFor(f);

async function microModel(): Promise<ConViT> {
  const m = createModel('convit_tiny', micro);
  await m.loadWeights(writeFixtureWeights(f));
  return m;
}

function randomImages(b: number, h: number, w: number, seed: number): tf.Tensor {
  const rng = new Rng(seed);
  return tf.tensor(Float32Array.from({ length: b * h * w * 3 }, () => rng.normal()), [b, h, w, 3]);
}

describeBackend('models-convit: timm-style surface', () => {
  it('forwardIntermediates: indices (last n, list, negative), formats, norm, stopEarly', async () => {
    const m = await microModel();
    const x = fixtureTensor(f.get('input_nhwc'));
    const last2 = m.forwardIntermediates(x, { indices: 2 });
    expect(last2.intermediates.map((t) => t.shape)).toEqual([[2, 8, 8, 48], [2, 8, 8, 48]]);
    // Block 3 comes after the class token: its patch tokens are tokens 1..64 of block3_out.
    const b3 = f.get('block3_out').data;
    const patches3 = new Float32Array(2 * 64 * 48);
    for (let b = 0; b < 2; b++) patches3.set(b3.subarray((b * 65 + 1) * 48, (b * 65 + 65) * 48), b * 64 * 48);
    await expectClose(last2.intermediates[1]!, patches3, f.atol('block3_out'), 'convit_micro/block3_out patches (NHWC)');
    await expectClose(last2.features!, f.get('features').data, f.atol('features'), 'convit_micro/features (forwardIntermediates)');
    const picked = m.forwardIntermediates(x, { indices: [0, -1], outputFmt: 'NCHW', stopEarly: true });
    // stopEarly (timm): features is the normed output of the trunk truncated after the last requested block,
    // here block 3 = the whole trunk.
    await expectClose(picked.features!, f.get('features').data, f.atol('features'), 'convit_micro/features (stopEarly at the last block)');
    // Truncated after block 1 (before the class token joins): features = norm(block 1 output), the normed NLC intermediate.
    const early = m.forwardIntermediates(x, { indices: [1], stopEarly: true, norm: true, outputFmt: 'NLC' });
    expect(early.features!.shape).toEqual([2, 64, 48]);
    await expectClose(early.features!, await early.intermediates[0]!.data(), 0, 'stopEarly features = norm(block 1 output)');
    const only = m.forwardIntermediates(x, { indices: [1], intermediatesOnly: true });
    expect(only.features).toBeNull();
    tf.dispose(only.intermediates);
    expect(picked.intermediates.map((t) => t.shape)).toEqual([[2, 48, 8, 8], [2, 48, 8, 8]]);
    const nchw0 = tf.transpose(tf.reshape(fixtureTensor(f.get('block0_out')), [2, 8, 8, 48]), [0, 3, 1, 2]);
    await expectClose(picked.intermediates[0]!, await nchw0.data(), f.atol('block0_out'), 'convit_micro/block0_out (NCHW)');
    const normed = m.forwardIntermediates(x, { indices: [3], norm: true, outputFmt: 'NLC', intermediatesOnly: true, returnPrefixTokens: true });
    const feats = f.get('features').data;
    await expectClose(normed.prefixTokens![0]!, [0, 1].flatMap((b) => Array.from(feats.subarray(b * 65 * 48, b * 65 * 48 + 48))), f.atol('features'), 'normed prefix token = features[:, 0]');
    expect(() => m.forwardIntermediates(x, { indices: [4] })).toThrow(/index 4 is out of range \(0 to 3/);
    tf.dispose([x, nchw0, ...last2.intermediates, last2.features!, picked.features!, early.features!, ...early.intermediates, ...picked.intermediates, ...normed.intermediates, normed.prefixTokens![0]!]);
    m.dispose();
  });

  it('forwardHead, resetClassifier (n and 0), noWeightDecay', async () => {
    const m = await microModel();
    const x = fixtureTensor(f.get('input_nhwc'));
    m.resetClassifier(3);
    expect(m.numClasses).toBe(3);
    const y = m.forward(x);
    expect(y.shape).toEqual([2, 3]);
    const sd = m.stateDict();
    expect(sd.get('head.weight')!.shape).toEqual([3, 48]);
    // PyTorch's default Linear init, as timm's reset_classifier: U(±1/√48).
    expect(Math.max(...Array.from(await sd.get('head.weight')!.data(), Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(48));
    tf.dispose([...sd.values(), y]);
    m.resetClassifier(0);
    const pre = m.forward(x);
    await expectClose(pre, f.get('pre_logits').data, f.atol('pre_logits'), 'convit_micro/pre_logits (numClasses 0)', [2, 48]);
    expect([...m.stateDict().keys()].filter((k) => k.startsWith('head'))).toEqual([]);
    const reloaded = await loadModel(await m.saveWeights());
    expect(reloaded.numClasses).toBe(0);
    const nwd = m.noWeightDecay();
    for (const k of ['cls_token', 'pos_embed', 'patch_embed.proj.bias', 'blocks.0.norm1.weight', 'blocks.0.attn.gating_param', 'blocks.3.attn.proj.bias', 'norm.weight']) {
      expect(nwd.has(k), k).toBe(true);
    }
    for (const k of ['blocks.0.attn.qk.weight', 'blocks.0.attn.pos_proj.weight', 'blocks.3.attn.qkv.weight', 'patch_embed.proj.weight']) {
      expect(nwd.has(k), k).toBe(false);
    }
    tf.dispose([x, pre]);
    m.dispose();
    reloaded.dispose();
  });

  it('no tensor leaks across repeated forwards, introspection and an AdamW-style training step', async () => {
    const m = await microModel();
    const x = fixtureTensor(f.get('input_nhwc'));
    const R = fixtureTensor(f.get('loss_weights'));
    m.forward(x).dispose(); // warm the GPSA positional caches
    await expectNoLeak(async () => {
      for (let i = 0; i < 3; i++) m.forward(x).dispose();
      const r = m.forwardIntermediates(x, { indices: 2, returnPrefixTokens: true });
      tf.dispose([r.features!, ...r.intermediates, ...r.prefixTokens!.filter((t): t is tf.Tensor => !!t)]);
      await m.gates();
      await m.nonlocality(x);
      await m.nonlocality(x, { input: 'patch-embedding' });
      for (const a of m.attentionMaps(x)) tf.dispose([a.mixed, a.content, a.positional].filter((t): t is tf.Tensor => !!t));
      m.attentionMap(x, 0, { row: 1, col: 1, which: 'content' }).dispose();
    }, 'eval forwards and introspection');
    const opt = tf.train.adam(1e-3);
    const step = () => {
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(m.forward(x), R)) as tf.Scalar);
      opt.applyGradients(grads as unknown as Parameters<typeof opt.applyGradients>[0]);
      tf.dispose([value, ...Object.values(grads)]);
    };
    m.train();
    step(); // Adam creates its slot variables on the first step
    await expectNoLeak(step, 'training step');
    m.eval();
    m.forward(x).dispose(); // rebuild the caches after the step
    await expectNoLeak(() => m.forward(x).dispose(), 'eval forward after training');
    tf.dispose([x, R]);
    opt.dispose();
    m.dispose();
  });

});

describeBackend('models-convit: dropout and stochastic depth', () => {
  it.skipIf(excludedHere('convit/model/drop-path'))("drop path rises linearly over depth; train mode is stochastic, eval mode is not", async () => {
    const m = createModel('convit_tiny', { ...micro, dropPathRate: 0.3, dropRate: 0.1, seed: 4 });
    expect(m.blocks.items.map((b) => b.drop_path.p)).toEqual([0, 0.1, 0.2, 0.3].map(Math.fround));
    const ref = createModel('convit_tiny', { ...micro, seed: 4 });
    const x = randomImages(4, 32, 32, 5);
    const e1 = m.forward(x);
    const e2 = ref.forward(x);
    await expectClose(e1, await e2.data(), 0, 'eval mode ignores drop path / dropout');
    m.train();
    const t1 = m.forward(x);
    const t2 = m.forward(x);
    const diff = tf.max(tf.abs(tf.sub(t1, t2)));
    expect((await diff.data())[0]).toBeGreaterThan(0);
    tf.dispose([x, e1, e2, t1, t2, diff]);
    m.dispose();
    ref.dispose();
  });
});

describeBackend('models-convit: mixers and the paper ablations', () => {
  it('one trunk with GPSA variants, MHSA, window attention, (dynamic) depth-wise conv and ff-patches', async () => {
    const mixers = [
      { kind: 'gpsa', gate: 'frozen' },
      { kind: 'gpsa', localInit: false },
      { kind: 'gpsa', trainable: false },
      { kind: 'window', size: 4 },
      { kind: 'dwconv' },
      { kind: 'dwconv', dynamic: true },
      { kind: 'ff-patches' },
      { kind: 'mhsa' },
    ] as const;
    const m = createModel('convit_tiny', { ...micro, depth: 8, localUpToLayer: 3, mixers: (i) => mixers[i], seed: 6 });
    expect(m.blocks.items.map((b) => b.attn.kind)).toEqual(['gpsa', 'gpsa', 'gpsa', 'window', 'dwconv', 'dwconv', 'ff-patches', 'mhsa']);
    const g0 = m.blocks.at(0).attn as Gpsa;
    const g1 = m.blocks.at(1).attn as Gpsa;
    const g2 = m.blocks.at(2).attn as Gpsa;
    expect(g0.gating_param.trainable).toBe(false);
    expect(g0.qk.weight.trainable).toBe(true);
    expect(g2.trainableParameters()).toEqual([]);
    const v1 = await g1.v.weight.value.data();
    expect(Math.abs(v1[0]! - 1)).toBeGreaterThan(0.5); // no identity init
    const x = randomImages(2, 32, 32, 7);
    const R = tf.tensor(Float32Array.from({ length: 20 }, (_, i) => Math.sin(i)), [2, 10]);
    const names = new Map(m.trainableParameters().map(([n, p]) => [p.variable.name, n]));
    expect([...names.values()].some((n) => n.startsWith('blocks.2.attn.'))).toBe(false);
    const before = await g0.gating_param.value.data();
    const opt = tf.train.sgd(0.1);
    m.train();
    const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(m.forward(x), R)) as tf.Scalar, m.trainableParameters().map(([, p]) => p.variable));
    for (const [vn, g] of Object.entries(grads)) expect((await g.data()).every(Number.isFinite), names.get(vn)).toBe(true);
    expect(Object.keys(grads).length).toBe(m.trainableParameters().length);
    opt.applyGradients(grads);
    m.eval();
    expect(Array.from(await g0.gating_param.value.data())).toEqual(Array.from(before));
    const maps = m.attentionMaps(x);
    expect(maps.map((a) => [a.layer, a.kind])).toEqual([[0, 'gpsa'], [1, 'gpsa'], [2, 'gpsa'], [3, 'window'], [7, 'mhsa']]);
    // The window map is a full patch map: rows sum to 1 and are 0 outside the query's 4×4 window.
    const w = maps[3]!.mixed;
    expect(w.shape).toEqual([2, 4, 64, 64]);
    const wd = await w.data();
    const row = (q: number) => Array.from(wd.subarray(q * 64, q * 64 + 64));
    expect(row(0).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    expect(row(0).filter((v, k) => v !== 0 && !(Math.floor(k / 8) < 4 && k % 8 < 4)).length).toBe(0);
    const nl = await m.nonlocality(x);
    expect(nl.map((d) => (d ? d.length : null))).toEqual([4, 4, 4, 4, null, null, null, 4]);
    const y = m.forward(x);
    const saved = await m.saveWeights();
    const again = await loadModel(saved);
    expect(again.config.mixers).toEqual(m.config.mixers);
    const y2 = again.forward(x);
    await expectClose(y2, await y.data(), 1e-6, 'mixed-trunk logits after save → loadModel');
    tf.dispose([x, R, value, y, y2, ...Object.values(grads), ...maps.flatMap((a) => [a.mixed, a.content, a.positional].filter((t): t is tf.Tensor => !!t))]);
    opt.dispose();
    m.dispose();
    again.dispose();
  });

  it('non-square inputs: a 4×6 patch grid through GPSA, MHSA and the introspection', async () => {
    const m = createModel('convit_tiny', { ...micro, imgSize: [32, 48], patchSize: 8, seed: 8 });
    expect(m.gridSize).toEqual([4, 6]);
    const x = randomImages(1, 32, 48, 9);
    const y = m.forward(x);
    expect(y.shape).toEqual([1, 10]);
    expect((m.blocks.at(0).attn as Gpsa).cacheInfo().grids).toEqual(['4x6']);
    const q = m.attentionMap(x, 3, { row: 3, col: 5 });
    expect(q.shape).toEqual([1, 4, 4, 6]);
    const pos = m.attentionMap(x, 0, { which: 'positional' });
    expect(pos.shape).toEqual([1, 4, 24, 24]);
    // GPSA's local init attends around its offset: head 0 (Δx = Δy = −½ … on a 2×2 kernel) prefers the
    // patch up-left, not one 5 columns away.
    const pd = await pos.data();
    const at = (h: number, qi: number, k: number) => pd[(h * 24 + qi) * 24 + k]!;
    expect(at(0, 7, 0)).toBeGreaterThan(at(0, 7, 5));
    expect(() => m.attentionMap(x, 3, { row: 4, col: 0 })).toThrow(/row\/col must address a patch of the 4×6 grid/);
    expect(() => m.attentionMap(x, 3, { which: 'content' })).toThrow(/layer 3 is 'mhsa', which has no 'content' attention/);
    const d = await m.nonlocality(x);
    expect(d.every((v) => v !== null && v.every(Number.isFinite))).toBe(true);
    tf.dispose([x, y, q, pos]);
    m.dispose();
  });
});

describeBackend('models-convit: preprocess', () => {
  it('resize (short side to size/cropPct, antialiased bicubic), center crop, normalise: host and tensor inputs', async () => {
    // 10×7 RGBA uint8 image; size 4, cropPct 0.875 → scale 4: the short side (width 7) → 4, height int(4·10/7) = 5;
    // center crop 4×4 from 5×4: top = round(0.5) = 0 (Python rounds halves to even), left = 0.
    const H = 10;
    const W = 7;
    const rng = new Rng(10);
    const rgba = Uint8Array.from({ length: H * W * 4 }, () => rng.int(256));
    const mean = [0.5, 0.4, 0.3] as const;
    const std = [0.2, 0.25, 0.3] as const;
    const cfg = { size: [4, 4] as const, mean, std, cropPct: 0.875 };
    const m = createModel('convit_tiny', { ...micro, imgSize: 4, patchSize: 4 });
    // Expected, written out: 2-D bicubic weights (a = −0.5, support scaled when shrinking, normalised).
    const cubic = (t: number) => {
      t = Math.abs(t);
      return t < 1 ? 1.5 * t ** 3 - 2.5 * t ** 2 + 1 : t < 2 ? -0.5 * t ** 3 + 2.5 * t ** 2 - 4 * t + 2 : 0;
    };
    const wts = (n: number, out: number, i: number) => {
      const s = n / out;
      const sup = s >= 1 ? 2 * s : 2;
      const c = s * (i + 0.5);
      const w = Array.from({ length: n }, (_, j) =>
        j >= Math.max(Math.trunc(c - sup + 0.5), 0) && j < Math.min(Math.trunc(c + sup + 0.5), n) ? cubic((j - c + 0.5) / Math.max(s, 1)) : 0,
      );
      const tot = w.reduce((a, b) => a + b, 0);
      return w.map((v) => v / tot);
    };
    const want: number[] = [];
    for (let i = 0; i < 4; i++) {
      for (let j = 0; j < 4; j++) {
        const wy = wts(H, 5, i);
        const wx = wts(W, 4, j);
        for (let c = 0; c < 3; c++) {
          let s = 0;
          for (let y = 0; y < H; y++) for (let xx = 0; xx < W; xx++) s += wy[y]! * wx[xx]! * (rgba[(y * W + xx) * 4 + c]! / 255);
          want.push((s - mean[c]!) / std[c]!);
        }
      }
    }
    const host = preprocess({ data: rgba, width: W, height: H }, cfg);
    await expectClose(host, want, defaultAtol(want, 1e-5), 'preprocess (host image)', [1, 4, 4, 3]);
    const t = tf.tensor3d(Int32Array.from(rgba), [H, W, 4], 'int32');
    const dev = preprocess(t, cfg);
    await expectClose(dev, want, defaultAtol(want, 1e-5), 'preprocess (tensor image)', [1, 4, 4, 3]);
    // The model's own config: ImageNet mean/std, crop 0.875, its input size.
    const own = m.preprocess({ data: rgba, width: W, height: H });
    expect(own.shape).toEqual([1, 4, 4, 3]);
    expect(() => preprocess({ data: rgba, width: 6, height: H }, cfg)).toThrow(/expected 6×10×\(1, 3 or 4\) values/);
    tf.dispose([host, t, dev, own]);
    m.dispose();
  });
});
