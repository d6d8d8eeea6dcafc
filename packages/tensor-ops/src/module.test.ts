/**
 * Module system on every backend: timm names, PyTorch layouts out of stateDict() (linear [out, in], conv OIHW,
 * depthwise [C, 1, kh, kw]), loadStateDict (strict: every missing / unexpected / mis-shaped key in ONE error and
 * nothing changed; non-strict; skip prefixes), train/eval propagation and hooks, noWeightDecay, dispose, and
 * fixture weights (convit_micro) loaded by timm name into a module tree mirroring part of the model.
 */
import * as tf from '@tensorflow/tfjs-core';
import { it, expect, afterEach } from 'vitest';
import { describeBackend, loadFixture, expectClose } from '@softbias/test-utils';
import {
  Module,
  ModuleList,
  Parameter,
  StateDictError,
  Linear,
  LayerNorm,
  Mlp,
  PatchEmbed,
  DropPath,
  Dropout,
  Rng,
  truncNormal,
  zeros,
  toTorch,
  fromTorch,
  torchShape,
  tensorFromTorchData,
  saveSafetensorsBytes,
  readSafetensors,
  loadSafetensorsInto,
  stateDictFromSafetensors,
  type ParamLayout,
} from '@softbias/tensor-ops';

const live: Module[] = [];
function track<M extends Module>(m: M): M {
  live.push(m);
  return m;
}
afterEach(() => {
  for (const m of live.splice(0)) m.dispose();
});

/** A ConViT-like block without attention: norm1, mlp, norm2, drop_path (timm names). */
class Block extends Module {
  readonly norm1: LayerNorm;
  readonly norm2: LayerNorm;
  readonly mlp: Mlp;
  readonly dropPath: DropPath;
  modeChanges: boolean[] = [];
  weightsLoaded = 0;
  constructor(dim: number, rng: Rng, dropPath = 0) {
    super();
    this.norm1 = this.registerModule('norm1', new LayerNorm(dim));
    this.norm2 = this.registerModule('norm2', new LayerNorm(dim));
    this.mlp = this.registerModule('mlp', new Mlp(dim, { hiddenFeatures: 4 * dim, rng }));
    this.dropPath = this.registerModule('drop_path', new DropPath(dropPath, rng.fork()));
  }
  protected override onModeChange(training: boolean): void {
    this.modeChanges.push(training);
  }
  protected override onWeightsLoaded(): void {
    this.weightsLoaded++;
  }
}

/** The non-attention part of convit_micro: patch_embed, cls_token, pos_embed, blocks.*, norm, head. */
class MicroTrunk extends Module {
  readonly patchEmbed: PatchEmbed;
  readonly clsToken: Parameter;
  readonly posEmbed: Parameter;
  readonly blocks: ModuleList<Block>;
  readonly norm: LayerNorm;
  readonly head: Linear;
  constructor(cfg: { img_size: number; patch_size: number; in_chans: number; embed_dim: number; depth: number; num_classes: number }, seed = 0) {
    super();
    const rng = new Rng(seed);
    const D = cfg.embed_dim;
    this.clsToken = this.registerParameter('cls_token', truncNormal([1, 1, D], rng), { noWeightDecay: true });
    this.posEmbed = this.registerParameter('pos_embed', truncNormal([1, (cfg.img_size / cfg.patch_size) ** 2, D], rng), {
      noWeightDecay: true,
    });
    this.patchEmbed = this.registerModule(
      'patch_embed',
      new PatchEmbed({ imgSize: cfg.img_size, patchSize: cfg.patch_size, inChans: cfg.in_chans, embedDim: D, rng: rng.fork() }),
    );
    this.blocks = this.registerModule('blocks', new ModuleList(Array.from({ length: cfg.depth }, () => new Block(D, rng.fork()))));
    this.norm = this.registerModule('norm', new LayerNorm(D));
    this.head = this.registerModule('head', new Linear(D, cfg.num_classes, { rng: rng.fork() }));
  }
}

const microCfg = () => ({ ...loadFixture('convit_micro').config, depth: 4 });

/** Holds one parameter of each layout with known tfjs-layout values. */
class Layouts extends Module {
  constructor() {
    super();
    const seq = (shape: number[]) => tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => i), shape);
    this.registerParameter('plain', seq([2, 3]));
    this.registerParameter('lin', seq([3, 2]), { layout: 'linear' }); // [in=3, out=2]
    this.registerParameter('conv', seq([2, 3, 4, 5]), { layout: 'conv' }); // [kh=2, kw=3, I=4, O=5]
    this.registerParameter('dw', seq([3, 2, 4, 1]), { layout: 'depthwise' }); // [kh=3, kw=2, C=4, 1]
  }
}

function same(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}

async function values(m: Module): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [n, p] of m.namedParameters()) out.set(n, (await p.value.data()) as Float32Array);
  return out;
}

describeBackend('Module: names and layouts', () => {
  it('parameter names are the timm state_dict keys, in registration order', () => {
    const m = track(new MicroTrunk(microCfg()));
    const names = m.namedParameters().map(([n]) => n);
    const fixtureNames = new Set(loadFixture('convit_micro').weights.keys());
    // Every name exists in the timm checkpoint (the trunk has no attention, so the converse does not hold).
    expect(names.filter((n) => !fixtureNames.has(n))).toEqual([]);
    expect(names.slice(0, 4)).toEqual(['cls_token', 'pos_embed', 'patch_embed.proj.weight', 'patch_embed.proj.bias']);
    expect(names).toContain('blocks.3.mlp.fc2.bias');
    expect(names.slice(-4)).toEqual(['norm.weight', 'norm.bias', 'head.weight', 'head.bias']);
    expect(names.length).toBe(4 + 4 * 8 + 4);
    expect(m.namedModules().map(([n]) => n)).toContain('blocks.2.mlp.fc1');
    expect(m.blocks.length).toBe(4);
    expect(m.blocks.at(-1)).toBe(m.blocks.at(3));
    expect(() => m.blocks.at(4)).toThrow(/index 4 out of range \(length 4\)/);
    expect([...m.blocks].length).toBe(4);
    expect(m.numParameters()).toBe(
      [...loadFixture('convit_micro').weights].filter(([n]) => names.includes(n)).reduce((s, [, t]) => s + t.data.length, 0),
    );
  });

  it('stateDict() returns PyTorch layouts: linear [out, in], conv OIHW, depthwise [C, 1, kh, kw]', async () => {
    const m = track(new Layouts());
    const sd = m.stateDict();
    try {
      expect(sd.get('plain')!.shape).toEqual([2, 3]);
      expect(sd.get('lin')!.shape).toEqual([2, 3]);
      expect(sd.get('conv')!.shape).toEqual([5, 4, 2, 3]);
      expect(sd.get('dw')!.shape).toEqual([4, 1, 3, 2]);
      const lin = (await sd.get('lin')!.data()) as Float32Array;
      for (let o = 0; o < 2; o++) for (let i = 0; i < 3; i++) expect(lin[o * 3 + i]).toBe(i * 2 + o);
      const conv = (await sd.get('conv')!.data()) as Float32Array;
      for (let o = 0; o < 5; o++)
        for (let c = 0; c < 4; c++)
          for (let kh = 0; kh < 2; kh++)
            for (let kw = 0; kw < 3; kw++) expect(conv[((o * 4 + c) * 2 + kh) * 3 + kw]).toBe(((kh * 3 + kw) * 4 + c) * 5 + o);
      const dw = (await sd.get('dw')!.data()) as Float32Array;
      for (let c = 0; c < 4; c++)
        for (let kh = 0; kh < 3; kh++) for (let kw = 0; kw < 2; kw++) expect(dw[(c * 3 + kh) * 2 + kw]).toBe((kh * 2 + kw) * 4 + c);
      // Parameter.torchShape agrees; the tensors are copies the caller owns.
      expect(m.namedParameters().map(([n, p]) => [n, p.torchShape])).toEqual([
        ['plain', [2, 3]],
        ['lin', [2, 3]],
        ['conv', [5, 4, 2, 3]],
        ['dw', [4, 1, 3, 2]],
      ]);
    } finally {
      for (const t of sd.values()) t.dispose();
    }
    expect(m.namedParameters().every(([, p]) => !p.value.isDisposed)).toBe(true);
  });

  it('layout helpers: toTorch ∘ fromTorch is the identity, torchShape, tensorFromTorchData', async () => {
    const cases: [ParamLayout, number[]][] = [
      ['plain', [3, 2]],
      ['linear', [3, 2]],
      ['conv', [2, 3, 4, 5]],
      ['depthwise', [3, 3, 4, 1]],
    ];
    for (const [layout, shape] of cases) {
      const t = tf.randomNormal(shape, 0, 1, 'float32', 1);
      const torch = toTorch(layout, t);
      expect(torch.shape).toEqual(torchShape(layout, shape));
      const back = fromTorch(layout, torch);
      expect(back.shape).toEqual(shape);
      expect(await back.data()).toEqual(await t.data());
      const viaData = tensorFromTorchData(layout, (await torch.data()) as Float32Array, torch.shape);
      expect(await viaData.data()).toEqual(await t.data());
      tf.dispose([t, torch, back, viaData]);
    }
  });
});

describeBackend('Module: loadStateDict', () => {
  function torchSd(m: Module, scale = 1): Map<string, { data: Float32Array; shape: number[] }> {
    const out = new Map<string, { data: Float32Array; shape: number[] }>();
    let k = 0;
    for (const [n, p] of m.namedParameters()) {
      const shape = p.torchShape;
      const size = shape.reduce((a, b) => a * b, 1);
      out.set(n, { data: Float32Array.from({ length: size }, () => scale * ((k++ % 13) - 6)), shape });
    }
    return out;
  }

  it('loads timm-named PyTorch-layout entries (Map or Record, tensors or {data, shape}) and does not dispose them', async () => {
    const m = track(new Layouts());
    const sd = torchSd(m, 0.5);
    const r = m.loadStateDict(sd);
    expect(r).toMatchObject({ missing: [], unexpected: [], mismatched: [], invalid: [] });
    expect(r.loaded).toEqual(['plain', 'lin', 'conv', 'dw']);
    const out = m.stateDict();
    for (const [n, t] of out) expect(await t.data(), n).toEqual(sd.get(n)!.data);
    tf.dispose([...out.values()]);
    // Record of tensors.
    const rec: Record<string, tf.Tensor> = {};
    for (const [n, e] of torchSd(m, 2)) rec[n] = tf.tensor(e.data, e.shape);
    m.loadStateDict(rec);
    expect(await m.stateDict().get('conv')!.data()).toEqual(await rec['conv']!.data());
    expect(Object.values(rec).every((t) => !t.isDisposed)).toBe(true);
    tf.dispose(Object.values(rec));
  });

  it('strict: lists every missing, unexpected and mis-shaped key in ONE error and changes nothing', async () => {
    const m = track(new MicroTrunk(microCfg(), 1));
    const before = await values(m);
    const sd = torchSd(m);
    sd.delete('blocks.1.norm2.bias');
    sd.delete('head.weight');
    sd.set('blocks.9.mlp.fc1.weight', { data: new Float32Array(4), shape: [2, 2] });
    sd.set('fc_norm.weight', { data: new Float32Array(48), shape: [48] });
    sd.set('pos_embed', { data: new Float32Array(65 * 48), shape: [1, 65, 48] });
    sd.set('blocks.0.mlp.fc1.weight', { data: new Float32Array(48 * 192), shape: [48, 192] }); // transposed
    sd.set('norm.bias', { data: new Float32Array(3), shape: [48] }); // data does not fill its shape
    let err: unknown;
    try {
      m.loadStateDict(sd);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StateDictError);
    const msg = (err as Error).message;
    for (const k of ['blocks.1.norm2.bias', 'head.weight', 'blocks.9.mlp.fc1.weight', 'fc_norm.weight', 'pos_embed', 'blocks.0.mlp.fc1.weight', 'norm.bias']) {
      expect(msg).toContain(`"${k}"`);
    }
    expect(msg).toMatch(/Missing key\(s\) \(2\)/);
    expect(msg).toMatch(/Unexpected key\(s\) \(2\)/);
    expect(msg).toMatch(/Size mismatch for "pos_embed": checkpoint has shape \[1,65,48\], the model expects \[1,64,48\]/);
    expect(msg).toMatch(/Size mismatch for "blocks\.0\.mlp\.fc1\.weight": checkpoint has shape \[48,192\], the model expects \[192,48\]/);
    expect(msg).toMatch(/Invalid entry "norm\.bias": 3 values do not fill shape \[48\]/);
    const r = (err as StateDictError).result;
    expect(r.missing).toEqual(['blocks.1.norm2.bias', 'head.weight']);
    expect(r.unexpected).toEqual(['blocks.9.mlp.fc1.weight', 'fc_norm.weight']);
    expect(r.mismatched.map((x) => x.key)).toEqual(['pos_embed', 'blocks.0.mlp.fc1.weight']);
    expect(r.loaded).toEqual([]);
    // Nothing changed, not even the keys that were fine.
    const after = await values(m);
    for (const [n, v] of before) expect(same(after.get(n)!, v), n).toBe(true);
    expect(m.blocks.at(0).weightsLoaded).toBe(0);
  });

  it('a single mis-shaped or disposed entry fails the whole load in both modes (nothing changed)', async () => {
    const m = track(new Layouts());
    const before = await values(m);
    const sd: Map<string, any> = torchSd(m, 3);
    sd.set('lin', { data: new Float32Array(6), shape: [3, 2] }); // tfjs layout given by mistake
    expect(() => m.loadStateDict(sd)).toThrow(/Size mismatch for "lin": checkpoint has shape \[3,2\], the model expects \[2,3\]/);
    expect(() => m.loadStateDict(sd, { strict: false })).toThrow(StateDictError);
    const gone = tf.zeros([2, 3]);
    gone.dispose();
    sd.set('lin', { data: new Float32Array(6), shape: [2, 3] });
    sd.set('plain', gone);
    expect(() => m.loadStateDict(sd)).toThrow(/Invalid entry "plain": the tensor is disposed/);
    const after = await values(m);
    for (const [n, v] of before) expect(same(after.get(n)!, v), n).toBe(true);
  });

  it('non-strict: loads what matches and reports missing and unexpected keys', async () => {
    const m = track(new Layouts());
    const sd = torchSd(m, 4);
    sd.delete('conv');
    sd.set('extra.weight', { data: new Float32Array(1), shape: [1] });
    const before = await values(m);
    const r = m.loadStateDict(sd, { strict: false });
    expect(r.missing).toEqual(['conv']);
    expect(r.unexpected).toEqual(['extra.weight']);
    expect(r.loaded).toEqual(['plain', 'lin', 'dw']);
    const after = await values(m);
    expect(after.get('conv')).toEqual(before.get('conv'));
    expect(after.get('plain')).toEqual(sd.get('plain')!.data);
    expect(() => m.loadStateDict(sd)).toThrow(/Missing key\(s\) \(1\): "conv"/);
  });

  it('skip: exact keys and prefixes ending in "." are neither loaded nor reported', async () => {
    const m = track(new MicroTrunk(microCfg(), 2));
    const sd = torchSd(m, 1);
    sd.delete('head.weight');
    sd.delete('head.bias');
    sd.set('blocks.0.attn.qk.weight', { data: new Float32Array(96 * 48), shape: [96, 48] });
    sd.set('pos_embed', { data: new Float32Array(10), shape: [10] }); // mis-shaped but skipped
    const before = await values(m);
    const r = m.loadStateDict(sd, { skip: ['head.', 'blocks.0.attn.', 'pos_embed'] });
    expect(r.missing).toEqual([]);
    expect(r.unexpected).toEqual([]);
    expect(r.loaded).not.toContain('pos_embed');
    const after = await values(m);
    expect(after.get('pos_embed')).toEqual(before.get('pos_embed'));
    expect(after.get('head.weight')).toEqual(before.get('head.weight'));
    expect(after.get('norm.weight')).toEqual(sd.get('norm.weight')!.data);
    expect(m.blocks.at(0).weightsLoaded).toBe(1);
  });

  it('fixture weights (convit_micro) load by timm name into a module tree mirroring the model', async () => {
    const f = loadFixture('convit_micro');
    const m = track(new MicroTrunk(microCfg(), 3));
    const r = m.loadStateDict(f.weights, { skip: ['blocks.0.attn.', 'blocks.1.attn.', 'blocks.2.attn.', 'blocks.3.attn.'] });
    expect(r.missing).toEqual([]);
    expect(r.unexpected).toEqual([]);
    expect(r.loaded.length).toBe(m.namedParameters().length);
    // Read back in PyTorch layout: bit-identical to the checkpoint.
    const sd = m.stateDict();
    for (const [n, t] of sd) {
      const want = f.weights.get(n)!;
      expect(t.shape, n).toEqual(want.shape);
      expect((await t.data()).every((v, i) => v === want.data[i]), n).toBe(true);
    }
    tf.dispose([...sd.values()]);
    // tfjs layout of a linear weight is the transpose: fc1.weight (192, 48) → [48, 192].
    const fc1 = m.blocks.at(2).mlp.fc1.weight;
    expect(fc1.shape).toEqual([48, 192]);
    const w = (await fc1.value.data()) as Float32Array;
    const ref = f.weights.get('blocks.2.mlp.fc1.weight')!.data;
    await expectClose(w, Float64Array.from({ length: 48 * 192 }, (_, k) => ref[(k % 192) * 48 + Math.floor(k / 192)]!), 0, 'fc1 layout');
    // Without skip the attention weights are reported as unexpected.
    expect(() => m.loadStateDict(f.weights)).toThrow(/Unexpected key\(s\) \(24\)/);
  });
});

describeBackend('Module: modes, weight decay, registration, dispose', () => {
  it('modules start in eval; train()/eval() propagate and call onModeChange once per change', async () => {
    const m = track(new MicroTrunk(microCfg()));
    expect(m.namedModules().every(([, x]) => !x.training)).toBe(true);
    expect(m.train()).toBe(m);
    expect(m.namedModules().every(([, x]) => x.training)).toBe(true);
    m.train(true);
    expect(m.blocks.at(1).modeChanges).toEqual([true]);
    m.eval();
    expect(m.namedModules().every(([, x]) => !x.training)).toBe(true);
    expect(m.blocks.at(1).modeChanges).toEqual([true, false]);
    // A child's dropout follows the parent's mode.
    const b = track(new Block(4, new Rng(0), 0.5));
    const x = tf.ones([64, 2, 4]);
    expect(b.dropPath.forward(x)).toBe(x);
    b.train();
    const y = b.dropPath.forward(x);
    expect(y).not.toBe(x);
    const zeros = ((await y.data()) as Float32Array).filter((v) => v === 0).length;
    expect(zeros).toBeGreaterThan(0);
    tf.dispose([x, y]);
  });

  it('noWeightDecay(): rank ≤ 1 parameters and explicitly flagged ones; trainable flags', () => {
    const m = track(new MicroTrunk(microCfg()));
    const nwd = m.noWeightDecay();
    expect(nwd.has('cls_token')).toBe(true); // flagged explicitly (rank 3)
    expect(nwd.has('pos_embed')).toBe(true);
    expect(nwd.has('blocks.0.norm1.weight')).toBe(true);
    expect(nwd.has('head.bias')).toBe(true);
    expect(nwd.has('head.weight')).toBe(false);
    expect(nwd.has('patch_embed.proj.weight')).toBe(false);
    expect([...nwd].every((n) => m.namedParameters().some(([k]) => k === n))).toBe(true);
    const total = m.numParameters();
    m.head.weight.trainable = false;
    expect(m.trainableParameters().map(([n]) => n)).not.toContain('head.weight');
    expect(m.numParameters(true)).toBe(total - 48 * 10);
  });

  it('registration errors and Parameter.assign shape check', () => {
    class Bad extends Module {
      constructor(kind: number) {
        super();
        if (kind === 0) this.registerParameter('a.b', zeros([1]));
        if (kind === 1) {
          this.registerParameter('a', zeros([1]));
          this.registerModule('a', new Linear(1, 1));
        }
      }
    }
    expect(() => new Bad(0)).toThrow(/parameter name 'a.b' must not contain '.'/);
    expect(() => new Bad(1)).toThrow(/'a' is already registered/);
    const l = track(new Linear(2, 3));
    const wrong = tf.zeros([3, 2]);
    expect(() => l.weight.assign(wrong)).toThrow(/shape \[3,2\] does not match \[2,3\]/);
    wrong.dispose();
  });

  it('the same seed builds the same model; another seed a different one', async () => {
    const a = track(new MicroTrunk(microCfg(), 7));
    const b = track(new MicroTrunk(microCfg(), 7));
    const c = track(new MicroTrunk(microCfg(), 8));
    const va = await values(a);
    const vb = await values(b);
    const vc = await values(c);
    for (const [n, v] of va) expect(same(vb.get(n)!, v), n).toBe(true);
    expect(va.get('blocks.0.mlp.fc1.weight')).not.toEqual(vc.get('blocks.0.mlp.fc1.weight'));
    // timm's trunc_normal_(std=.02) bounds are absolute (±2): every value well inside.
    expect(Math.max(...va.get('pos_embed')!.map(Math.abs))).toBeLessThan(0.2);
  });

  it('dispose() frees every tensor the module owns', () => {
    const before = tf.memory().numTensors;
    const m = new MicroTrunk(microCfg());
    const n = m.parameters().length;
    expect(tf.memory().numTensors - before).toBe(n);
    const plain = new Dropout(0.1);
    m.dispose();
    plain.dispose();
    expect(tf.memory().numTensors).toBe(before);
    expect(m.isDisposed).toBe(true);
    expect(m.parameters().every((p) => p.value.isDisposed)).toBe(true);
    m.dispose(); // idempotent
    expect(tf.memory().numTensors).toBe(before);
  });
});

describeBackend('Module ⇄ safetensors (weights.ts)', () => {
  it('saves the state dict by timm name in PyTorch layout with the config, and loads it back into a fresh model', async () => {
    const cfg = microCfg();
    const a = track(new MicroTrunk(cfg, 11));
    const bytes = await saveSafetensorsBytes(a, { config: cfg });
    const file = await readSafetensors(bytes);
    expect(file.config()).toEqual(cfg);
    expect(file.metadata['format']).toBe('pt');
    expect(file.names()).toEqual(a.namedParameters().map(([n]) => n));
    expect(file.info('blocks.0.mlp.fc1.weight').shape).toEqual([192, 48]);
    expect(file.info('patch_embed.proj.weight').shape).toEqual([48, 3, 4, 4]);
    const b = track(new MicroTrunk(file.config() as typeof cfg, 12));
    const r = await loadSafetensorsInto(b, bytes);
    expect(r.loaded.length).toBe(40);
    const va = await values(a);
    const vb = await values(b);
    for (const [n, v] of va) expect(same(vb.get(n)!, v), n).toBe(true);
    const before = tf.memory().numTensors;
    await saveSafetensorsBytes(a, { dtype: 'F16' });
    expect(tf.memory().numTensors).toBe(before);
  });

  it('loadSafetensorsInto: a file from another model fails strictly with every key listed, or loads non-strictly', async () => {
    const f = loadFixture('convit_micro');
    const m = track(new MicroTrunk(microCfg(), 13));
    await expect(loadSafetensorsInto(m, f.weightsFile)).rejects.toThrow(/Unexpected key\(s\) \(24\)/);
    const r = await loadSafetensorsInto(m, f.weightsFile, { strict: false });
    expect(r.unexpected.length).toBe(24);
    expect(r.loaded.length).toBe(40);
    expect(stateDictFromSafetensors(f.weightsFile).get('head.weight')!.shape).toEqual([10, 48]);
  });
});
