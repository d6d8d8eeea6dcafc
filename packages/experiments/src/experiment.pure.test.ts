/**
 * `runExperiment` on a toy ConViT: the per-epoch record has its definitions' ranges (gates in (0, 1) for GPSA
 * layers only, nonlocality for every layer, top-1 in [0, 1]), and the run frees everything it created — the
 * model, the probe batch, the optimizer — so the tensor count returns to where it was.
 */
import * as tf from '@tensorflow/tfjs-core';
import { describe, it, expect } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '@softbias/tensor-ops';
import { ArrayDataset } from '@softbias/data';
import { runExperiment, type ExperimentSpec } from '@softbias/experiments';

function dataset(n: number, seed: number): ArrayDataset {
  const rng = new Rng(seed);
  const images = new Uint8Array(n * 64);
  for (let i = 0; i < images.length; i++) images[i] = rng.int(256);
  return new ArrayDataset({ images, labels: Array.from({ length: n }, (_, i) => i % 3), imageShape: [8, 8, 1] });
}

const spec: ExperimentSpec = {
  label: 'toy',
  model: 'convit_tiny',
  overrides: { imgSize: 8, patchSize: 4, inChans: 1, numClasses: 3, embedDim: 8, depth: 2, numHeads: 2, localUpToLayer: 1, mlpRatio: 2 },
  fraction: 1,
  epochs: 2,
  batchSize: 8,
  lr: 1e-3,
  weightDecay: 0.05,
  warmupEpochs: 0,
  labelSmoothing: 0.1,
  seed: 0,
  mean: [0.5],
  std: [0.5],
};

describe('runExperiment', () => {
  it('records accuracy, gates and nonlocality per epoch, and frees its model, probe and optimizer', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'softbias-experiment-'));
    const before = tf.memory().numTensors;
    const trained: { classes: number; gates: (number | null)[] }[] = [];
    const r = await runExperiment(spec, {
      train: dataset(24, 1),
      test: dataset(12, 2),
      probeSize: 4,
      progress: 'none',
      log: join(dir, 'log.jsonl'),
      onTrained: async (model) => {
        trained.push({ classes: model.numClasses, gates: (await model.gates()).map((g) => (g ? g.reduce((a, b) => a + b, 0) / g.length : null)) });
      },
    });
    expect(tf.memory().numTensors).toBe(before);
    // The trained model, handed over once before it is freed: its gates are the last epoch's.
    expect(trained).toHaveLength(1);
    expect(trained[0]!.classes).toBe(3);
    expect(trained[0]!.gates[0]).toBeCloseTo(r.history.at(-1)!.gates[0]!, 6);
    expect(trained[0]!.gates[0]).not.toBeCloseTo(r.history[0]!.gates[0]!, 6);
    expect(r.status).toBe('completed');
    expect(r.trainSamples).toBe(24);
    expect(r.history.map((h) => h.epoch)).toEqual([0, 1, 2]);
    for (const h of r.history.slice(1)) {
      expect(h.top1).toBeGreaterThanOrEqual(0);
      expect(h.top1).toBeLessThanOrEqual(1);
      expect(h.gates).toHaveLength(2);
      expect(h.gates[0]).toBeGreaterThan(0);
      expect(h.gates[0]).toBeLessThan(1);
      expect(h.gates[1]).toBeNull(); // layer 1 is plain self-attention
      expect(h.nonlocality.every((v) => v !== null && v >= 0)).toBe(true);
    }
    const steps = readFileSync(join(dir, 'log.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string })
      .filter((x) => x.type === 'step');
    expect(steps).toHaveLength(6);
  });

  it('records gates and nonlocality per head; their means are the per-layer values', async () => {
    const r = await runExperiment(spec, { train: dataset(24, 1), test: dataset(12, 2), probeSize: 4, progress: 'none' });
    const mean = (a: readonly number[]) => a.reduce((x, y) => x + y, 0) / a.length;
    for (const h of r.history) {
      expect(h.gatesPerHead).toHaveLength(2);
      expect(h.gatesPerHead![0]).toHaveLength(2); // 2 heads
      expect(h.gatesPerHead![1]).toBeNull(); // layer 1 is plain self-attention
      expect(mean(h.gatesPerHead![0]!)).toBeCloseTo(h.gates[0]!, 6);
      for (let l = 0; l < 2; l++) {
        expect(h.nonlocalityPerHead![l]).toHaveLength(2);
        expect(mean(h.nonlocalityPerHead![l]!)).toBeCloseTo(h.nonlocality[l]!, 5);
      }
    }
  });
});
