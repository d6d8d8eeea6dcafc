import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend } from '@softbias/test-utils';
import { ArrayDataset, DataLoader, subset, subsamplePerClass, type Batch } from '@softbias/data';

/** 23 images 3×3×1 whose pixels all equal their sample index; label = index mod 4. */
function dataset(n = 23): ArrayDataset {
  const images = new Uint8Array(n * 9);
  for (let i = 0; i < n; i++) images.fill(i, i * 9, i * 9 + 9);
  return new ArrayDataset({ images, labels: Array.from({ length: n }, (_, i) => i % 4), imageShape: [3, 3, 1] });
}

async function take(b: Batch): Promise<{ ids: number[]; labels: number[]; x: Float32Array; shape: number[] }> {
  const x = (await b.x.data()) as Float32Array;
  const labels = Array.from(await b.y.data());
  const shape = b.x.shape;
  expect(b.y.dtype).toBe('int32');
  b.x.dispose();
  b.y.dispose();
  return { ids: Array.from(b.indices), labels, x, shape };
}

describeBackend('DataLoader', () => {
  it('streams [B, H, W, C] float32 batches and int32 labels; each epoch a seeded permutation', async () => {
    const ds = dataset();
    const loader = new DataLoader(ds, { batchSize: 5, seed: 3, mean: [0.1], std: [0.5] });
    expect(loader.batchesPerEpoch).toBe(5);
    const before = tf.memory().numTensors;
    const epochs: number[][] = [];
    for (let e = 0; e < 2; e++) {
      const ids: number[] = [];
      const sizes: number[] = [];
      for await (const b of loader.batches()) {
        expect(tf.memory().numTensors).toBe(before + 2); // one batch of tensors alive at a time
        const t = await take(b);
        sizes.push(t.shape[0]!);
        expect(t.shape.slice(1)).toEqual([3, 3, 1]);
        t.ids.forEach((id, k) => {
          expect(t.labels[k]).toBe(id % 4);
          expect(t.x[k * 9 + 4]).toBeCloseTo((id / 255 - 0.1) / 0.5, 5);
        });
        ids.push(...t.ids);
      }
      expect(sizes).toEqual([5, 5, 5, 5, 3]);
      expect([...ids].sort((a, b) => a - b)).toEqual(Array.from({ length: 23 }, (_, i) => i));
      epochs.push(ids);
      loader.nextEpoch();
    }
    expect(epochs[0]).not.toEqual(epochs[1]);
    expect(tf.memory().numTensors).toBe(before);
    // The same seed gives the same orders; another seed another.
    expect(Array.from(new DataLoader(ds, { batchSize: 5, seed: 3 }).order(1))).toEqual(epochs[1]);
    expect(Array.from(new DataLoader(ds, { batchSize: 5, seed: 4 }).order(1))).not.toEqual(epochs[1]);
    expect(Array.from(new DataLoader(ds, { batchSize: 5, shuffle: false }).order(7))).toEqual(Array.from({ length: 23 }, (_, i) => i));
  });

  it('resumes from a saved state with the same batches (order and augmentation)', async () => {
    const ds = dataset(30);
    const opts = { batchSize: 4, seed: 11, dropLast: true, augment: { crop: { kind: 'pad-crop' as const, padding: 1 }, hflip: true } };
    expect(new DataLoader(ds, opts).batchesPerEpoch).toBe(7);
    const a = new DataLoader(ds, opts);
    const full: Float32Array[] = [];
    let saved: ReturnType<DataLoader['getState']> | undefined;
    for (let e = 0; e < 2; e++) {
      for await (const b of a.batches()) {
        full.push((await take(b)).x);
        if (e === 1 && b.index === 2) saved = JSON.parse(JSON.stringify(a.getState()));
      }
      a.nextEpoch();
    }
    expect(saved).toEqual({ epoch: 1, position: 3, seed: 11, length: 30, batchSize: 4 });
    const b = new DataLoader(ds, opts);
    b.setState(saved!);
    const rest: Float32Array[] = [];
    for await (const batch of b.batches()) rest.push((await take(batch)).x);
    expect(rest.length).toBe(4);
    rest.forEach((x, k) => {
      expect(Array.from(x)).toEqual(Array.from(full[7 + 3 + k]!));
    });
    // Augmentation changed something (padding zeros appear) but never the label/sample pairing.
    expect(full.some((x) => x.some((v) => v === 0))).toBe(true);
    expect(() => b.setState({ ...saved!, batchSize: 5 })).toThrow(/state is for 30 samples, batch 5/);
    expect(() => b.setState({ ...saved!, position: 99 })).toThrow(/invalid epoch\/position/);
  });

  it('stateless passes for evaluation; subsets; output size', async () => {
    const ds = dataset(10);
    const sub = subset(ds, subsamplePerClass(ds.labels, { fraction: 0.5, seed: 1 }));
    expect(sub.length).toBe(4); // classes of sizes 3, 3, 2, 2 → 1, 1, 1, 1
    const loader = new DataLoader(sub, { batchSize: 3, shuffle: false, outputSize: [6, 6] });
    const seen: number[] = [];
    for (let pass = 0; pass < 2; pass++) {
      for await (const b of loader) {
        expect(b.x.shape.slice(1)).toEqual([6, 6, 1]);
        const t = await take(b);
        if (pass === 0) seen.push(...t.labels);
      }
    }
    expect(seen.sort()).toEqual([0, 1, 2, 3]);
    expect(loader.position).toBe(0);
    expect(() => new DataLoader(ds, { batchSize: 0 })).toThrow(/batchSize must be a positive integer/);
    expect(() => new DataLoader(ds, { batchSize: 11, dropLast: true })).toThrow(/make no full batch of 11/);
  });
});
