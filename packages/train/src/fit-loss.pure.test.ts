/**
 * `fit({ loss })`: any scalar objective trains through the same loop (checkpoints, resume, log, EMA, schedule,
 * clipping); the default classification path is that loop with cross-entropy. Failing fits free what they
 * created, and a resume marks the log records of the steps it re-runs.
 */
import * as tf from '@tensorflow/tfjs-core';
import { describe, it, expect } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng, type Module } from '@softbias/tensor-ops';
import { crossEntropy, fit, type BatchSource, type FitOptions, type TrainBatch } from '@softbias/train';
import { TinyViT } from '../test/tiny-model.js';

const cfg = { imgSize: 8, patchSize: 4, inChans: 1, dim: 8, depth: 1, heads: 2, numClasses: 3, dropPath: 0.1, seed: 1 };

/** Four fixed batches of 4 random images with labels 0, 1, 2, 0. */
class Fixed implements BatchSource {
  readonly batchesPerEpoch = 4;
  epoch = 0;
  position = 0;
  private readonly xs: Float32Array[];
  constructor() {
    const rng = new Rng(5);
    this.xs = Array.from({ length: 4 }, () => Float32Array.from({ length: 4 * 64 }, () => rng.normal()));
  }
  async *batches(): AsyncIterable<TrainBatch> {
    while (this.position < this.batchesPerEpoch) {
      const x = tf.tensor4d(this.xs[this.position]!, [4, 8, 8, 1]);
      this.position++;
      yield { x, y: tf.tensor1d([0, 1, 2, 0], 'int32') };
    }
  }
  nextEpoch(): void {
    this.epoch++;
    this.position = 0;
  }
  getState(): unknown {
    return { epoch: this.epoch, position: this.position };
  }
  setState(s: { epoch: number; position: number }): void {
    this.epoch = s.epoch;
    this.position = s.position;
  }
}

const weights = (m: Module) => m.namedParameters().map(([n, p]) => [n, Array.from(p.variable.dataSync())] as const);
const sameBits = (a: readonly (readonly [string, number[]])[], b: readonly (readonly [string, number[]])[]) =>
  a.length === b.length && a.every(([n, v], i) => n === b[i]![0] && v.length === b[i]![1].length && v.every((x, j) => Object.is(x, b[i]![1][j])));

/** A custom objective: mean squared logits plus the cross-entropy (so it is not the default loss). */
const customLoss = (model: Module, b: TrainBatch): tf.Scalar =>
  tf.tidy(() => {
    const logits = (model as TinyViT).forward(b.x);
    return tf.add(crossEntropy(logits, b.y), tf.mul(0.1, tf.mean(tf.square(logits)))) as tf.Scalar;
  });

const common = (): Omit<FitOptions, 'model'> => ({
  data: new Fixed(),
  epochs: 2,
  optimizer: { lr: 1e-2 },
  clipGradNorm: 1,
  schedule: { warmupEpochs: 0.5 },
  ema: { decay: 0.5 },
  progress: 'none',
});

describe('fit({ loss })', () => {
  it('cross-entropy passed as the loss trains bit for bit like the default classification path', async () => {
    const a = new TinyViT(cfg);
    const b = new TinyViT(cfg);
    const before = tf.memory().numTensors;
    const ra = await fit({ ...common(), model: a, numClasses: 3 });
    const rb = await fit({ ...common(), model: b, loss: (m, batch) => crossEntropy((m as TinyViT).forward(batch.x), batch.y) });
    expect(ra.step).toBe(8);
    expect(rb.step).toBe(8);
    expect(rb.history.map((h) => h.trainLoss)).toEqual(ra.history.map((h) => h.trainLoss));
    expect(sameBits(weights(a), weights(b))).toBe(true);
    for (const r of [ra, rb]) {
      r.optimizer.dispose();
      r.ema?.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
    a.dispose();
    b.dispose();
  });

  it('a crashed custom-loss run resumes bit-exact, and the log marks the steps it replays', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'softbias-fit-loss-'));
    // Uninterrupted reference.
    const ref = new TinyViT(cfg);
    const r0 = await fit({ ...common(), model: ref, loss: customLoss });
    r0.optimizer.dispose();
    r0.ema?.dispose();
    // Checkpoints at step 3 and at the end of epoch 2 only; the loss throws at step 5, after step 4 and the
    // first epoch were logged: steps 4 and epoch 1 are re-run after the resume.
    const path = join(dir, 'ckpt.safetensors');
    const log = join(dir, 'log.jsonl');
    const opts = { checkpoint: { path, everySteps: 3, everyEpochs: 2 }, log, resume: true } as const;
    const m = new TinyViT(cfg);
    let calls = 0;
    const before = tf.memory().numTensors;
    const err = await fit({
      ...common(),
      ...opts,
      model: m,
      loss: (model, b) => {
        if (++calls === 5) throw new Error('disk on fire');
        return customLoss(model, b);
      },
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as Error).message).toBe('disk on fire');
    expect(tf.memory().numTensors).toBe(before); // the optimizer and EMA of the failed fit are freed
    const m2 = new TinyViT({ ...cfg, seed: 9 }); // different initial weights: everything comes from the checkpoint
    const r = await fit({ ...common(), ...opts, model: m2, loss: customLoss });
    expect(r.resumedFrom).toBe(3);
    expect(r.step).toBe(8);
    expect(sameBits(weights(m2), weights(ref))).toBe(true);
    expect(r.history.map((h) => h.trainLoss)).toEqual(r0.history.map((h) => h.trainLoss));
    const records = readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const resume = records.find((x) => x['type'] === 'resume')!;
    expect(resume['replaying']).toEqual({ fromStep: 4, toStep: 4 });
    expect(resume['loss']).toBe('custom');
    const afterResume = records.slice(records.indexOf(resume));
    const steps = afterResume.filter((x) => x['type'] === 'step');
    expect(steps.map((x) => [x['step'], x['replayed'] ?? false])).toEqual([
      [4, true],
      [5, false],
      [6, false],
      [7, false],
      [8, false],
    ]);
    const epochs = afterResume.filter((x) => x['type'] === 'epoch');
    expect(epochs.map((x) => [x['epoch'], x['replayed'] ?? false])).toEqual([
      [0, true],
      [1, false],
    ]);
    // Before the resume nothing is marked.
    expect(records.slice(0, records.indexOf(resume)).some((x) => 'replayed' in x)).toBe(false);
    r.optimizer.dispose();
    r.ema?.dispose();
    for (const x of [ref, m, m2]) x.dispose();
  });

  it('refuses classification-only options and non-scalar losses, freeing what it created', async () => {
    const m = new TinyViT(cfg);
    const before = tf.memory().numTensors;
    await expect(fit({ ...common(), model: m, loss: customLoss, mixup: { mixupAlpha: 0.8 } })).rejects.toThrow(/mixup .* does not apply with a custom loss/);
    await expect(fit({ ...common(), model: m, loss: customLoss, labelSmoothing: 0.1 })).rejects.toThrow(/labelSmoothing .* does not apply with a custom loss/);
    await expect(fit({ ...common(), model: m })).rejects.toThrow(/numClasses must be a positive integer/);
    await expect(fit({ ...common(), model: m, loss: (model, b) => (model as TinyViT).forward(b.x) as unknown as tf.Scalar })).rejects.toThrow(
      /loss\(model, batch\) must return a scalar tensor, got shape \[4,3\]/,
    );
    expect(tf.memory().numTensors).toBe(before);
    m.dispose();
  });
});

describe('a fit that throws frees its optimizer and EMA', () => {
  it('on a bad EMA decay, an unwritable log and a failing step alike (tensor count back to baseline)', async () => {
    const m = new TinyViT(cfg);
    const dir = mkdtempSync(join(tmpdir(), 'softbias-fit-leak-'));
    const before = tf.memory().numTensors;
    // Thrown after the optimizer exists (the EMA constructor).
    await expect(fit({ ...common(), model: m, numClasses: 3, ema: { decay: 2 } })).rejects.toThrow(/decay must be in \[0, 1\]/);
    expect(tf.memory().numTensors).toBe(before);
    // Thrown by the first log write (a directory that does not exist), after the optimizer and EMA exist.
    await expect(fit({ ...common(), model: m, numClasses: 3, log: join(dir, 'missing', 'log.jsonl') })).rejects.toThrow(/ENOENT/);
    expect(tf.memory().numTensors).toBe(before);
    // Thrown mid-training by the data.
    const data = new Fixed();
    const failing: BatchSource = Object.assign(Object.create(data) as BatchSource, {
      async *batches() {
        let n = 0;
        for await (const b of data.batches()) {
          if (++n === 3) {
            tf.dispose([b.x, b.y]);
            throw new Error('bad batch');
          }
          yield b;
        }
      },
    });
    await expect(fit({ ...common(), model: m, numClasses: 3, data: failing })).rejects.toThrow('bad batch');
    expect(tf.memory().numTensors).toBe(before);
    m.dispose();
  });
});
