/**
 * A model carries the preprocessing it was trained with: `setPretrainedConfig` → `saveWeights` stores it as
 * `__metadata__.pretrained_cfg` (timm's snake_case), `loadModel` / `models.fromFile` give it back as the
 * model's `pretrainedConfig`, and `classify` / `preprocess` use it — for a grey (1-channel) model too: an RGB
 * image becomes its BT.601 luma, normalised with mean[0] / std[0] (checked against a float64 definition).
 * Malformed entries fail with the field named; a model without its own preprocessing stores none.
 */
import * as tf from '@tensorflow/tfjs-core';
import { describe, it, expect } from 'vitest';
import { channelNormalisation, classify, models, preprocess, readWeights, setLabelNames, setPretrainedConfig, WeightsError } from '@softbias/tensor-ops/models';
import { serializeSafetensors, parseSafetensors } from '@softbias/tensor-ops';
import { createModel, loadModel } from '@softbias/models-convit';

const grey = { imgSize: 8, patchSize: 4, inChans: 1, embedDim: 8, depth: 1, numHeads: 2, localUpToLayer: 1, numClasses: 3 };
const MEAN = 0.286;
const STD = 0.353;

function trainedGrey() {
  const m = createModel('convit_tiny', grey);
  setPretrainedConfig(m, { inputSize: [1, 8, 8], cropPct: 1, interpolation: 'bilinear', mean: [MEAN, MEAN, MEAN], std: [STD, STD, STD] });
  setLabelNames(m, ['a', 'b', 'c']);
  return m;
}

/** The same file with `__metadata__.pretrained_cfg` replaced (tensors as float32). */
function withCfg(bytes: Uint8Array, raw: string): Uint8Array {
  const f = parseSafetensors(bytes);
  const tensors: Record<string, { data: Float32Array; shape: number[] }> = {};
  for (const name of f.names()) {
    const t = f.get(name);
    tensors[name] = { data: Float32Array.from(t.data as ArrayLike<number>), shape: [...t.shape] };
  }
  return serializeSafetensors(tensors, { metadata: { ...f.metadata, pretrained_cfg: raw } });
}

describe('the preprocessing a model was trained with travels in its file', () => {
  it('setPretrainedConfig takes a grey model\'s one mean / std (stored as timm stores it: three) and refuses other shapes', () => {
    const m = createModel('convit_tiny', grey);
    setPretrainedConfig(m, { inputSize: [1, 8, 8], mean: [MEAN], std: [STD] });
    expect(m.pretrainedConfig.mean).toEqual([MEAN, MEAN, MEAN]);
    expect(m.pretrainedConfig.std).toEqual([STD, STD, STD]);
    expect(channelNormalisation(m.pretrainedConfig)).toEqual({ mean: [MEAN], std: [STD] });
    setPretrainedConfig(m, { mean: [0.1, 0.2, 0.3] });
    expect(m.pretrainedConfig.mean).toEqual([0.1, 0.2, 0.3]);
    expect(channelNormalisation(m.pretrainedConfig, 3).mean).toEqual([0.1, 0.2, 0.3]);
    expect(() => setPretrainedConfig(m, { mean: [0.1, 0.2] })).toThrow(/mean takes 1 or 3 values.*got 2/);
    expect(() => setPretrainedConfig(m, { std: [0] })).toThrow(/std values must be finite and > 0/);
    expect(() => setPretrainedConfig(m, { mean: [Number.NaN] })).toThrow(/mean values must be finite/);
    // A refused update changes nothing.
    expect(m.pretrainedConfig.mean).toEqual([0.1, 0.2, 0.3]);
    m.dispose();
  });

  it('saveWeights stores pretrained_cfg; loadModel and models.fromFile restore it; classify uses it', async () => {
    const m = trainedGrey();
    const bytes = await m.saveWeights();
    const w = await readWeights(bytes);
    const stored = JSON.parse(w.metadata['pretrained_cfg']!);
    expect(stored).toMatchObject({ input_size: [1, 8, 8], crop_pct: 1, interpolation: 'bilinear', mean: [MEAN, MEAN, MEAN], std: [STD, STD, STD], num_classes: 3 });
    for (const back of [await loadModel(bytes), await models.fromFile(bytes)]) {
      expect(back.pretrainedConfig).toMatchObject({ inputSize: [1, 8, 8], cropPct: 1, mean: [MEAN, MEAN, MEAN], std: [STD, STD, STD], numClasses: 3 });
      // Saving again keeps it (a loaded model's preprocessing is its own).
      expect(JSON.parse((await readWeights(await back.saveWeights())).metadata['pretrained_cfg']!).mean).toEqual([MEAN, MEAN, MEAN]);
      // A new head: the classes follow, the preprocessing stays.
      back.resetClassifier(5);
      expect(back.pretrainedConfig.numClasses).toBe(5);
      expect(back.pretrainedConfig.mean[0]).toBe(MEAN);
      back.dispose();
    }
    // classify = softmax(forward(the float64 grey transform of the image)).
    const rgb = Uint8Array.from({ length: 8 * 8 * 3 }, (_, i) => (i * 37 + 11) % 256);
    const want = new Float64Array(64);
    for (let p = 0; p < 64; p++) want[p] = ((0.299 * rgb[p * 3]! + 0.587 * rgb[p * 3 + 1]! + 0.114 * rgb[p * 3 + 2]!) / 255 - MEAN) / STD;
    const x = preprocess({ data: rgb, width: 8, height: 8 }, m);
    expect(x.shape).toEqual([1, 8, 8, 1]);
    const got = await x.data();
    const tol = 1e-4 * Math.max(1, ...Array.from(want, Math.abs));
    for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!), `pixel ${i}`).toBeLessThanOrEqual(tol);
    // The same transform on the backend (a tensor image), and a grey image taken as R = G = B.
    const t = tf.tensor3d(rgb, [8, 8, 3], 'int32');
    const xt = preprocess(t, m);
    const dt = await xt.data();
    for (let i = 0; i < want.length; i++) expect(Math.abs(dt[i]! - want[i]!), `tensor pixel ${i}`).toBeLessThanOrEqual(tol);
    const g1 = Uint8Array.from({ length: 64 }, (_, i) => (i * 53) % 256);
    const xg = await preprocess({ data: g1, width: 8, height: 8, channels: 1 }, m).data();
    for (let i = 0; i < g1.length; i++) expect(Math.abs(xg[i]! - (g1[i]! / 255 - MEAN) / STD)).toBeLessThanOrEqual(1e-4 * 3);
    const logits = m.forward(x);
    const probs = await tf.softmax(logits).data();
    const top = await classify(m, { data: rgb, width: 8, height: 8 }, { topK: 3 });
    expect(top.map((p) => p.label).sort()).toEqual(['a', 'b', 'c']);
    for (const p of top) expect(Math.abs(p.score - probs[p.index]!)).toBeLessThanOrEqual(1e-6);
    tf.dispose([x, t, xt, logits]);
    m.dispose();
  });

  it('a model without its own preprocessing stores none; a malformed entry fails naming the field', async () => {
    const plain = createModel('convit_tiny', grey);
    const bytes = await plain.saveWeights();
    plain.dispose();
    expect((await readWeights(bytes)).metadata['pretrained_cfg']).toBeUndefined();
    const cases: [string, RegExp][] = [
      ['{not json', /pretrained_cfg is not valid JSON/],
      ['[1, 2]', /not a JSON object/],
      ['{"mean": [0.5, "x", 0.5]}', /pretrained_cfg\.mean must be/],
      ['{"std": [0.5, 0, 0.5]}', /pretrained_cfg\.std must be 3 positive numbers/],
      ['{"input_size": [1, -8, 8]}', /pretrained_cfg\.input_size must be/],
      ['{"input_size": [3, 8, 8]}', /has 3 channel\(s\), the model takes 1/],
      ['{"crop_pct": 0}', /pretrained_cfg\.crop_pct must be/],
      ['{"interpolation": "nearest"}', /pretrained_cfg\.interpolation must be/],
    ];
    const before = tf.memory().numTensors;
    for (const [raw, msg] of cases) {
      const bad = withCfg(bytes, raw);
      await expect(loadModel(bad), raw).rejects.toThrow(msg);
      await expect(models.fromFile(bad), raw).rejects.toThrow(WeightsError);
    }
    expect(tf.memory().numTensors).toBe(before); // the half-built models are freed
  });
});
