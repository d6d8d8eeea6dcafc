/**
 * Model behaviour on every backend: input sizes (odd sizes floor at each stride-2 step), errors naming the
 * expected shape, intermediates, classifier reset, weight loading rules, init, drop path, preprocessing,
 * memory, and a fine-tuning training run.
 */
import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend, expectClose, loadFixture, fixtureTensor } from '@softbias/test-utils';
import { createModel, ConvNeXtV2Downsample, preprocess, type ConvNeXtV2 } from './index.js';

const f = loadFixture('convnextv2_micro');

function micro(overrides: Record<string, unknown> = {}): ConvNeXtV2 {
  const c = f.config;
  return createModel('convnextv2_custom', { depths: c.depths, dims: c.dims, numClasses: c.num_classes, ...overrides });
}

async function loadedMicro(): Promise<ConvNeXtV2> {
  const m = micro();
  await m.loadWeights(f.weights);
  return m;
}

function randomImage(shape: number[], seed: number): tf.Tensor {
  return tf.randomNormal(shape, 0, 1, 'float32', seed);
}

describeBackend('convnextv2 model', () => {
  it('odd input sizes floor at every stride-2 step: 64×48 ends in 2×1, 65×49 equals its 64×48 crop', async () => {
    const m = await loadedMicro();
    const x = randomImage([1, 65, 49, 3], 3);
    const crop = tf.slice(x, [0, 0, 0, 0], [1, 64, 48, 3]);
    const a = m.forwardIntermediates(x);
    expect(a.intermediates.map((t) => t.shape.slice(1, 3))).toEqual([
      [16, 12],
      [8, 6],
      [4, 3],
      [2, 1],
    ]);
    const b = m.forward(crop);
    const full = m.forward(x);
    await expectClose(full, await b.data(), 1e-5, 'convnextv2/odd-size-65x49-vs-crop', [1, 10]);
    // 36×44: the stem gives 9×11; the stride-2 steps drop the odd row/column: 4×5, 2×2, 1×1.
    const y = randomImage([2, 36, 44, 3], 4);
    const c = m.forwardIntermediates(y, { intermediatesOnly: true });
    expect(c.intermediates.map((t) => t.shape)).toEqual([
      [2, 9, 11, 16],
      [2, 4, 5, 32],
      [2, 2, 2, 64],
      [2, 1, 1, 128],
    ]);
    expect(c.features).toBeNull();
    tf.dispose([x, crop, ...a.intermediates, a.features!, b, full, y, ...c.intermediates]);
    m.dispose();
  });

  it('the 2×2/2 downsample drops the last row and column of an odd map (as PyTorch Conv2d)', async () => {
    const d = new ConvNeXtV2Downsample(5, 6);
    const x = randomImage([2, 9, 11, 5], 5);
    const y = d.forward(x);
    const yc = d.forward(tf.slice(x, [0, 0, 0, 0], [2, 8, 10, 5]));
    expect(y.shape).toEqual([2, 4, 5, 6]);
    await expectClose(y, await yc.data(), 1e-6, 'convnextv2/downsample-floor');
    tf.dispose([x, y, yc]);
    d.dispose();
  });

  it('bad inputs get an error naming the expected shape', () => {
    const m = micro();
    const msg = /expected input of shape \[B, H, W, 3\] \(NHWC float32\) with H, W ≥ 32, got \[/;
    expect(() => m.forward(tf.zeros([32, 32, 3]))).toThrow(msg);
    expect(() => m.forward(tf.zeros([1, 32, 32, 4]))).toThrow(/got \[1,32,32,4\]/);
    expect(() => m.forward(tf.zeros([1, 31, 64, 3]))).toThrow(msg);
    expect(() => m.forward(tf.zeros([1, 64, 16, 3]))).toThrow(msg);
    expect(() => m.forwardHead(tf.zeros([1, 2, 2, 64]))).toThrow(/\[B, H, W, 128\]/);
    expect(() => m.forwardIntermediates(tf.zeros([1, 32, 32, 3]), { indices: [4] })).toThrow(/indices/);
    expect(() => createModel('convnextv2_atto', { inChans: 1 }).forward(tf.zeros([1, 32, 32, 3]))).toThrow(/\[B, H, W, 1\]/);
    m.dispose();
  });

  it('forwardIntermediates: indices, negative indices, counts, stopEarly; features equal forwardFeatures', async () => {
    const m = await loadedMicro();
    const x = fixtureTensor(f.get('input_nhwc'));
    const feats = m.forwardFeatures(x);
    const a = m.forwardIntermediates(x, { indices: [1, -1] });
    expect(a.intermediates.map((t) => t.shape)).toEqual([
      [2, 4, 4, 32],
      [2, 1, 1, 128],
    ]);
    await expectClose(a.intermediates[0]!, f.get('stage1_out_nhwc').data, f.atol('stage1_out_nhwc'), 'convnextv2_micro/stage1_out_nhwc-indices');
    await expectClose(a.features!, await feats.data(), 0, 'convnextv2/intermediates-features');
    const b = m.forwardIntermediates(x, { indices: 2 });
    expect(b.intermediates.map((t) => t.shape[3])).toEqual([64, 128]);
    const c = m.forwardIntermediates(x, { indices: [0], stopEarly: true });
    expect(c.intermediates.length).toBe(1);
    // timm: stopEarly still returns the truncated trunk's output (here stage 0's; norm_pre is the identity).
    expect(c.features).not.toBeNull();
    expect(c.features).not.toBe(c.intermediates[0]);
    await expectClose(c.features!, await c.intermediates[0]!.data(), 0, 'convnextv2/stop-early-features');
    await expectClose(c.intermediates[0]!, f.get('stage0_out_nhwc').data, f.atol('stage0_out_nhwc'), 'convnextv2_micro/stage0_out_nhwc-stop-early');
    tf.dispose([x, feats, ...a.intermediates, a.features!, ...b.intermediates, b.features!, ...c.intermediates, c.features!]);
    m.dispose();
  });

  it('no tensor leaks across forward, intermediates, head and training steps', async () => {
    const m = await loadedMicro();
    const x = fixtureTensor(f.get('input_nhwc'));
    const opt = tf.train.adam(1e-3);
    const run = async () => {
      tf.dispose(m.forward(x));
      const r = m.forwardIntermediates(x);
      tf.dispose([...r.intermediates, r.features!]);
      tf.dispose(opt.minimize(() => tf.mean(tf.square(m.forward(x))) as tf.Scalar, true)!);
    };
    await run(); // the optimizer creates its slots on the first step
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) await run();
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
    opt.dispose();
    m.dispose();
  });

  it('resetClassifier: new head.fc of another size (or none); noWeightDecay lists norms, biases and GRN', async () => {
    const m = await loadedMicro();
    const x = fixtureTensor(f.get('input_nhwc'));
    m.resetClassifier(3);
    expect(m.namedParameters().filter(([k]) => k.startsWith('head.fc')).map(([k, p]) => [k, p.torchShape])).toEqual([
      ['head.fc.weight', [3, 128]],
      ['head.fc.bias', [3]],
    ]);
    const l = m.forward(x);
    expect(l.shape).toEqual([2, 3]);
    m.resetClassifier(0);
    expect(m.namedParameters().some(([k]) => k.startsWith('head.fc'))).toBe(false);
    const pre = m.forward(x);
    await expectClose(pre, f.get('pre_logits').data, f.atol('pre_logits'), 'convnextv2_micro/pre_logits-no-classifier', [2, 128]);
    const nwd = m.noWeightDecay();
    expect(nwd.has('stages.1.blocks.0.mlp.grn.weight')).toBe(true);
    expect(nwd.has('stages.1.blocks.0.norm.bias')).toBe(true);
    expect(nwd.has('stem.0.bias')).toBe(true);
    expect(nwd.has('stem.0.weight')).toBe(false);
    expect(nwd.has('stages.1.blocks.0.conv_dw.weight')).toBe(false);
    expect(nwd.has('stages.1.blocks.0.mlp.fc1.weight')).toBe(false);
    tf.dispose([x, l, pre]);
    m.dispose();
  });

  it('loadWeights: strict by default; a head of another size needs skipHead', async () => {
    const m = micro({ numClasses: 4 });
    await expect(m.loadWeights(f.weights)).rejects.toThrow(/head\.fc\.weight.*\n?.*skipHead/s);
    const r = await m.loadWeights(f.weights, { skipHead: true });
    expect(r.loaded.length).toBe(f.weights.size - 2);
    const partial = new Map(f.weights);
    partial.delete('stages.2.blocks.1.mlp.grn.bias');
    partial.set('stages.9.extra', { data: new Float32Array(1), shape: [1] });
    await expect(micro().loadWeights(partial)).rejects.toThrow(/Missing key\(s\) \(1\): "stages\.2\.blocks\.1\.mlp\.grn\.bias"[\s\S]*Unexpected key\(s\) \(1\): "stages\.9\.extra"/);
    const lax = await micro().loadWeights(partial, { strict: false });
    expect(lax.missing).toEqual(['stages.2.blocks.1.mlp.grn.bias']);
    m.dispose();
  });

  it('init as timm: trunc-normal(.02) weights, zero biases, LayerNorm 1/0, GRN 0, head scaled; seeded', async () => {
    const a = createModel('convnextv2_atto', { numClasses: 10, seed: 7 });
    const b = createModel('convnextv2_atto', { numClasses: 10, seed: 7, headInitScale: 0.001 });
    const c = createModel('convnextv2_atto', { numClasses: 10, seed: 8 });
    const sd = new Map(a.namedParameters());
    const std = async (k: string) => {
      const d = (await sd.get(k)!.value.data()) as Float32Array;
      const mean = d.reduce((s, v) => s + v, 0) / d.length;
      return { std: Math.sqrt(d.reduce((s, v) => s + (v - mean) ** 2, 0) / d.length), max: d.reduce((s, v) => Math.max(s, Math.abs(v)), 0) };
    };
    for (const k of ['stem.0.weight', 'stages.2.blocks.3.conv_dw.weight', 'stages.3.blocks.1.mlp.fc1.weight', 'head.fc.weight']) {
      const s = await std(k);
      expect(Math.abs(s.std - 0.02), k).toBeLessThan(0.002);
      expect(s.max).toBeLessThan(0.2); // timm truncates at ±2 absolute: in effect an untruncated N(0, .02²)
    }
    const all = async (k: string, v: number) => expect(Array.from(await sd.get(k)!.value.data()).every((x) => x === v), k).toBe(true);
    await all('stem.0.bias', 0);
    await all('stages.1.blocks.0.mlp.fc2.bias', 0);
    await all('stages.1.downsample.0.weight', 1);
    await all('head.norm.bias', 0);
    await all('stages.0.blocks.1.mlp.grn.weight', 0);
    await all('stages.0.blocks.1.mlp.grn.bias', 0);
    const wa = await a.head.fc!.weight.value.data();
    const wb = await b.head.fc!.weight.value.data();
    await expectClose(wb, Array.from(wa, (v) => v * 0.001), 1e-9, 'convnextv2/head-init-scale');
    const first = async (m: ConvNeXtV2) => Array.from(await m.stages.at(2).blocks.at(0).convDw.weight.value.data());
    expect(await first(a)).toEqual(await first(b));
    expect(await first(a)).not.toEqual(await first(c));
    a.dispose();
    b.dispose();
    c.dispose();
  });

  it('drop path: active in train mode only, per sample, scaled by 1/(1-p)', async () => {
    const m = micro({ dropPathRate: 0.5, seed: 3 });
    await m.loadWeights(f.weights);
    const x = fixtureTensor(f.get('input_nhwc'));
    const e1 = m.forward(x);
    await expectClose(e1, f.get('logits').data, f.atol('logits'), 'convnextv2_micro/logits-eval-with-drop-path');
    m.train();
    expect(m.stages.at(3).blocks.at(0).dropPath.training).toBe(true);
    expect(m.stages.at(3).blocks.at(0).dropPath.p).toBeCloseTo(0.5);
    expect(m.stages.at(0).blocks.at(0).dropPath.p).toBe(0);
    const outs: Float32Array[] = [];
    for (let i = 0; i < 4; i++) {
      const t = m.forward(x);
      outs.push((await t.data()) as Float32Array);
      t.dispose();
    }
    expect(outs.some((o) => o.some((v, i) => Math.abs(v - f.get('logits').data[i]!) > 1e-3))).toBe(true);
    m.eval();
    const e2 = m.forward(x);
    expect(Array.from(await e2.data())).toEqual(Array.from(await e1.data()));
    tf.dispose([x, e1, e2]);
    m.dispose();
  });

  it('preprocess: resize shorter side to size/cropPct, centre crop, ImageNet normalisation (exact where no resize)', async () => {
    // 256 = floor(224 / 0.875): no resize, so the output is exactly the normalised centre crop.
    const H = 256;
    const W = 320;
    const px = new Uint8ClampedArray(H * W * 4);
    for (let i = 0; i < px.length; i++) px[i] = (i * 7 + (i >> 5)) % 256;
    const m = createModel('convnextv2_atto');
    const y = m.preprocess({ data: px, width: W, height: H });
    expect(y.shape).toEqual([1, 224, 224, 3]);
    const mean = [0.485, 0.456, 0.406];
    const sd = [0.229, 0.224, 0.225];
    const want = new Float64Array(224 * 224 * 3);
    const top = 16;
    const left = 48;
    for (let r = 0; r < 224; r++)
      for (let c = 0; c < 224; c++)
        for (let k = 0; k < 3; k++) want[(r * 224 + c) * 3 + k] = (px[((r + top) * W + c + left) * 4 + k]! / 255 - mean[k]!) / sd[k]!;
    await expectClose(y, want, 1e-5, 'convnextv2/preprocess-crop');
    // A resize keeps a constant image constant.
    const flat = tf.fill([1, 100, 150, 3], 128);
    const z = preprocess(flat, { size: 64, cropPct: 1 });
    expect(z.shape).toEqual([1, 64, 64, 3]);
    const zd = await z.data();
    for (let k = 0; k < 3; k++) expect(zd[k]).toBeCloseTo((128 / 255 - mean[k]!) / sd[k]!, 5);
    expect(() => preprocess(tf.zeros([10, 10]))).toThrow(/\[H, W, 1\|3\|4\]/);
    tf.dispose([y, flat, z]);
    m.dispose();
  });

  it('fine-tuning: a new 3-class head trained with AdamW-style steps lowers the loss (depth-wise conv backprop included)', async () => {
    const m = await loadedMicro();
    m.resetClassifier(3);
    m.train();
    const x = fixtureTensor(f.get('input_nhwc'));
    const labels = tf.oneHot(tf.tensor1d([0, 2], 'int32'), 3);
    const opt = tf.train.adam(3e-3);
    const loss = () => tf.losses.softmaxCrossEntropy(labels, m.forward(x)) as tf.Scalar;
    const losses: number[] = [];
    const dw = m.stages.at(0).blocks.at(0).convDw.weight;
    const dw0 = Array.from(await dw.value.data());
    const t0 = performance.now();
    for (let i = 0; i < 5; i++) {
      const l = opt.minimize(loss, true)!;
      losses.push((await l.data())[0]!);
      l.dispose();
    }
    const ms = (performance.now() - t0) / 5;
    console.info(`[timing] convnextv2_micro 2x32x32 training step (Adam): ${ms.toFixed(0)} ms`);
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(losses[4]!).toBeLessThan(losses[0]! * 0.9);
    expect(Array.from(await dw.value.data())).not.toEqual(dw0);
    tf.dispose([x, labels]);
    opt.dispose();
    m.dispose();
  });
});
