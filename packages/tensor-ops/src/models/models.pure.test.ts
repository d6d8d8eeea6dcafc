/**
 * The model contract without a model family: featureTakeIndices, the weights reader's metadata forms, the
 * checks before allocation, the registry's lookups and file routing.
 */
import { describe, it, expect } from 'vitest';
import { Linear, Module, Rng, serializeSafetensors } from '@softbias/tensor-ops';
import {
  ModelRegistry,
  WeightsError,
  checkArchitecture,
  checkWeights,
  featureTakeIndices,
  readWeights,
  writeWeights,
  imagenetConfig,
  type ModelFamily,
} from '@softbias/tensor-ops/models';

/** A safetensors file with one tensor of a given dtype (raw bytes) and metadata. */
function rawFile(name: string, dtype: string, shape: number[], data: Uint8Array, metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = { [name]: { dtype, shape, data_offsets: [0, data.length] } };
  if (metadata) header['__metadata__'] = metadata;
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = new Uint8Array(Math.ceil(json.length / 8) * 8).fill(0x20);
  padded.set(json);
  json = padded;
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

const f32 = (shape: number[], fill = 0.5) => ({ data: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(fill), shape });

describe('featureTakeIndices (timm feature_take_indices)', () => {
  it('all, last n, explicit with negatives; max index', () => {
    expect(featureTakeIndices(4)).toEqual({ indices: [0, 1, 2, 3], maxIndex: 3 });
    expect(featureTakeIndices(12, 3)).toEqual({ indices: [9, 10, 11], maxIndex: 11 });
    expect(featureTakeIndices(4, [-1, 0])).toEqual({ indices: [3, 0], maxIndex: 3 });
  });
  it('out of range and empty are RangeErrors naming the range', () => {
    expect(() => featureTakeIndices(4, 5)).toThrow(/out of range \(1 to 4\)/);
    expect(() => featureTakeIndices(4, 0)).toThrow(RangeError);
    expect(() => featureTakeIndices(4, [4])).toThrow(/feature index 4 is out of range \(0 to 3/);
    expect(() => featureTakeIndices(4, [-5])).toThrow(RangeError);
    expect(() => featureTakeIndices(4, [])).toThrow(/non-empty/);
    expect(() => featureTakeIndices(4, [1.5])).toThrow(RangeError);
  });
});

describe('readWeights: the metadata rule and the older forms', () => {
  const tensors: [string, { data: Float32Array; shape: number[] }][] = [['w', f32([2, 2])]];
  it('writeWeights writes { format, arch, family, config }; readWeights reads it back', async () => {
    const lin = new Linear(3, 2, { rng: new Rng(0) });
    const bytes = await writeWeights(lin, { arch: 'toy_small', family: 'toy', config: { width: 3 }, metadata: { labels: '["a","b"]', arch: 'ignored' } });
    const w = await readWeights(bytes);
    expect(w.metadata).toMatchObject({ format: 'pt', arch: 'toy_small', family: 'toy', labels: '["a","b"]' });
    expect(w.config).toEqual({ width: 3 });
    expect([w.arch, w.family, w.hasSoftbiasMetadata]).toEqual(['toy_small', 'toy', true]);
    expect(w.names()).toEqual(['weight', 'bias']);
    expect(w.shape('weight')).toEqual([2, 3]);
    lin.dispose();
  });
  it('old ConViT form (arch + library) and old ConvNeXt form (config.architecture + name)', async () => {
    const a = await readWeights(serializeSafetensors(tensors, { metadata: { arch: 'convit_tiny', library: '@softbias/models-convit', config: '{"depth":2}' } }));
    expect([a.arch, a.family, a.library, a.hasSoftbiasMetadata]).toEqual(['convit_tiny', undefined, '@softbias/models-convit', true]);
    const b = await readWeights(serializeSafetensors(tensors, { metadata: { config: '{"architecture":"convnextv2","name":"convnextv2_atto"}' } }));
    expect([b.arch, b.family, b.hasSoftbiasMetadata]).toEqual(['convnextv2_atto', 'convnextv2', true]);
    const c = await readWeights(serializeSafetensors(tensors));
    expect([c.arch, c.family, c.config, c.hasSoftbiasMetadata]).toEqual([undefined, undefined, undefined, false]);
    await expect(readWeights(serializeSafetensors(tensors, { metadata: { config: '{nope' } }))).rejects.toThrow(/config is not valid JSON/);
    await expect(readWeights(serializeSafetensors(tensors, { metadata: { config: '[1]' } }))).rejects.toThrow(/not a JSON object/);
  });
  it('a state dict is a source too', async () => {
    const w = await readWeights(new Map([['x', f32([3])]]));
    expect(w.file).toBeNull();
    expect(w.shape('x')).toEqual([3]);
    expect(w.stateDict().get('x')).toBeDefined();
  });
  it('stateDict refuses I64 / BOOL unless allowIntegerCast, and NaN / Inf unless allowNonFinite', async () => {
    const i64 = new Uint8Array(16);
    new DataView(i64.buffer).setBigInt64(0, 7n, true);
    const wi = await readWeights(rawFile('w', 'I64', [2], i64));
    expect(() => wi.stateDict()).toThrow(/'w' \(I64\).*allowIntegerCast/);
    expect(Array.from((wi.stateDict({ allowIntegerCast: true }).get('w') as { data: Float32Array }).data)).toEqual([7, 0]);
    const wb = await readWeights(rawFile('m', 'BOOL', [3], new Uint8Array([1, 0, 1])));
    expect(() => wb.stateDict()).toThrow(WeightsError);
    const bad = f32([4]);
    bad.data[2] = Number.NaN;
    const wn = await readWeights(serializeSafetensors([['w', bad]]));
    expect(() => wn.stateDict()).toThrow(/'w' holds NaN at index 2.*allowNonFinite/);
    expect(Number.isNaN((wn.stateDict({ allowNonFinite: true }).get('w') as { data: Float32Array }).data[2])).toBe(true);
    const wo = await readWeights(serializeSafetensors([['w', bad]]), { allowNonFinite: true });
    expect(() => wo.stateDict()).not.toThrow();
  });
});

describe('checks before allocation', () => {
  it('checkArchitecture bounds image size, depth and width, naming the setting', () => {
    expect(() => checkArchitecture('toy', { imageSize: [224, 224], depth: 12, width: [192] })).not.toThrow();
    expect(() => checkArchitecture('toy', { imageSize: 1e6 })).toThrow(/image size 1000000 exceeds the limit of 8192 \(maxImageSize\)/);
    expect(() => checkArchitecture('toy', { depth: 1e7 })).toThrow(/depth .*maxDepth/);
    expect(() => checkArchitecture('toy', { width: [64, 1e9] })).toThrow(/width .*maxWidth/);
    expect(() => checkArchitecture('toy', { width: [0] })).toThrow(/positive integers/);
    expect(() => checkArchitecture('toy', { depth: 1.5 })).toThrow(/positive integers/);
    expect(() => checkArchitecture('toy', { depth: 20 }, { maxDepth: 10 })).toThrow(/maxDepth/);
  });
  it('checkWeights lists missing, unexpected, mis-shaped and integer tensors in one error', async () => {
    const w = await readWeights(serializeSafetensors([['a', f32([2, 3])], ['b', f32([4])], ['extra', f32([1])]]));
    expect(() => checkWeights('toy', w, [['a', [2, 3]], ['b', [4]], ['extra', [1]]])).not.toThrow();
    let err: unknown;
    try {
      checkWeights('toy', w, [['a', [3, 2]], ['b', [4]], ['c', [5]]]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(WeightsError);
    const msg = (err as Error).message;
    expect(msg).toMatch(/missing tensor\(s\) \(1\): 'c'/);
    expect(msg).toMatch(/unexpected tensor\(s\) \(1\): 'extra'/);
    expect(msg).toMatch(/size mismatch for 'a': the file has \[2,3\], the architecture expects \[3,2\]/);
    expect(() => checkWeights('toy', w, [['a', [2, 3]], ['b', [4]]], { strict: false })).not.toThrow();
    expect(() => checkWeights('toy', w, [['a', [2, 3]], ['b', [4]]], { skip: ['extra'] })).not.toThrow();
    expect(() => checkWeights('toy', w, [['a', [3, 2]], ['b', [4]], ['extra', [1]]], { equivalent: (k) => k === 'a' })).not.toThrow();
    const wi = await readWeights(rawFile('a', 'I64', [1], new Uint8Array(8)));
    expect(() => checkWeights('toy', wi, [['a', [1]]])).toThrow(/'a' is I64 where float32/);
    expect(() => checkWeights('toy', wi, [['a', [1]]], { allowIntegerCast: true })).not.toThrow();
  });
  it('a giant parameter count is refused before any shape list is compared', async () => {
    const w = await readWeights(serializeSafetensors([['a', f32([1])]]));
    expect(() => checkWeights('toy', w, [['a', [100000, 100000]]], { maxParameters: 1e9 })).toThrow(/more than 1000000000 parameters/);
  });
});

class Toy extends Module {
  constructor(readonly width: number) {
    super();
    this.registerModule('fc', new Linear(width, 2, { rng: new Rng(0) }));
  }
}

describe('ModelRegistry', () => {
  function registry() {
    const r = new ModelRegistry<Toy>('toy model');
    const family: ModelFamily<Toy> = {
      name: 'toy',
      description: 'toy linear models',
      libraries: ['@x/toy'],
      recognises: (names) => names.has('fc.weight'),
      async fromFile(w) {
        const width = Number((w.config?.['width'] as number | undefined) ?? w.shape('fc.weight')![1]);
        checkWeights('toy', w, [['fc.weight', [2, width]], ['fc.bias', [2]]]);
        const m = new Toy(width);
        m.loadStateDict(w.stateDict());
        return m;
      },
    };
    r.registerFamily(family);
    r.registerFamily({ name: 'toy_mae', description: 'a toy pre-training model', refusal: 'fine-tune it first', recognises: (n) => n.has('mask_token') });
    const cfg = imagenetConfig({ firstConv: 'fc', classifier: 'fc' });
    r.register(
      { name: 'toy_small', family: 'toy', description: 'small', pretrainedConfig: cfg, create: () => new Toy(3) },
      { name: 'toy_large', family: 'toy', description: 'large', pretrainedConfig: { ...cfg, weights: 'hub/toy' }, create: () => new Toy(5) },
    );
    return r;
  }
  it('list with substring, wildcard, family and pretrained filters; get names the registered ones', () => {
    const r = registry();
    expect(r.list()).toEqual(['toy_small', 'toy_large']);
    expect(r.list('large')).toEqual(['toy_large']);
    expect(r.list('*_small')).toEqual(['toy_small']);
    expect(r.list('small*')).toEqual([]);
    expect(r.list({ family: 'toy_mae' })).toEqual([]);
    expect(r.list({ pretrained: true })).toEqual(['toy_large']);
    expect(() => r.get('toy_huge')).toThrow("unknown toy model 'toy_huge'; registered: toy_small, toy_large");
    expect(() => r.family('nope')).toThrow(/unknown toy model family 'nope'; registered: toy, toy_mae/);
    expect(() => r.register({ name: 'x', family: 'nope', description: '', pretrainedConfig: imagenetConfig({ firstConv: '', classifier: '' }), create: () => new Toy(1) })).toThrow(/family 'nope' is not registered/);
    const m = r.create('toy_large');
    expect(m.width).toBe(5);
    m.dispose();
  });
  it('fromFile routes by family, arch (a model name), library, then tensor names; refuses what it cannot load', async () => {
    const r = registry();
    const src = new Toy(4);
    const tensors = [...src.stateDict()].map(([k, t]) => [k, { data: t.dataSync() as Float32Array, shape: t.shape }] as [string, { data: Float32Array; shape: number[] }]);
    const forms: Record<string, string>[] = [{ family: 'toy' }, { arch: 'toy_small', config: '{"width":4}' }, { library: '@x/toy' }, {}];
    for (const metadata of forms) {
      const m = await r.fromFile(serializeSafetensors(tensors, { metadata }));
      expect(m.width).toBe(4);
      m.dispose();
    }
    await expect(r.fromFile(serializeSafetensors([['mask_token', f32([1])]]))).rejects.toThrow(/a toy pre-training model \('toy_mae'\): fine-tune it first/);
    await expect(r.fromFile(serializeSafetensors([['other', f32([1])]], { metadata: { arch: 'resnet50' } }))).rejects.toThrow(
      /not a file of a registered toy model family \(it names 'resnet50'\); registered: toy \(toy linear models\)/,
    );
    await expect(r.fromFile(serializeSafetensors([['fc.weight', f32([2, 4])], ['mask_token', f32([1])]]))).rejects.toThrow(/fit several/);
    // A 1 KB file whose config describes a giant model fails in the check, before allocation.
    await expect(r.fromFile(serializeSafetensors(tensors, { metadata: { family: 'toy', config: '{"width":100000000}' } }))).rejects.toThrow(WeightsError);
    for (const t of src.stateDict().values()) t.dispose();
    src.dispose();
  });
});
