/**
 * `fit({ resume: true })` on real broken files (we run as root: no EACCES; directories, paths under regular
 * files, truncated and corrupted files instead). Only a missing checkpoint means a fresh start.
 */
import * as tf from '@tensorflow/tfjs-core';
import { describe, it, expect, beforeAll } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng, saveSafetensorsFile } from '@softbias/tensor-ops';
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

async function run(path: string, extra: Partial<FitOptions> = {}) {
  const model = new TinyViT(cfg);
  try {
    const r = await fit({
      model,
      data: new DataLoader(dataset(16), { batchSize: 8, seed: 1 }),
      epochs: 1,
      numClasses: 3,
      checkpoint: { path },
      resume: true,
      progress: 'none',
      ...extra,
    });
    r.optimizer.dispose();
    r.ema?.dispose();
    return r;
  } finally {
    model.dispose();
  }
}

let dir = '';
let good = new Uint8Array();
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'softbias-resume-faults-'));
  const r = await run(join(dir, 'good.safetensors'));
  expect(r.resumedFrom).toBeUndefined();
  good = readFileSync(join(dir, 'good.safetensors'));
});

describe('fit({ resume: true }) on a broken checkpoint', () => {
  it('a missing file is a fresh start', async () => {
    const p = join(dir, 'missing.safetensors');
    const r = await run(p);
    expect(r.resumedFrom).toBeUndefined();
    expect(r.step).toBe(2);
    expect(existsSync(p)).toBe(true);
  });

  it('a directory in place of the file (EISDIR) is an error naming the file, not a fresh start', async () => {
    const p = join(dir, 'isdir.safetensors');
    mkdirSync(p);
    await expect(run(p)).rejects.toThrow(new RegExp(`cannot resume from ${p}.*EISDIR`));
  });

  it('a path under a regular file (ENOTDIR) is an error naming the file', async () => {
    const f = join(dir, 'plainfile');
    writeFileSync(f, 'x');
    const p = join(f, 'checkpoint.safetensors');
    await expect(run(p)).rejects.toThrow(new RegExp(`cannot resume from ${p}.*ENOTDIR`));
  });

  it('a truncated file is an error naming the file; the file is left alone', async () => {
    const p = join(dir, 'truncated.safetensors');
    const cut = good.subarray(0, good.length - 10);
    writeFileSync(p, cut);
    await expect(run(p)).rejects.toThrow(new RegExp(`cannot resume from ${p}.*truncated`));
    expect(Buffer.compare(readFileSync(p), cut)).toBe(0);
  });

  it('an empty file is an error naming the file', async () => {
    const p = join(dir, 'empty.safetensors');
    writeFileSync(p, '');
    await expect(run(p)).rejects.toThrow(new RegExp(`cannot resume from ${p}.*too short`));
  });

  it('bad checkpoint metadata (not JSON) is an error naming the file', async () => {
    const p = join(dir, 'badmeta.safetensors');
    const bytes = Buffer.from(good);
    const n = Number(bytes.readBigUInt64LE(0));
    const header = bytes.subarray(8, 8 + n).toString('utf8');
    const i = header.indexOf('{\\"version\\":1');
    expect(i).toBeGreaterThan(0);
    bytes.write('[', 8 + i); // same length, the metadata JSON no longer parses
    writeFileSync(p, bytes);
    await expect(run(p)).rejects.toThrow(new RegExp(`cannot resume from ${p}.*(JSON|metadata)`));
  });

  it('a plain weights file (not a checkpoint) is an error naming the file', async () => {
    const p = join(dir, 'weights.safetensors');
    const model = new TinyViT(cfg);
    await saveSafetensorsFile(model, p);
    model.dispose();
    await expect(run(p)).rejects.toThrow(new RegExp(`cannot resume from ${p}.*not a softbias training checkpoint`));
  });

  it('a good checkpoint resumes', async () => {
    const p = join(dir, 'copy.safetensors');
    writeFileSync(p, good);
    const before = tf.memory().numTensors;
    const r = await run(p, { epochs: 1 });
    expect(r.resumedFrom).toBe(2);
    expect(tf.memory().numTensors).toBe(before);
  });
});
