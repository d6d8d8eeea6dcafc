/** loadWeights / saveWeights / loadModel: sources, strictness, the head, timm DeiT refusal, pos_embed resampling. */
import * as tf from '@tensorflow/tfjs-core';
import { it, expect, vi } from 'vitest';
import { pathToFileURL } from 'node:url';
import { readFileSync } from 'node:fs';
import { describeBackend, loadFixture, expectClose, fixtureTensor } from '@softbias/test-utils';
import { parseSafetensors, serializeSafetensors, type WriteTensor } from '@softbias/tensor-ops';
import { createModel, loadModel } from '@softbias/models-convit';
import { overridesFor, resample2d, tempPath, writeFixtureWeights } from '../test/helpers.js';

// WebGPU runs on SwiftShader (a CPU) here: generous per-test limits.
vi.setConfig({ testTimeout: 900_000 });

const f = loadFixture('convit_micro');
const micro = overridesFor(f);

async function logitsOf(model: ReturnType<typeof createModel>): Promise<Float32Array> {
  const x = fixtureTensor(f.get('input_nhwc'));
  const y = model.forward(x);
  const out = (await y.data()) as Float32Array;
  tf.dispose([x, y]);
  return out;
}

function withEntries(extra: [string, WriteTensor][], drop: (k: string) => boolean = () => false): Uint8Array {
  const entries = [...f.weights.entries()].filter(([k]) => !drop(k));
  return serializeSafetensors([...entries, ...extra]);
}

describeBackend('models-convit: loading and saving weights', () => {
  it('loads from a path, a file: URL, bytes and a parsed file, identically', async () => {
    const path = writeFixtureWeights(f);
    const bytes = new Uint8Array(readFileSync(path));
    const want = f.get('logits');
    for (const [label, source] of [
      ['path', path],
      ['file URL', pathToFileURL(path)],
      ['bytes', bytes],
      ['parsed file', parseSafetensors(bytes)],
    ] as const) {
      const m = createModel('convit_tiny', micro);
      const r = await m.loadWeights(source);
      expect(r.missing).toEqual([]);
      await expectClose(await logitsOf(m), want.data, f.atol('logits'), `convit_micro/logits (loadWeights from ${label})`);
      m.dispose();
    }
  });

  it('strict: a head of another size throws naming head.*, unless skipHead; missing and extra keys are named', async () => {
    const path = writeFixtureWeights(f);
    const m = createModel('convit_tiny', { ...micro, numClasses: 5 });
    await expect(m.loadWeights(path)).rejects.toThrow(/Size mismatch for "head\.weight".*\n[\s\S]*skipHead: true/);
    const headBefore = await m.head.namedParameters()[0]![1].value.data();
    const r = await m.loadWeights(path, { skipHead: true });
    expect(r.loaded).not.toContain('head.weight');
    expect(Array.from(await m.head.namedParameters()[0]![1].value.data())).toEqual(Array.from(headBefore));
    const feats = m.forwardFeatures(fixtureTensor(f.get('input_nhwc')));
    await expectClose(feats, f.get('features').data, f.atol('features'), 'convit_micro/features (skipHead)');
    feats.dispose();
    m.dispose();
    const m2 = createModel('convit_tiny', micro);
    await expect(m2.loadWeights(withEntries([], (k) => k === 'blocks.1.attn.gating_param'))).rejects.toThrow(
      /Missing key\(s\) \(1\): "blocks\.1\.attn\.gating_param"/,
    );
    await expect(m2.loadWeights(withEntries([['blocks.9.attn.qk.weight', { data: new Float32Array(4), shape: [2, 2] }]]))).rejects.toThrow(
      /Unexpected key\(s\) \(1\): "blocks\.9\.attn\.qk\.weight"/,
    );
    m2.dispose();
  });

  it("refuses timm's deit_* (VisionTransformer) checkpoints, including into the DeiT twins", async () => {
    // The module tree of timm deit_tiny-like weights: pos_embed with 1 + N rows, qkv (with bias) from block 0,
    // no GPSA gating_param anywhere.
    const C = 48;
    const t = (shape: number[]): WriteTensor => ({ data: new Float32Array(shape.reduce((a, b) => a * b, 1)), shape });
    const deit: [string, WriteTensor][] = [
      ['cls_token', t([1, 1, C])],
      ['pos_embed', t([1, 65, C])],
      ['patch_embed.proj.weight', t([C, 3, 4, 4])],
      ['patch_embed.proj.bias', t([C])],
    ];
    for (let i = 0; i < 4; i++) {
      deit.push([`blocks.${i}.norm1.weight`, t([C])], [`blocks.${i}.attn.qkv.weight`, t([3 * C, C])], [`blocks.${i}.attn.qkv.bias`, t([3 * C])]);
    }
    const twin = createModel('convit_tiny_deit', { ...micro, localUpToLayer: 0 });
    await expect(twin.loadWeights(serializeSafetensors(deit))).rejects.toThrow(
      /timm VisionTransformer\/DeiT checkpoint \(deit_\*\), not a ConViT one: its pos_embed has 65 rows = 1 \+ 64 patches/,
    );
    await expect(loadModel(serializeSafetensors(deit))).rejects.toThrow(/VisionTransformer\/DeiT checkpoint/);
    // deit_*_224 weights (1 + 14×14 rows) offered to a model of another grid are refused too.
    const deit224 = deit.map(([k, v]): [string, WriteTensor] => (k === 'pos_embed' ? [k, t([1, 197, C])] : [k, v]));
    await expect(twin.loadWeights(serializeSafetensors(deit224))).rejects.toThrow(/pos_embed has 197 rows = 1 \+ 196 patches/);
    const distilled = serializeSafetensors([...deit, ['dist_token', t([1, 1, C])], ['head_dist.weight', t([10, C])]]);
    await expect(twin.loadWeights(distilled)).rejects.toThrow(/distillation token/);
    // The twin's own weights (ConViT tree: pos_embed over the patches only) load, with or without metadata.
    const own = await twin.saveWeights();
    const plain = serializeSafetensors([...parseSafetensors(own).names()].map((k) => [k, parseSafetensors(own).getFloat32(k)]));
    const back = createModel('convit_tiny_deit', { ...micro, localUpToLayer: 0, seed: 5 });
    await back.loadWeights(plain);
    await expectClose(await logitsOf(back), await logitsOf(twin), 1e-6, 'DeiT twin: weights without metadata');
    twin.dispose();
    back.dispose();
  });

  it('resamples pos_embed bicubically to another grid (up, down, non-square) and says so', async () => {
    const path = writeFixtureWeights(f);
    const src = f.weights.get('pos_embed')!;
    for (const imgSize of [48, 16, [32, 48]] as const) {
      const model = createModel('convit_tiny', { ...micro, imgSize });
      const [gh, gw] = model.gridSize;
      const onNotice = vi.fn();
      const r = await model.loadWeights(path, { onNotice });
      expect(r.notices).toEqual([`pos_embed resampled (bicubic, antialiased) from the checkpoint's 8×8 patch grid to this model's ${gh}×${gw}`]);
      expect(onNotice).toHaveBeenCalledWith(r.notices[0]);
      const want = resample2d(src.data, [8, 8, 48], [gh, gw]);
      await expectClose(model.pos_embed!.value, want, 1e-5, `pos_embed resampled 8×8 → ${gh}×${gw}`, [1, gh * gw, 48]);
      const gate = model.blocks.at(0).attn.namedParameters().find(([n]) => n === 'gating_param')![1];
      await expectClose(gate.value, f.weights.get('blocks.0.attn.gating_param')!.data, 0, 'other weights load as stored');
      const y = model.forward(tf.zeros([1, model.config.imgSize[0], model.config.imgSize[1], 3]));
      expect(y.shape).toEqual([1, 10]);
      y.dispose();
      model.dispose();
    }
  });

  it('saveWeights writes timm names, PyTorch layouts and the config; loadModel rebuilds from it or from bare timm keys', async () => {
    const m = createModel('convit_tiny', micro);
    await m.loadWeights(writeFixtureWeights(f));
    const path = tempPath('saved.safetensors');
    const bytes = await m.saveWeights(path);
    expect(Array.from(readFileSync(path))).toEqual(Array.from(bytes));
    const file = parseSafetensors(bytes);
    expect(file.metadata['arch']).toBe('convit_tiny');
    expect(file.metadata['format']).toBe('pt');
    expect(file.config()).toEqual(JSON.parse(JSON.stringify(m.config)));
    expect(file.names().sort()).toEqual([...f.weights.keys()].sort());
    for (const [k, w] of f.weights) {
      const got = file.getFloat32(k);
      expect(got.shape, k).toEqual(w.shape);
      expect(Array.from(got.data), k).toEqual(Array.from(w.data));
    }
    const rebuilt = await loadModel(path);
    expect(rebuilt.config).toEqual(m.config);
    await expectClose(await logitsOf(rebuilt), f.get('logits').data, f.atol('logits'), 'convit_micro/logits (loadModel, stored config)');
    // A timm state dict without our metadata: the architecture is read from the key names and shapes.
    const bare = await loadModel(writeFixtureWeights(f));
    expect([bare.config.embedDim, bare.config.depth, bare.config.numHeads, bare.config.localUpToLayer]).toEqual([48, 4, 4, 3]);
    expect([bare.config.imgSize, bare.config.patchSize, bare.config.numClasses]).toEqual([[32, 32], 4, 10]);
    await expectClose(await logitsOf(bare), f.get('logits').data, f.atol('logits'), 'convit_micro/logits (loadModel, bare timm keys)');
    for (const x of [m, rebuilt, bare]) x.dispose();
  });
});
