/**
 * A NaN or infinite loss (or gradient) stops `fit` with a FitError naming the step, before the update is
 * applied: the weights in memory and the last checkpoint are those of the step before, and nothing leaks.
 */
import * as tf from '@tensorflow/tfjs-core';
import { describe, it, expect } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng, parseSafetensors } from '@softbias/tensor-ops';
import { fit, FitError, type BatchSource, type TrainBatch, type FitOptions } from '@softbias/train';
import { TinyViT } from '../test/tiny-model.js';

const cfg = { imgSize: 8, patchSize: 4, inChans: 1, dim: 8, depth: 1, heads: 2, numClasses: 3, seed: 1 };

/** Four fixed batches of 4 random images, labels 0. */
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
      yield { x, y: tf.zeros([4], 'int32') };
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

type Poison = (logits: tf.Tensor) => tf.Tensor;

/** Train with `poison` applied to the logits of the third update; checkpoints every update. */
async function runPoisoned(poison: Poison, extra: Partial<FitOptions> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'softbias-nonfinite-'));
  const path = join(dir, 'ckpt.safetensors');
  const model = new TinyViT(cfg);
  let calls = 0;
  const before = tf.memory().numTensors;
  const err = await fit({
    model,
    forward: (x) => {
      const l = model.forward(x);
      return ++calls === 3 ? poison(l) : l;
    },
    data: new Fixed(),
    epochs: 2,
    numClasses: 3,
    optimizer: { lr: 1e-2 },
    ema: { decay: 0.5 },
    checkpoint: { path, everySteps: 1 },
    progress: 'none',
    ...extra,
  }).then(
    () => undefined,
    (e: unknown) => e,
  );
  const leaked = tf.memory().numTensors - before;
  const file = parseSafetensors(readFileSync(path));
  const meta = JSON.parse(file.metadata['softbias.checkpoint']!) as { step: number };
  const inMemory = model.namedParameters().map(([n, p]) => [n, Array.from(p.variable.dataSync())] as const);
  const savedFinite = file.names().every((n) => file.getFloat32(n).data.every(Number.isFinite));
  const memFinite = inMemory.every(([, v]) => v.every(Number.isFinite));
  // The model's weights in tfjs layout equal the checkpoint's after loading them back.
  const reloaded = new TinyViT({ ...cfg, seed: 3 });
  reloaded.loadStateDict(new Map(model.namedParameters().map(([n]) => [n, file.getFloat32(n)])));
  const same = reloaded.namedParameters().every(([n, p], i) => JSON.stringify(Array.from(p.variable.dataSync())) === JSON.stringify(inMemory[i]![1]) && n === inMemory[i]![0]);
  reloaded.dispose();
  model.dispose();
  return { err, leaked, step: meta.step, savedFinite, memFinite, same };
}

describe('non-finite loss or gradients', () => {
  it('a NaN loss stops with a FitError naming the step; nothing from that step is applied or saved', async () => {
    const r = await runPoisoned((l) => tf.mul(l, NaN));
    expect(r.err).toBeInstanceOf(FitError);
    expect((r.err as FitError).step).toBe(3);
    expect((r.err as Error).message).toMatch(/the loss is NaN at step 3 \(epoch 1, batch 3\)/);
    expect(r.step).toBe(2); // the last checkpoint is step 2's
    expect(r.savedFinite).toBe(true);
    expect(r.memFinite).toBe(true);
    expect(r.same).toBe(true); // the weights in memory were not touched by step 3
    expect(r.leaked).toBe(0); // the optimizer and EMA fit created are freed
  });

  it('an infinite loss likewise', async () => {
    const r = await runPoisoned((l) => tf.concat([tf.fill([l.shape[0]!, 1], -Infinity), tf.slice(l, [0, 1], [-1, -1])], 1));
    expect(r.err).toBeInstanceOf(FitError);
    expect((r.err as Error).message).toMatch(/the loss is Infinity at step 3/);
    expect(r.step).toBe(2);
    expect(r.memFinite && r.savedFinite && r.same).toBe(true);
  });

  it('NaN gradients under a finite loss stop too (without and with clipping)', async () => {
    // d/dl √(l − l) at 0 is ∞ · 0: the loss stays finite, every gradient is NaN.
    const poison: Poison = (l) => tf.add(l, tf.mul(0, tf.sqrt(tf.sub(l, l))));
    const r = await runPoisoned(poison);
    expect(r.err).toBeInstanceOf(FitError);
    expect((r.err as Error).message).toMatch(/the gradients hold NaN or Infinity at step 3/);
    expect(r.step).toBe(2);
    expect(r.memFinite && r.savedFinite && r.same).toBe(true);
    const c = await runPoisoned(poison, { clipGradNorm: 1 });
    expect((c.err as Error).message).toMatch(/the gradient norm is NaN at step 3/);
    expect(c.step).toBe(2);
    expect(c.memFinite && c.savedFinite && c.same).toBe(true);
    expect(c.leaked).toBe(0);
  });
});
