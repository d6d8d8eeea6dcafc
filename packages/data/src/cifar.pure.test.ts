import { describe, it, expect } from 'vitest';
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCifar10Batch, loadCifar10, CIFAR10_CLASSES } from '@softbias/data';

/** Records with label (b·3 + r) mod 10 and channel-planar pixels p(r, c, y, x) = (r + 50c + 7y + 3x) mod 256. */
function batch(b: number, n: number): Buffer {
  const out = Buffer.alloc(n * 3073);
  for (let r = 0; r < n; r++) {
    out[r * 3073] = (b * 3 + r) % 10;
    for (let c = 0; c < 3; c++)
      for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) out[r * 3073 + 1 + c * 1024 + y * 32 + x] = (r + 50 * c + 7 * y + 3 * x) % 256;
  }
  return out;
}

describe('CIFAR-10 binary batches', () => {
  it('converts planar records to HWC', () => {
    const { images, labels } = parseCifar10Batch(batch(0, 4));
    expect(labels.length).toBe(4);
    expect(Array.from(labels)).toEqual([0, 1, 2, 3]);
    for (const [r, y, x, c] of [[0, 0, 0, 0], [1, 5, 9, 2], [3, 31, 31, 1], [2, 10, 0, 0]] as const) {
      expect(images[r * 3072 + (y * 32 + x) * 3 + c]).toBe((r + 50 * c + 7 * y + 3 * x) % 256);
    }
  });

  it('loads train (5 batches) and test from a folder, class names from batches.meta.txt', async () => {
    const root = mkdtempSync(join(tmpdir(), 'softbias-cifar-'));
    const dir = join(root, 'cifar-10-batches-bin');
    mkdirSync(dir);
    for (let b = 1; b <= 5; b++) writeFileSync(join(dir, `data_batch_${b}.bin`), batch(b, 3));
    writeFileSync(join(dir, 'test_batch.bin'), batch(9, 2));
    const train = await loadCifar10({ dir: root }); // the parent folder works too
    expect(train.length).toBe(15);
    expect(train.imageShape).toEqual([32, 32, 3]);
    expect(train.classNames).toEqual([...CIFAR10_CLASSES]);
    expect(train.labels[3]).toBe((2 * 3 + 0) % 10); // first record of data_batch_2
    expect(train.image(4)[(7 * 32 + 1) * 3 + 2]).toBe((1 + 100 + 49 + 3) % 256);
    const names = CIFAR10_CLASSES.map((n) => n.toUpperCase());
    writeFileSync(join(dir, 'batches.meta.txt'), names.join('\n') + '\n\n');
    const test = await loadCifar10({ dir, split: 'test' });
    expect(test.length).toBe(2);
    expect(test.classNames).toEqual(names);
  });

  it('rejects bad files with clear errors', async () => {
    expect(() => parseCifar10Batch(new Uint8Array(3072))).toThrow(/not a whole number of 3073-byte records/);
    expect(() => parseCifar10Batch(new Uint8Array(2 * 3074))).toThrow(/looks like CIFAR-100/);
    const bad = batch(0, 2);
    bad[3073] = 11;
    expect(() => parseCifar10Batch(bad, 'x.bin')).toThrow(/x.bin: record 1 has label 11/);
    const dir = mkdtempSync(join(tmpdir(), 'softbias-cifar-missing-'));
    writeFileSync(join(dir, 'test_batch.bin'), batch(0, 1));
    await expect(loadCifar10({ dir })).rejects.toThrow(/data_batch_1.bin not found/);
  });
});
