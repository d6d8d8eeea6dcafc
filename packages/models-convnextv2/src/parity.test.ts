/**
 * Parity with the PyTorch reference fixtures (timm and official ConvNeXt-V2 code), on every backend:
 * convnextv2_micro (stem, stage outputs, pooled, pre-logits, logits, loss, gradients) and convnextv2_atto
 * (224 px: logits, pre-logits, pooled, stage statistics), loading timm names, official names and bytes.
 */
import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend, currentBackend, reducedHere, expectClose, loadFixture, fixtureTensor, FixtureComparison, type Fixture } from '@softbias/test-utils';
import { serializeSafetensors } from '@softbias/tensor-ops';
import { createModel, loadModel } from './index.js';
import { modelFor, checkForward, checkGradients } from '../test/fixture-checks.js';

/** The fixture's weights under the official names and shapes (manifest `official_key_map`). */
function officialStateDict(f: Fixture): Map<string, { data: Float32Array; shape: number[] }> {
  const out = new Map<string, { data: Float32Array; shape: number[] }>();
  for (const [k, v] of Object.entries(f.entry.official_key_map as Record<string, { official_key: string; official_shape: number[] }>)) {
    const w = f.weights.get(k)!;
    expect(w.data.length).toBe(v.official_shape.reduce((a, b) => a * b, 1));
    out.set(v.official_key, { data: w.data, shape: v.official_shape });
  }
  return out;
}

/** Mean / population std over everything, and per (image, channel) over H, W, in float64. */
function stats(data: Float32Array, shape: number[]) {
  const [B, H, W, C] = shape as [number, number, number, number];
  const n = data.length;
  let s = 0;
  for (let i = 0; i < n; i++) s += data[i]!;
  const mean = s / n;
  let v = 0;
  for (let i = 0; i < n; i++) v += (data[i]! - mean) ** 2;
  const chanMean = new Float64Array(B * C);
  const chanStd = new Float64Array(B * C);
  for (let b = 0; b < B; b++)
    for (let c = 0; c < C; c++) {
      let cs = 0;
      for (let p = 0; p < H * W; p++) cs += data[(b * H * W + p) * C + c]!;
      const cm = cs / (H * W);
      let cv = 0;
      for (let p = 0; p < H * W; p++) cv += (data[(b * H * W + p) * C + c]! - cm) ** 2;
      chanMean[b * C + c] = cm;
      chanStd[b * C + c] = Math.sqrt(cv / (H * W));
    }
  return { mean, std: Math.sqrt(v / n), chanMean, chanStd };
}

describeBackend('convnextv2_micro parity (timm reference)', () => {
  const f = loadFixture('convnextv2_micro');

  // The comparisons live in test/fixture-checks.ts, shared with mutation.test.ts (bugged models must fail them).
  it('stem, every stage output, pooled, pre-logits, logits', async () => {
    const model = modelFor(f);
    const r = await model.loadWeights(f.weights);
    expect(r.naming).toBe('timm');
    expect(r.loaded.length).toBe(f.weights.size);
    await checkForward(model, new FixtureComparison(f, 'assert'));
    model.dispose();
  });

  it('loss and gradients (input and the six fixture parameters)', async () => {
    const model = modelFor(f);
    await model.loadWeights(f.weights);
    await checkGradients(model, new FixtureComparison(f, 'assert'));
    model.dispose();
  });

  it('loads official key names (and shapes), safetensors bytes, and rebuilds from a file with loadModel', async () => {
    const x = fixtureTensor(f.get('input_nhwc'));
    const want = f.get('logits');
    const official = modelFor(f);
    const r = await official.loadWeights(officialStateDict(f));
    expect(r.naming).toBe('official');
    const l1 = official.forward(x);
    await expectClose(l1, want.data, f.atol('logits'), 'convnextv2_micro/logits-official-names');
    const bytes = serializeSafetensors(f.weights);
    const fromBytes = modelFor(f);
    await fromBytes.loadWeights(bytes);
    const l2 = fromBytes.forward(x);
    await expectClose(l2, want.data, f.atol('logits'), 'convnextv2_micro/logits-bytes');
    // No config metadata in these bytes: the architecture is read off the shapes.
    const rebuilt = await loadModel(bytes);
    expect(rebuilt.config.depths).toEqual([1, 1, 2, 1]);
    expect(rebuilt.config.dims).toEqual([16, 32, 64, 128]);
    expect(rebuilt.config.convMlp).toBe(false);
    const l3 = rebuilt.forward(x);
    await expectClose(l3, want.data, f.atol('logits'), 'convnextv2_micro/logits-loadModel');
    tf.dispose([x, l1, l2, l3]);
    official.dispose();
    fromBytes.dispose();
    rebuilt.dispose();
  });
});

describeBackend('convnextv2_atto parity (timm reference, 224 px)', () => {
  const f = loadFixture('convnextv2_atto');

  it('logits, pre-logits, pooled and per-stage statistics; forward time', async () => {
    const model = createModel('convnextv2_atto');
    expect(model.numParameters()).toBe(f.entry.weights.num_parameters);
    await model.loadWeights(f.weights);
    const x = fixtureTensor(f.get('input_nhwc'));
    const t0 = performance.now();
    const { intermediates, features } = model.forwardIntermediates(x);
    const logits = model.forwardHead(features!);
    const data = await logits.data();
    const cold = performance.now() - t0;
    await expectClose(data, f.get('logits').data, f.atol('logits'), 'convnextv2_atto/logits');
    expect(logits.shape).toEqual([1, 1000]);
    for (let i = 0; i < 4; i++) {
      const t = intermediates[i]!;
      const s = stats((await t.data()) as Float32Array, t.shape);
      await expectClose([s.mean], f.get(`stage${i}_mean`).data, f.atol(`stage${i}_mean`), `convnextv2_atto/stage${i}_mean`);
      await expectClose([s.std], f.get(`stage${i}_std`).data, f.atol(`stage${i}_std`), `convnextv2_atto/stage${i}_std`);
      await expectClose(s.chanMean, f.get(`stage${i}_chan_mean`).data, f.atol(`stage${i}_chan_mean`), `convnextv2_atto/stage${i}_chan_mean`);
      await expectClose(s.chanStd, f.get(`stage${i}_chan_std`).data, f.atol(`stage${i}_chan_std`), `convnextv2_atto/stage${i}_chan_std`);
    }
    const pooled = tf.mean(features!, [1, 2]);
    await expectClose(pooled, f.get('pooled').data, f.atol('pooled'), 'convnextv2_atto/pooled', [1, 320]);
    const pre = model.forwardHead(features!, { preLogits: true });
    await expectClose(pre, f.get('pre_logits').data, f.atol('pre_logits'), 'convnextv2_atto/pre_logits', [1, 320]);
    // Timing: the first forward (webgpu compiles its shaders, wasm creates its XNNPACK operators) and, where
    // a 224-px forward is cheap, a warm one (vitest.exclusions.ts).
    let warm = NaN;
    if (!reducedHere('convnextv2/atto-224/warm-forward')) {
      const t1 = performance.now();
      const again = model.forward(x);
      await again.data();
      warm = performance.now() - t1;
      again.dispose();
    }
    console.info(`[timing] convnextv2_atto forward 1x224x224 on ${currentBackend}: first ${cold.toFixed(0)} ms, warm ${warm.toFixed(0)} ms`);
    tf.dispose([x, ...intermediates, features!, pooled, pre, logits]);
    model.dispose();
  }, 600_000);

  it('official names with Linear (out, in) MLP weights and (1, 1, 1, C) GRN parameters load to the same parameters', async () => {
    const model = createModel('convnextv2_atto');
    const sd = officialStateDict(f);
    expect(sd.get('stages.0.0.pwconv1.weight')!.shape).toEqual([160, 40]);
    expect(sd.get('stages.0.0.grn.gamma')!.shape).toEqual([1, 1, 1, 160]);
    const r = await model.loadWeights(sd);
    expect(r.naming).toBe('official');
    expect(r.loaded.length).toBe(140);
    // Saved back with timm names and timm's 1x1-conv MLP shapes: identical to the timm checkpoint, bit for bit.
    // (The logits this gives are checked on micro above; the forward equals the timm-loaded one by construction.)
    const sdOut = model.stateDict();
    expect(sdOut.get('stages.0.blocks.0.mlp.fc1.weight')!.shape).toEqual([160, 40, 1, 1]);
    expect(sdOut.get('stages.0.blocks.0.mlp.grn.weight')!.shape).toEqual([160]);
    expect([...sdOut.keys()].sort()).toEqual([...f.weights.keys()].sort());
    const keys = [...f.weights.keys()];
    for (const k of keys) expect(sdOut.get(k)!.shape, k).toEqual(f.weights.get(k)!.shape);
    // One read-back for all 140 tensors: max |saved − checkpoint| per tensor, all exactly 0.
    const diffs = tf.tidy(() =>
      tf.stack(keys.map((k) => tf.max(tf.abs(tf.sub(sdOut.get(k)!, fixtureTensor(f.weights.get(k)!)))))),
    );
    const d = await diffs.data();
    expect(keys.filter((_, i) => d[i] !== 0), 'tensors that differ from the checkpoint').toEqual([]);
    tf.dispose([...sdOut.values(), diffs]);
    // And the logits, where a 224-px forward is cheap (SwiftShader WebGPU takes tens of seconds per forward).
    if (!reducedHere('convnextv2/atto-224/official-names-logits')) {
      const x = fixtureTensor(f.get('input_nhwc'));
      const logits = model.forward(x);
      await expectClose(logits, f.get('logits').data, f.atol('logits'), 'convnextv2_atto/logits-official-names');
      tf.dispose([x, logits]);
    }
    model.dispose();
  }, 600_000);
});
