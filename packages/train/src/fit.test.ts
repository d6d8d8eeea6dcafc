import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend, currentBackend } from '@softbias/test-utils';
import { Rng } from '@softbias/tensor-ops';
import { ArrayDataset, DataLoader } from '@softbias/data';
import { fit, checkpointBytes } from '@softbias/train';
import { TinyViT } from '../test/tiny-model.js';

/** 4 classes of 8×8 grey textures (horizontal stripes, vertical stripes, checkerboard, flat) plus noise. */
function textures(n: number, seed: number): ArrayDataset {
  const rng = new Rng(seed);
  const images = new Uint8Array(n * 64);
  const labels: number[] = [];
  for (let i = 0; i < n; i++) {
    const c = i % 4;
    labels.push(c);
    for (let y = 0; y < 8; y++)
      for (let x = 0; x < 8; x++) {
        const on = c === 0 ? y % 2 === 0 : c === 1 ? x % 2 === 0 : c === 2 ? (x + y) % 2 === 0 : rng.random() < 0.5;
        images[i * 64 + y * 8 + x] = (on ? 160 : 50) + rng.int(50);
      }
  }
  return new ArrayDataset({ images, labels, imageShape: [8, 8, 1] });
}

const modelCfg = { imgSize: 8, patchSize: 4, inChans: 1, dim: 16, depth: 1, heads: 2, numClasses: 4, dropPath: 0.1, seed: 2 };

describeBackend('fit', () => {
  it('trains a tiny model: loss decreases, accuracy rises; progress, logs; no leaks', async () => {
    const train = new DataLoader(textures(64, 1), { batchSize: 16, seed: 1, mean: [0.5], std: [0.25] });
    const test = new DataLoader(textures(32, 2), { batchSize: 16, shuffle: false, mean: [0.5], std: [0.25] });
    const model = new TinyViT(modelCfg);
    const lines: string[] = [];
    const records: Record<string, unknown>[] = [];
    const progress: number[] = [];
    const before = tf.memory().numTensors;
    const r = await fit({
      model,
      data: train,
      epochs: 4,
      numClasses: 4,
      optimizer: { lr: 5e-3, weightDecay: 0.05 },
      schedule: { warmupEpochs: 1 },
      labelSmoothing: 0.1,
      clipGradNorm: 5,
      evaluate: { data: test },
      onProgress: (p) => progress.push(p.loss),
      onEpochEnd: ({ epoch }) => ({ custom: epoch * 10 }),
      log: (rec) => records.push(rec),
      progress: 'lines',
      output: { write: (s) => lines.push(s), isTTY: false },
    });
    expect(r.status).toBe('completed');
    expect(r.step).toBe(16);
    expect(r.history.map((h) => h.custom)).toEqual([0, 10, 20, 30]);
    const first = r.history[0]!.trainLoss;
    const last = r.history[3]!.trainLoss;
    console.log(`[${currentBackend}] fit: train loss ${r.history.map((h) => h.trainLoss.toFixed(3)).join(' → ')}, eval top-1 ${r.history.map((h) => h.eval!.top1.toFixed(2)).join(' → ')}`);
    expect(last).toBeLessThan(first * 0.8);
    expect(r.history[3]!.eval!.top1).toBeGreaterThan(0.5);
    expect(r.history[3]!.eval!.count).toBe(32);
    expect(model.training).toBe(false);
    expect(progress).toHaveLength(16);
    expect(lines.join('')).toMatch(/epoch 1\/4 batch 4\/4 step 4\/16 loss/);
    expect(lines.join('')).toMatch(/epoch 4\/4: train loss .* top-1/);
    expect(records.map((x) => x['type'])).toEqual(['start', ...Array(4).fill([...Array(4).fill('step'), 'epoch']).flat(), 'end']);
    r.optimizer.dispose();
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });

  it('stops on an AbortSignal with a checkpoint, resumes to the same weights', async () => {
    const { mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = mkdtempSync(join(tmpdir(), 'softbias-fit-'));
    const run = async (path: string, abortAt?: number) => {
      const model = new TinyViT(modelCfg);
      const data = new DataLoader(textures(48, 3), { batchSize: 16, seed: 4, augment: { crop: { kind: 'pad-crop', padding: 1 } } });
      const ac = new AbortController();
      const common = {
        model,
        data,
        epochs: 3,
        numClasses: 4,
        optimizer: { lr: 3e-3 },
        mixup: { mixupAlpha: 0.5, cutmixAlpha: 1 },
        ema: { decay: 0.8 },
        checkpoint: { path, everySteps: 2 },
        progress: 'none' as const,
      };
      const r1 = await fit({ ...common, signal: ac.signal, onProgress: (p) => (p.step === abortAt ? ac.abort() : undefined) });
      let r = r1;
      if (abortAt !== undefined) {
        expect(r1.status).toBe('aborted');
        expect(r1.step).toBe(abortAt);
        r1.optimizer.dispose();
        r1.ema?.dispose();
        const model2 = new TinyViT({ ...modelCfg, seed: 50 });
        const data2 = new DataLoader(textures(48, 3), { batchSize: 16, seed: 4, augment: { crop: { kind: 'pad-crop', padding: 1 } } });
        r = await fit({ ...common, model: model2, data: data2, resume: true });
        expect(r.resumedFrom).toBe(abortAt);
        common.model.dispose();
        common.model = model2;
      }
      expect(r.status).toBe('completed');
      expect(r.step).toBe(9);
      const bytes = await checkpointBytes({ model: common.model, optimizer: r.optimizer, ema: r.ema!, step: r.step });
      r.optimizer.dispose();
      r.ema?.dispose();
      common.model.dispose();
      return { bytes, history: r.history };
    };
    const a = await run(join(dir, 'a.safetensors'));
    const b = await run(join(dir, 'b.safetensors'), 5);
    expect(b.history.map((h) => h.trainLoss)).toEqual(a.history.map((h) => h.trainLoss));
    // On cpu and wasm the kernels are deterministic: bit for bit. WebGPU is compared the same way.
    expect(Buffer.compare(Buffer.from(a.bytes), Buffer.from(b.bytes))).toBe(0);
  });
});
