/**
 * FCMAE weights I/O: the fixture's timm-style names, the official dense FCMAE names and the official sparse
 * (MinkowskiEngine) checkpoint layout, rebuilt here from the manifest's `official_key_map` with plain loops;
 * save → load round trips.
 */
import * as tf from '@tensorflow/tfjs-core';
import { describe, it, expect } from 'vitest';
import { loadFixture } from '@softbias/test-utils';
import { parseSafetensors } from '@softbias/tensor-ops';
import { createFcmae, loadFcmae, type Fcmae } from './fcmae.js';
import { detectFcmaeKeyNaming, officialToTimmFcmaeKey } from './fcmae-checkpoint.js';

const fx = loadFixture('fcmae_tiny');
const c = fx.config;
type Raw = { data: Float32Array; shape: number[] };
interface KeyMapEntry {
  official_dense_key: string;
  official_dense_shape: number[];
  official_sparse_ckpt_key: string;
  official_sparse_ckpt_shape: number[];
  sparse_transform: string;
}
const keyMap = fx.entry.official_key_map as Record<string, KeyMapEntry>;

function build(): Fcmae {
  return createFcmae({
    imgSize: c.img_size,
    depths: c.depths,
    dims: c.dims,
    decoderDepth: c.decoder_depth,
    decoderEmbedDim: c.decoder_embed_dim,
    patchSize: c.patch_size,
    seed: 123,
  });
}

/** The manifest's sparse transform, applied with plain loops. */
function toSparse(w: Raw, e: KeyMapEntry): Raw {
  const t = e.sparse_transform;
  const shape = e.official_sparse_ckpt_shape;
  if (t.startsWith('kernel[x*7+y, c] = weight[c, 0, y, x]')) {
    const [C] = w.shape as [number];
    const out = new Float32Array(49 * C);
    for (let cc = 0; cc < C; cc++) for (let y = 0; y < 7; y++) for (let x = 0; x < 7; x++) out[(x * 7 + y) * C + cc] = w.data[(cc * 7 + y) * 7 + x]!;
    return { data: out, shape };
  }
  if (t.startsWith('kernel[x*2+y, in, out] = weight[out, in, y, x]')) {
    const [O, I] = w.shape as [number, number];
    const out = new Float32Array(4 * I * O);
    for (let o = 0; o < O; o++)
      for (let i = 0; i < I; i++) for (let y = 0; y < 2; y++) for (let x = 0; x < 2; x++) out[((x * 2 + y) * I + i) * O + o] = w.data[((o * I + i) * 2 + y) * 2 + x]!;
    return { data: out, shape };
  }
  if (t.startsWith('identical') || t.startsWith('reshape')) {
    expect(shape.reduce((a, b) => a * b, 1)).toBe(w.data.length);
    return { data: w.data, shape };
  }
  throw new Error(`unknown sparse transform '${t}'`);
}

async function expectWeightsEqual(m: Fcmae): Promise<void> {
  const sd = m.stateDict();
  expect([...sd.keys()].sort()).toEqual([...fx.weights.keys()].sort());
  for (const [k, t] of sd) {
    const want = fx.weights.get(k)!;
    expect(t.shape, k).toEqual(want.shape);
    expect(Array.from(await t.data()), k).toEqual(Array.from(want.data));
    t.dispose();
  }
}

describe('FCMAE checkpoints', () => {
  it('loads the fixture (timm-style names) strictly; parameter names and shapes are exactly the fixture\'s', async () => {
    const m = build();
    const r = m.loadStateDict(fx.weights);
    expect(r.naming).toBe('timm');
    expect(r.loaded.length).toBe(fx.weights.size);
    expect(m.numParameters()).toBe(fx.entry.weights.num_parameters);
    await expectWeightsEqual(m);
    m.dispose();
  });

  it('loads the official dense FCMAE names (GRN (1, 1, 1, C))', async () => {
    const sd = new Map<string, Raw>();
    for (const [k, e] of Object.entries(keyMap)) sd.set(e.official_dense_key, { data: fx.weights.get(k)!.data, shape: e.official_dense_shape });
    expect(detectFcmaeKeyNaming(sd.keys())).toBe('official');
    for (const [k, e] of Object.entries(keyMap)) expect(officialToTimmFcmaeKey(e.official_dense_key)).toBe(k);
    const m = build();
    expect(m.loadStateDict(sd).naming).toBe('official');
    await expectWeightsEqual(m);
    m.dispose();
  });

  it('loads the official sparse checkpoint layout (kernels (49, C) / (4, in, out), .ln. / .linear., (1, C))', async () => {
    const sd = new Map<string, Raw>();
    for (const [k, e] of Object.entries(keyMap)) sd.set(e.official_sparse_ckpt_key, toSparse(fx.weights.get(k)!, e));
    expect(detectFcmaeKeyNaming(sd.keys())).toBe('official-sparse');
    const m = build();
    const before = tf.memory().numTensors;
    expect(m.loadStateDict(sd).naming).toBe('official-sparse');
    expect(tf.memory().numTensors).toBe(before);
    await expectWeightsEqual(m);
    m.dispose();
  });

  it('strict loading lists missing and unexpected keys', () => {
    const m = build();
    const sd = new Map(fx.weights);
    sd.delete('mask_token');
    sd.set('encoder.head.fc.weight', { data: new Float32Array(4), shape: [2, 2] });
    expect(() => m.loadStateDict(sd)).toThrow(/Missing key\(s\) \(1\): "mask_token"[\s\S]*Unexpected key\(s\) \(1\): "encoder.head.fc.weight"/);
    m.dispose();
  });

  it('saveWeights → loadFcmae rebuilds the same model (config in the metadata)', async () => {
    const m = build();
    m.loadStateDict(fx.weights);
    const bytes = await m.saveWeights();
    const file = parseSafetensors(bytes);
    expect(file.metadata).toMatchObject({ format: 'pt', arch: 'fcmae', family: 'fcmae' });
    expect(JSON.parse(file.metadata['config']!)).toMatchObject({ imgSize: [128, 128], dims: [8, 16, 32, 64], decoderEmbedDim: 32 });
    const back = await loadFcmae(bytes);
    await expectWeightsEqual(back);
    m.dispose();
    back.dispose();
  });

  it('official init: zero biases and GRN, unit LayerNorms, mask_token ~ N(0, 0.02), trunc-normal std 1 / 0.02 weights', async () => {
    const m = createFcmae({ imgSize: 64, depths: [1, 1, 1, 1], dims: [16, 32, 64, 64], decoderEmbedDim: 64, seed: 1 });
    const stats = async (k: string) => {
      const p = m.namedParameters().find(([n]) => n === k)![1];
      const d = (await p.variable.data()) as Float32Array;
      const mean = d.reduce((a, b) => a + b, 0) / d.length;
      const std = Math.sqrt(d.reduce((a, b) => a + (b - mean) ** 2, 0) / d.length);
      let max = 0;
      for (let i = 0; i < d.length; i++) max = Math.max(max, Math.abs(d[i]!));
      return { mean, std, max };
    };
    // truncated to [-2, 2] at std 1 → std ≈ 0.88
    for (const k of ['encoder.stem.0.weight', 'encoder.stages.1.blocks.0.mlp.fc1.weight', 'encoder.stages.2.blocks.0.conv_dw.weight', 'pred.weight', 'proj.weight']) {
      const s = await stats(k);
      expect(s.std, k).toBeGreaterThan(0.8);
      expect(s.std, k).toBeLessThan(0.96);
      expect(s.max, k).toBeLessThanOrEqual(2);
    }
    expect((await stats('encoder.stages.3.downsample.1.weight')).std).toBeCloseTo(0.02, 2);
    const dec = await stats('decoder.0.mlp.fc1.weight');
    expect(dec.max).toBeLessThanOrEqual(1 / Math.sqrt(64) + 1e-7);
    expect((await stats('mask_token')).std).toBeLessThan(0.05);
    for (const k of ['encoder.stem.0.bias', 'proj.bias', 'encoder.stages.0.blocks.0.mlp.grn.weight', 'decoder.0.mlp.grn.bias', 'encoder.stem.1.bias']) {
      expect((await stats(k)).max, k).toBe(0);
    }
    const ln = await stats('encoder.stages.1.downsample.0.weight');
    expect([ln.mean, ln.std]).toEqual([1, 0]);
    m.dispose();
  });

  it('rejects a patch size other than the encoder stride and image sizes that are not multiples of it', () => {
    expect(() => createFcmae({ patchSize: 16 })).toThrow(/patchSize must equal the encoder's total stride 32/);
    expect(() => createFcmae({ imgSize: 100 })).toThrow(/multiples of the patch size 32/);
    expect(() => createFcmae({ imgSize: 32, maskRatio: 0.6 })).toThrow(/no visible patch/);
  });
});
