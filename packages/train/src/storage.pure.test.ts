/**
 * `fit` through a `FitStorage` other than Node files: with `memoryStorage()`, checkpoints and the JSON-lines log
 * go to the Map (no file is touched), and a run aborted mid-epoch then resumed from the stored checkpoint ends
 * bitwise equal to an uninterrupted run (weights, optimizer moments, EMA, per-step losses).
 */
import { describe, it, expect } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { Rng, parseSafetensors } from '@softbias/tensor-ops';
import { ArrayDataset, DataLoader } from '@softbias/data';
import { fit, memoryStorage, nodeFileStorage, notFound, checkpointMeta, type FitOptions } from '@softbias/train';
import { TinyViT } from '../test/tiny-model.js';

function dataset(n: number): ArrayDataset {
  const rng = new Rng(7);
  const images = new Uint8Array(n * 64);
  for (let i = 0; i < images.length; i++) images[i] = rng.int(256);
  return new ArrayDataset({ images, labels: Array.from({ length: n }, (_, i) => i % 3), imageShape: [8, 8, 1] });
}

const newModel = () => new TinyViT({ imgSize: 8, patchSize: 4, inChans: 1, dim: 8, depth: 1, heads: 2, numClasses: 3, seed: 2 });

function options(model: TinyViT, storage: ReturnType<typeof memoryStorage>, extra: Partial<FitOptions> = {}): FitOptions {
  return {
    model,
    data: new DataLoader(dataset(24), { batchSize: 4, seed: 3 }), // 6 updates per epoch
    epochs: 2,
    numClasses: 3,
    optimizer: { lr: 3e-3 },
    ema: { decay: 0.9 },
    checkpoint: { path: 'run/ckpt.safetensors', everySteps: 4 },
    log: 'run/log.jsonl',
    storage,
    progress: 'none',
    ...extra,
  };
}

const records = (s: ReturnType<typeof memoryStorage>) =>
  (s.entries.get('run/log.jsonl') as string)
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('fit with memoryStorage', () => {
  it('checkpoints and logs into the store; abort + resume ends bitwise equal to an uninterrupted run', async () => {
    const start = tf.memory().numTensors;
    // Uninterrupted.
    const a = memoryStorage();
    const ma = newModel();
    const ra = await fit(options(ma, a));
    expect(ra.status).toBe('completed');
    expect(ra.step).toBe(12);
    const finalA = a.entries.get('run/ckpt.safetensors') as Uint8Array;
    expect(checkpointMeta(parseSafetensors(finalA)).step).toBe(12);
    expect(records(a).map((r) => r['type'])).toContain('checkpoint');
    expect(records(a).at(-1)!['type']).toBe('end');

    // Aborted at step 7 (mid-epoch 2, after the step-4 and epoch-1 checkpoints), then resumed from the store.
    const b = memoryStorage();
    const mb = newModel();
    const ac = new AbortController();
    const rb = await fit(options(mb, b, { signal: ac.signal, onProgress: (p) => p.step === 7 && ac.abort() }));
    expect(rb.status).toBe('aborted');
    expect(rb.step).toBe(7);
    expect(checkpointMeta(parseSafetensors(b.entries.get('run/ckpt.safetensors') as Uint8Array)).step).toBe(7);
    rb.optimizer.dispose();
    rb.ema?.dispose();
    mb.dispose();

    const mc = newModel(); // a fresh process would build the model anew
    const rc = await fit(options(mc, b, { resume: true }));
    expect(rc.resumedFrom).toBe(7);
    expect(rc.status).toBe('completed');
    const finalB = b.entries.get('run/ckpt.safetensors') as Uint8Array;
    expect(Buffer.compare(Buffer.from(finalB), Buffer.from(finalA))).toBe(0);
    const lossAt = (s: ReturnType<typeof memoryStorage>) =>
      new Map(records(s).filter((r) => r['type'] === 'step' && !r['replayed']).map((r) => [r['step'], r['loss']]));
    const la = lossAt(a);
    const lb = lossAt(b);
    for (let s = 1; s <= 12; s++) expect(lb.get(s), `loss at step ${s}`).toBe(la.get(s));
    expect(records(b).filter((r) => r['type'] === 'resume')).toHaveLength(1);

    for (const r of [ra, rc]) {
      r.optimizer.dispose();
      r.ema?.dispose();
    }
    ma.dispose();
    mc.dispose();
    expect(tf.memory().numTensors).toBe(start);
  });

  it('resume: true with nothing stored starts afresh; an explicit missing key is an error', async () => {
    const s = memoryStorage();
    await expect(s.read('nope')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(notFound('x', 'y')).toMatchObject({ code: 'ENOENT' });
    const m = newModel();
    const r = await fit(options(m, s, { epochs: 1, resume: true }));
    expect(r.resumedFrom).toBeUndefined();
    expect(r.step).toBe(6);
    r.optimizer.dispose();
    r.ema?.dispose();
    await expect(fit(options(m, memoryStorage(), { epochs: 1, resume: 'run/missing.safetensors' }))).rejects.toThrow(/cannot resume from run\/missing\.safetensors/);
    m.dispose();
  });

  it('nodeFileStorage() as an explicit storage writes the same files as the default', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'softbias-storage-'));
    const run = async (storage?: ReturnType<typeof nodeFileStorage>, sub = 'a') => {
      const m = newModel();
      const o = options(m, memoryStorage(), { epochs: 1, checkpoint: { path: join(dir, `${sub}.safetensors`) }, log: join(dir, `${sub}.jsonl`) });
      if (storage) o.storage = storage;
      else delete o.storage;
      const r = await fit(o);
      r.optimizer.dispose();
      r.ema?.dispose();
      m.dispose();
    };
    await run(undefined, 'default');
    await run(nodeFileStorage(), 'explicit');
    expect(Buffer.compare(readFileSync(join(dir, 'explicit.safetensors')), readFileSync(join(dir, 'default.safetensors')))).toBe(0);
    const types = (f: string) => readFileSync(join(dir, f), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { type: string }).type);
    expect(types('explicit.jsonl')).toEqual(types('default.jsonl'));
    expect(types('explicit.jsonl')[0]).toBe('start');
    const s = nodeFileStorage();
    await expect(s.read(join(dir, 'none'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await s.readText(join(dir, 'none'))).toBeUndefined();
  });
});
