import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend } from '@softbias/test-utils';
import { Rng, parseSafetensors, serializeSafetensors } from '@softbias/tensor-ops';
import { AdamW, ModelEma, checkpointBytes, loadCheckpoint, moduleRngs, crossEntropy, weightsFromCheckpoint } from '@softbias/train';
import { TinyViT } from '../test/tiny-model.js';

const cfg = { imgSize: 8, patchSize: 4, inChans: 1, dim: 8, depth: 2, heads: 2, numClasses: 3, dropPath: 0.3 };

async function values(ts: Iterable<[string, tf.Tensor]>): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  for (const [k, t] of ts) out.set(k, Array.from(await t.data()));
  return out;
}

describeBackend('checkpoints', () => {
  it('round-trip weights, moments, EMA, step, generators and sampler state exactly', async () => {
    const model = new TinyViT({ ...cfg, seed: 1 });
    const opt = new AdamW(model, { lr: 1e-2 });
    const ema = new ModelEma(model, { decay: 0.5 });
    const extraRng = new Rng(77);
    const x = tf.randomNormal([4, 8, 8, 1], 0, 1, 'float32', 3);
    const y = tf.tensor1d([0, 1, 2, 1], 'int32');
    model.train();
    for (let s = 0; s < 2; s++) {
      const { value, grads } = tf.variableGrads(() => crossEntropy(model.forward(x), y), opt.variables());
      const g = opt.gradsByName(grads);
      opt.applyGradients(g);
      ema.update(model);
      tf.dispose([value, ...g.values()]);
    }
    extraRng.random();
    const rngs = moduleRngs(model);
    expect([...rngs.keys()].filter((k) => k.includes('drop_path'))).toEqual(['blocks.0.drop_path#rng', 'blocks.1.drop_path#rng']);
    const bytes = await checkpointBytes({ model, optimizer: opt, ema, step: 2, rngs: { extra: extraRng }, sampler: { epoch: 1, position: 3 }, extra: { note: 'x' } });
    const file = parseSafetensors(bytes);
    // Weights under their PyTorch names and layouts, moments and EMA beside them.
    expect(file.info('head.weight').shape).toEqual([3, 8]);
    expect(file.info('optimizer.exp_avg.blocks.0.attn.qkv.weight').shape).toEqual([24, 8]);
    expect(file.info('ema.patch_embed.proj.weight').shape).toEqual([8, 1, 4, 4]);

    const other = new TinyViT({ ...cfg, seed: 99 });
    const opt2 = new AdamW(other, { lr: 1e-2 });
    const ema2 = new ModelEma(other, { decay: 0.5 });
    const extra2 = new Rng(0);
    const meta = await loadCheckpoint(bytes, { model: other, optimizer: opt2, ema: ema2, rngs: { extra: extra2 } });
    expect(meta.step).toBe(2);
    expect(meta.sampler).toEqual({ epoch: 1, position: 3 });
    expect(meta.extra).toEqual({ note: 'x' });
    expect(await values(other.namedParameters().map(([n, p]) => [n, p.variable]))).toEqual(await values(model.namedParameters().map(([n, p]) => [n, p.variable])));
    for (const [n] of model.namedParameters()) {
      expect(opt2.stepOf(n)).toBe(opt.stepOf(n));
      expect(Array.from(await opt2.slot(n)!.m.data())).toEqual(Array.from(await opt.slot(n)!.m.data()));
      expect(Array.from(await opt2.slot(n)!.v.data())).toEqual(Array.from(await opt.slot(n)!.v.data()));
    }
    expect(await values(ema2.shadow)).toEqual(await values(ema.shadow));
    expect(ema2.updates).toBe(2);
    const canon = (r: Rng) => r.getState().map((v, i) => (i < 4 ? v >>> 0 : v));
    expect(canon(extra2)).toEqual(canon(extraRng));
    const r2 = moduleRngs(other);
    for (const [k, r] of rngs) expect(canon(r2.get(k)!)).toEqual(canon(r));
    // Plain weight files (trained or EMA weights) load strictly into a model.
    const w = parseSafetensors(await weightsFromCheckpoint(bytes));
    expect(w.names().sort()).toEqual(model.namedParameters().map(([n]) => n).sort());
    const fresh = new TinyViT({ ...cfg, seed: 5 });
    fresh.loadStateDict(new Map(w.names().map((n) => [n, w.getFloat32(n)])));
    expect(await values(fresh.namedParameters().map(([n, p]) => [n, p.variable]))).toEqual(await values(model.namedParameters().map(([n, p]) => [n, p.variable])));
    const we = parseSafetensors(await weightsFromCheckpoint(bytes, { ema: true }));
    fresh.loadStateDict(new Map(we.names().map((n) => [n, we.getFloat32(n)])));
    expect(await values(fresh.namedParameters().map(([n, p]) => [n, p.variable]))).toEqual(await values(ema.shadow));
    fresh.dispose();
    // Not a checkpoint → a clear error.
    const plain = serializeSafetensors({ a: { data: new Float32Array(1), shape: [1] } });
    await expect(loadCheckpoint(plain, { model: other })).rejects.toThrow(/not a softbias training checkpoint/);
    tf.dispose([x, y]);
    for (const d of [opt, opt2, ema, ema2, model, other]) d.dispose();
  });
});
