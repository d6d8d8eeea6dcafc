/**
 * `softbias pretrain` goes through `fit({ loss })`: an FCMAE pre-training run aborted mid-epoch keeps a
 * checkpoint and no weights, and resumed it ends with bitwise the weights, losses and encoder of a run never
 * stopped. Settings that make the masked loss undefined are refused before any work.
 */
import * as tf from '@tensorflow/tfjs-core';
import { describe, it, expect } from 'vitest';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pretrain, type PretrainArgs } from './pretrain.js';

const args = (out: string, extra: Partial<PretrainArgs> = {}): PretrainArgs => ({
  data: 'fashion-mnist-embedded',
  epochs: 2,
  maskRatio: 0.5,
  depths: [1, 1, 1, 1],
  dims: [4, 8, 16, 32],
  batchSize: 4,
  lr: 1e-3,
  seed: 3,
  fraction: 1 / 300, // 1 image per class of the embedded subset: 10 images, 2 full batches per epoch
  imgSize: 64, // a 2×2 patch grid: half of it masked
  out,
  backend: 'cpu',
  progress: 'none',
  ...extra,
});

const records = (dir: string) =>
  readFileSync(join(dir, 'log.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('pretrain through fit({ loss })', () => {
  it('an aborted FCMAE pre-training resumes bit-exact', async () => {
    const base = mkdtempSync(join(tmpdir(), 'softbias-pretrain-'));
    const a = join(base, 'a');
    const b = join(base, 'b');
    const quiet = () => {};
    const before = tf.memory().numTensors;
    const full = await pretrain(args(a), quiet);
    expect(full.status).toBe('completed');
    expect(full.step).toBe(4);
    expect(full.losses).toHaveLength(2);
    expect(full.losses.every((l) => Number.isFinite(l) && l > 0)).toBe(true);

    const ac = new AbortController();
    const stopped = await pretrain(args(b), quiet, { signal: ac.signal, onProgress: (p) => p.step === 3 && ac.abort() });
    expect(stopped.status).toBe('aborted');
    expect(stopped.step).toBe(3);
    expect(existsSync(join(b, 'checkpoint.safetensors'))).toBe(true);
    expect(existsSync(join(b, 'fcmae.safetensors'))).toBe(false); // an unfinished run writes no weights
    expect(records(b).filter((r) => r['type'] === 'checkpoint').map((r) => [r['step'], r['reason']])).toEqual([
      [2, 'epoch'],
      [3, 'abort'],
    ]);

    const resumed = await pretrain(args(b, { resume: true }), quiet);
    expect(resumed.status).toBe('completed');
    expect(resumed.step).toBe(4);
    expect(resumed.losses).toEqual(full.losses);
    const resume = records(b).find((r) => r['type'] === 'resume')!;
    expect(resume['step']).toBe(3);
    expect(resume['loss']).toBe('custom');
    expect(Buffer.compare(readFileSync(join(a, 'fcmae.safetensors')), readFileSync(join(b, 'fcmae.safetensors')))).toBe(0);
    expect(Buffer.compare(readFileSync(join(a, 'encoder-classifier.safetensors')), readFileSync(join(b, 'encoder-classifier.safetensors')))).toBe(0);
    // The step losses after the resume point are those of the uninterrupted run.
    const lossAt = (dir: string) => new Map(records(dir).filter((r) => r['type'] === 'step').map((r) => [r['step'], r['loss']]));
    const la = lossAt(a);
    const lb = lossAt(b);
    for (let s = 1; s <= 4; s++) expect(lb.get(s)).toBe(la.get(s));
    expect(tf.memory().numTensors).toBe(before);
  }, 120_000);

  it('refuses a mask ratio that leaves the loss undefined, and a batch larger than the data', async () => {
    const out = mkdtempSync(join(tmpdir(), 'softbias-pretrain-bad-'));
    await expect(pretrain(args(out, { maskRatio: 0 }), () => {})).rejects.toThrow(/--mask-ratio must be in \(0, 1\), got 0: with no patch removed there is nothing to reconstruct/);
    await expect(pretrain(args(out, { maskRatio: 1 }), () => {})).rejects.toThrow(/--mask-ratio must be in \(0, 1\), got 1: with every patch removed/);
    await expect(pretrain(args(out, { maskRatio: Number.NaN }), () => {})).rejects.toThrow(/--mask-ratio must be in \(0, 1\), got NaN/);
    await expect(pretrain(args(out, { imgSize: 48 }), () => {})).rejects.toThrow(/--img-size must be a positive multiple of 32/);
    await expect(pretrain(args(out, { batchSize: 16 }), () => {})).rejects.toThrow(/--batch-size 16 is larger than the 10 training images/);
    expect(existsSync(join(out, 'log.jsonl'))).toBe(false);
  });
});
