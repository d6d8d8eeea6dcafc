/**
 * Resuming with settings other than the checkpoint's is refused with the differences listed; an explicit
 * `allowSettingsChange` accepts them; checkpoints without stored settings still resume, with a warning.
 */
import * as tf from '@tensorflow/tfjs-core';
import { describe, it, expect, beforeAll } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng, parseSafetensors, serializeSafetensors } from '@softbias/tensor-ops';
import { ArrayDataset, DataLoader } from '@softbias/data';
import { fit, type FitOptions } from '@softbias/train';
import { TinyViT } from '../test/tiny-model.js';

const cfg = { imgSize: 8, patchSize: 4, inChans: 1, dim: 8, depth: 1, heads: 2, numClasses: 3, seed: 1 };

function dataset(n: number): ArrayDataset {
  const rng = new Rng(3);
  const images = new Uint8Array(n * 64);
  for (let i = 0; i < images.length; i++) images[i] = rng.int(256);
  return new ArrayDataset({ images, labels: Array.from({ length: n }, (_, i) => i % 3), imageShape: [8, 8, 1] });
}

type Opts = Partial<Omit<FitOptions, 'model'>> & { model?: Partial<typeof cfg> };

async function run(path: string, o: Opts = {}) {
  const { model: mo, ...rest } = o;
  const model = new TinyViT({ ...cfg, ...mo });
  const warnings: string[] = [];
  const before = tf.memory().numTensors;
  try {
    const r = await fit({
      model,
      data: new DataLoader(dataset(16), { batchSize: 8, seed: 1 }),
      epochs: 2,
      numClasses: 3,
      optimizer: { lr: 1e-3, weightDecay: 0.05 },
      ema: { decay: 0.9 },
      checkpoint: { path },
      resume: true,
      progress: 'none',
      onWarning: (m) => warnings.push(m),
      ...rest,
    });
    const emaValues = r.ema ? await Promise.all([...r.ema.shadow].map(async ([n, t]) => [n, Array.from(await t.data())] as const)) : [];
    const weights = await Promise.all(model.namedParameters().map(async ([n, p]) => [n, Array.from(await p.variable.data())] as const));
    r.optimizer.dispose();
    r.ema?.dispose();
    return { r, warnings, emaValues, weights };
  } catch (e) {
    // A refused resume frees what fit created.
    expect(tf.memory().numTensors).toBe(before);
    throw e;
  } finally {
    model.dispose();
  }
}

let dir = '';
let ckpt1 = new Uint8Array();
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'softbias-resume-settings-'));
  const p = join(dir, 'base.safetensors');
  const { r } = await run(p, { epochs: 1 });
  expect(r.step).toBe(2);
  ckpt1 = readFileSync(p); // after epoch 1 of a 1-epoch run
});

/** A copy of the checkpoint of a 2-epoch run stopped after epoch 1. */
async function twoEpochCheckpoint(name: string): Promise<string> {
  const p = join(dir, name);
  const ac = new AbortController();
  await run(p, { signal: ac.signal, onEpochEnd: () => void ac.abort() });
  return p;
}

describe('resume with other settings', () => {
  it('the same settings resume', async () => {
    const p = await twoEpochCheckpoint('same.safetensors');
    const { r, warnings } = await run(p);
    expect(r.resumedFrom).toBe(2);
    expect(r.step).toBe(4);
    expect(warnings).toEqual([]);
  });

  it('different epochs, lr, weight decay, mixup and EMA are refused, every difference listed', async () => {
    const p = join(dir, 'diff.safetensors');
    writeFileSync(p, ckpt1);
    const err = await run(p, { epochs: 3, optimizer: { lr: 2e-3, weightDecay: 0.1 }, mixup: { mixupAlpha: 0.2 }, ema: false }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toContain(`cannot resume from ${p}`);
    for (const line of [/epochs: 1 in the checkpoint, 3 now/, /optimizer\.lr: 0\.001 in the checkpoint, 0\.002 now/, /optimizer\.weightDecay: 0\.05 in the checkpoint, 0\.1 now/, /mixup: null in the checkpoint, \{"mixupAlpha":0\.2\} now/, /ema: \{"decay":0\.9,"warmup":false\} in the checkpoint, null now/, /allowSettingsChange/]) {
      expect(err?.message).toMatch(line);
    }
    expect(Buffer.compare(readFileSync(p), ckpt1)).toBe(0); // nothing overwritten
  });

  it('EMA turned off alone is refused (its state would be dropped at the next save)', async () => {
    const p = await twoEpochCheckpoint('emaoff.safetensors');
    await expect(run(p, { ema: false })).rejects.toThrow(/ema: .* in the checkpoint, null now/);
  });

  it("a different model architecture is refused, naming the parameters' shapes", async () => {
    const p = await twoEpochCheckpoint('arch.safetensors');
    const err = await run(p, { model: { dim: 16 } }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toMatch(/parameters\.patch_embed\.proj\.bias: \[8\] in the checkpoint, \[16\] now/);
    const err2 = await run(p, { model: { depth: 2 } }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err2?.message).toMatch(/parameters\.blocks\.1\.[\w.]+: not in the checkpoint/);
  });

  it('allowSettingsChange accepts a deliberate change with a warning, and the new settings are stored', async () => {
    const p = await twoEpochCheckpoint('allowed.safetensors');
    const { r, warnings } = await run(p, { epochs: 3, optimizer: { lr: 2e-3, weightDecay: 0.05 }, allowSettingsChange: true });
    expect(r.resumedFrom).toBe(2);
    expect(r.step).toBe(6);
    expect(warnings.join('\n')).toMatch(/changed settings:[\s\S]*epochs: 2 in the checkpoint, 3 now[\s\S]*optimizer\.lr: 0\.001 in the checkpoint, 0\.002 now/);
    const meta = JSON.parse(parseSafetensors(readFileSync(p)).metadata['softbias.checkpoint']!) as { settings: { epochs: number } };
    expect(meta.settings.epochs).toBe(3);
    // Resuming that checkpoint with its new settings needs no permission.
    const again = await run(p, { epochs: 3, optimizer: { lr: 2e-3, weightDecay: 0.05 } });
    expect(again.r.resumedFrom).toBe(6);
  });

  it('allowSettingsChange with an EMA newly on starts the EMA from the resumed weights', async () => {
    const p = join(dir, 'noema.safetensors');
    const ac = new AbortController();
    await run(p, { ema: false, signal: ac.signal, onEpochEnd: () => void ac.abort() });
    await expect(run(p)).rejects.toThrow(/ema: null in the checkpoint/);
    // With decay 1 the EMA never moves: after the resumed epoch it still holds the weights it started from.
    const resumed = new TinyViT({ ...cfg, seed: 9 });
    const f = parseSafetensors(readFileSync(p));
    resumed.loadStateDict(new Map(resumed.namedParameters().map(([n]) => [n, f.getFloat32(n)])));
    const start = new Map(await Promise.all(resumed.namedParameters().map(async ([n, q]) => [n, Array.from(await q.variable.data())] as const)));
    resumed.dispose();
    const { r, emaValues, weights } = await run(p, { ema: { decay: 1 }, allowSettingsChange: true });
    expect(r.resumedFrom).toBe(2);
    expect(emaValues.length).toBe(start.size);
    for (const [n, v] of emaValues) expect(v, n).toEqual(start.get(n));
    expect(weights.some(([n, v]) => JSON.stringify(v) !== JSON.stringify(start.get(n)))).toBe(true); // training moved on
  });

  it('a checkpoint without stored settings (older version) resumes, with a warning', async () => {
    const p = await twoEpochCheckpoint('old.safetensors');
    const f = parseSafetensors(readFileSync(p));
    const meta = JSON.parse(f.metadata['softbias.checkpoint']!) as Record<string, unknown>;
    delete meta['settings'];
    delete meta['dataCrc32'];
    writeFileSync(p, serializeSafetensors(f.names().map((n) => [n, f.getFloat32(n)] as [string, { data: Float32Array; shape: number[] }]), { metadata: { ...f.metadata, 'softbias.checkpoint': JSON.stringify(meta) } }));
    const { r, warnings } = await run(p, { optimizer: { lr: 5e-3 } });
    expect(r.resumedFrom).toBe(2);
    expect(warnings.join('\n')).toMatch(/holds no run settings \(written by an older version\)/);
  });
});

