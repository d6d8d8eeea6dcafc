/**
 * ConvNeXt V2 through the shared model contract: the one registry (`models`), `readWeights` / `writeWeights`
 * (the metadata rule and the older `config.architecture` form), and the checks that run before a model is
 * allocated (hostile files whose config describes a giant model, integer tensors, non-finite values).
 */
import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend, expectClose, fixtureTensor, loadFixture, type Fixture } from '@softbias/test-utils';
import { parseSafetensors, serializeSafetensors } from '@softbias/tensor-ops';
import { WeightsError, models, preprocess, type VisionModel } from '@softbias/tensor-ops/models';
import { ConvNeXtV2, createModel, listModels, loadModel } from './index.js';
import { createFcmae, loadFcmae } from '@softbias/models-convnextv2/fcmae';

function microConfig(f: Fixture) {
  const c = f.config;
  return { depths: c.depths, dims: c.dims, numClasses: c.num_classes, inChans: c.in_chans, convMlp: c.conv_mlp };
}

/** Tensors allocated by `fn`, which must throw. */
async function allocatedByFailure(fn: () => Promise<unknown>): Promise<{ error: unknown; tensors: number; bytes: number }> {
  const before = tf.memory();
  let error: unknown;
  try {
    await fn();
  } catch (e) {
    error = e;
  }
  const after = tf.memory();
  return { error, tensors: after.numTensors - before.numTensors, bytes: after.numBytes - before.numBytes };
}

describeBackend('convnextv2 through the model contract', () => {
  const f = loadFixture('convnextv2_micro');

  it('registers its sizes and families into the one registry; create gives a VisionModel', () => {
    expect(models.list({ family: 'convnextv2' })).toEqual(listModels());
    expect(models.familyNames()).toEqual(expect.arrayContaining(['convnextv2', 'fcmae']));
    expect(models.get('convnextv2_atto').pretrainedConfig).toMatchObject({ inputSize: [3, 224, 224], cropPct: 0.875, firstConv: 'stem.0', classifier: 'head.fc' });
    const m: VisionModel = models.create('convnextv2_atto', { numClasses: 5 });
    expect(m).toBeInstanceOf(ConvNeXtV2);
    expect([m.numClasses, m.numFeatures, m.pretrainedConfig.numClasses]).toEqual([5, 320, 5]);
    m.resetClassifier(0);
    expect(m.numClasses).toBe(0);
    expect(m.namedParameters().some(([k]) => k.startsWith('head.fc'))).toBe(false);
    m.resetClassifier(3);
    expect(m.namedParameters().slice(-2).map(([k, p]) => [k, p.torchShape])).toEqual([['head.fc.weight', [3, 320]], ['head.fc.bias', [3]]]);
    m.dispose();
    expect(() => models.get('convnextv2_gigantic')).toThrow(/unknown model 'convnextv2_gigantic'; registered: .*convnextv2_atto/);
  });

  it('fromFile: the metadata rule, the old config.architecture form, the fixture and official names give the same logits', async () => {
    const x = fixtureTensor(f.get('input_nhwc'));
    const want = f.get('logits');
    const model = createModel('convnextv2_custom', microConfig(f));
    await model.loadWeights(f.weights);
    const bytes = await model.saveWeights();
    const sources: [string, Uint8Array | Map<string, { data: Float32Array; shape: number[] }>][] = [
      ['rule', bytes],
      ['old form', serializeSafetensors(f.weights, { metadata: { config: JSON.stringify({ architecture: 'convnextv2', ...model.config }) } })],
      ['timm, no metadata', serializeSafetensors(f.weights)],
      ['fixture file', serializeSafetensors(f.weights, { metadata: { ...parseSafetensors(bytes).metadata, arch: '', config: JSON.stringify(f.config), family: 'convnextv2' } })],
    ];
    for (const [what, src] of sources) {
      const m = await models.fromFile(src);
      expect(m, what).toBeInstanceOf(ConvNeXtV2);
      expect((m as ConvNeXtV2).config.dims, what).toEqual([16, 32, 64, 128]);
      const y = m.forward(x);
      await expectClose(y, want.data, f.atol('logits'), `convnextv2_micro/logits-fromFile-${what}`);
      y.dispose();
      m.dispose();
    }
    tf.dispose(x);
    model.dispose();
  });

  it('a 1-2 KB file whose config describes a giant model fails before anything is allocated', async () => {
    const tiny: [string, { data: Float32Array; shape: number[] }][] = [['stem.0.weight', { data: new Float32Array(16 * 3 * 4 * 4), shape: [16, 3, 4, 4] }]];
    const giant = [
      { name: 'convnextv2_custom', depths: [3, 3, 1_000_000_000, 3], dims: [16, 32, 64, 128], numClasses: 10, inChans: 3, convMlp: false },
      { name: 'convnextv2_custom', depths: [3, 3, 27, 3], dims: [100_000_000, 32, 64, 128], numClasses: 10, inChans: 3, convMlp: false },
      { name: 'convnextv2_huge', depths: [3, 3, 27, 3], dims: [352, 704, 1408, 2816], numClasses: 1000, inChans: 3, convMlp: false },
    ];
    for (const config of giant) {
      const file = serializeSafetensors(tiny, { metadata: { format: 'pt', arch: config.name, family: 'convnextv2', config: JSON.stringify(config) } });
      expect(file.byteLength).toBeLessThan(4096);
      for (const load of [() => models.fromFile(file), () => loadModel(file)]) {
        const r = await allocatedByFailure(load);
        expect(r.error).toBeInstanceOf(WeightsError);
        expect(String(r.error)).toMatch(/exceeds the limit|does not fit ConvNeXt V2|missing tensor/);
        expect([r.tensors, r.bytes]).toEqual([0, 0]);
      }
    }
  });

  it('integer tensors and NaN are refused before allocation unless cast / allowed explicitly', async () => {
    const model = createModel('convnextv2_custom', microConfig(f));
    await model.loadWeights(f.weights);
    const good = parseSafetensors(await model.saveWeights());
    // The same file with head.fc.bias stored as I64.
    const names = good.names();
    const header: Record<string, unknown> = { __metadata__: good.metadata };
    const parts: Uint8Array[] = [];
    let off = 0;
    for (const n of names) {
      const t = good.getFloat32(n);
      let bytes: Uint8Array;
      let dtype = 'F32';
      if (n === 'head.fc.bias') {
        const v = new BigInt64Array(t.data.length).fill(1n);
        bytes = new Uint8Array(v.buffer);
        dtype = 'I64';
      } else bytes = new Uint8Array(t.data.buffer.slice(0));
      header[n] = { dtype, shape: t.shape, data_offsets: [off, off + bytes.length] };
      parts.push(bytes);
      off += bytes.length;
    }
    const json = new TextEncoder().encode(JSON.stringify(header));
    const file = new Uint8Array(8 + json.length + off);
    new DataView(file.buffer).setBigUint64(0, BigInt(json.length), true);
    file.set(json, 8);
    let p = 8 + json.length;
    for (const b of parts) {
      file.set(b, p);
      p += b.length;
    }
    const r = await allocatedByFailure(() => models.fromFile(file));
    expect(String(r.error)).toMatch(/'head\.fc\.bias' is I64 where float32 weights are expected/);
    expect(r.tensors).toBe(0);
    await expect(model.loadWeights(file)).rejects.toThrow(/allowIntegerCast/);
    const cast = await models.fromFile(file, { allowIntegerCast: true });
    expect(Array.from(await (cast as ConvNeXtV2).head.fc!.bias!.value.data())).toEqual(new Array(10).fill(1));
    cast.dispose();
    const nan = new Map(f.weights);
    const w = f.weights.get('stem.0.bias')!;
    const data = Float32Array.from(w.data);
    data[1] = Number.NaN;
    nan.set('stem.0.bias', { data, shape: w.shape });
    const bad = serializeSafetensors(nan);
    const rn = await allocatedByFailure(() => models.fromFile(bad));
    expect(String(rn.error)).toMatch(/'stem\.0\.bias' holds NaN at index 1.*allowNonFinite/);
    expect(rn.tensors).toBe(0);
    const ok = await loadModel(bad, { allowNonFinite: true });
    ok.dispose();
    model.dispose();
  });

  it('FCMAE files: the registry names what they are; loadFcmae checks the config before allocating', async () => {
    const fc = createFcmae({ imgSize: 64, depths: [1, 1, 1, 1], dims: [8, 16, 32, 64], decoderEmbedDim: 16 });
    const bytes = await fc.saveWeights();
    await expect(models.fromFile(bytes)).rejects.toThrow(/FCMAE pre-training model .*loadFcmae/);
    const back = await loadFcmae(bytes);
    expect(back.namedParameters().map(([k, p]) => [k, p.torchShape])).toEqual(fc.namedParameters().map(([k, p]) => [k, p.torchShape]));
    back.dispose();
    const giantCfg = { ...fc.config, dims: [8, 16, 32, 64], decoderEmbedDim: 50_000, decoderDepth: 2000 };
    const hostile = serializeSafetensors([['mask_token', { data: new Float32Array(16), shape: [1, 16, 1, 1] }]], {
      metadata: { format: 'pt', arch: 'fcmae', family: 'fcmae', config: JSON.stringify(giantCfg) },
    });
    const r = await allocatedByFailure(() => loadFcmae(hostile));
    expect(r.error).toBeInstanceOf(WeightsError);
    expect(r.tensors).toBe(0);
    // The old form (config.architecture 'fcmae') still loads.
    const old = serializeSafetensors([...parseSafetensors(bytes).names()].map((n) => [n, parseSafetensors(bytes).getFloat32(n)] as const), {
      metadata: { config: JSON.stringify({ architecture: 'fcmae', ...fc.config }) },
    });
    const o = await loadFcmae(old);
    o.dispose();
    await expect(loadFcmae(serializeSafetensors(f.weights, { metadata: { config: JSON.stringify({ architecture: 'convnextv2' }) } }))).rejects.toThrow(
      /holds a 'convnextv2' model, not FCMAE/,
    );
    fc.dispose();
  });

  it('the shared preprocess takes the model (its pretrained config)', () => {
    const m = createModel('convnextv2_atto');
    const x = preprocess(tf.zeros([300, 400, 3], 'int32'), m);
    expect(x.shape).toEqual([1, 224, 224, 3]);
    x.dispose();
    m.dispose();
  });
});
