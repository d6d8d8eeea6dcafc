import { describe, it, expect } from 'vitest';
import { existsSync, mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync, gunzipSync } from 'node:zlib';
import {
  loadFashionMnist,
  DEBIAN_FASHION_MNIST_DIR,
  FASHION_MNIST_CLASSES,
  EMBEDDED_FASHION_MNIST_URL,
  classCounts,
} from '@softbias/data';

function idxHeader(shape: number[]): Buffer {
  const b = Buffer.alloc(4 + 4 * shape.length);
  b[2] = 0x08;
  b[3] = shape.length;
  shape.forEach((n, d) => {
    b.writeUInt32BE(n, 4 + 4 * d);
  });
  return b;
}

/** A tiny Fashion-MNIST-shaped folder: n images 28×28, pixel (i, y, x) = (i + 3y + 5x) mod 256. */
function writeFakeSet(dir: string, split: 'train' | 't10k', n: number, gz: boolean): void {
  const px = Buffer.alloc(n * 784);
  for (let i = 0; i < n; i++) for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) px[i * 784 + y * 28 + x] = (i + 3 * y + 5 * x) % 256;
  const labels = Buffer.from(Array.from({ length: n }, (_, i) => (i * 7) % 10));
  const img = Buffer.concat([idxHeader([n, 28, 28]), px]);
  const lab = Buffer.concat([idxHeader([n]), labels]);
  const ext = gz ? '.gz' : '';
  writeFileSync(join(dir, `${split}-images-idx3-ubyte${ext}`), gz ? gzipSync(img) : img);
  writeFileSync(join(dir, `${split}-labels-idx1-ubyte${ext}`), gz ? gzipSync(lab) : lab);
}

/** FNV-1a of one image, to compare sets of images. */
function fnv(a: Uint8Array, start: number, len: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < start + len; i++) h = Math.imul(h ^ a[i]!, 16777619) >>> 0;
  return h;
}

describe('Fashion-MNIST', () => {
  it('loads a folder given by path, gzipped and raw', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'softbias-fmnist-'));
    writeFakeSet(dir, 'train', 12, true);
    writeFakeSet(dir, 't10k', 5, false);
    const train = await loadFashionMnist({ dir, split: 'train' });
    const test = await loadFashionMnist({ dir, split: 'test' });
    expect(train.length).toBe(12);
    expect(test.length).toBe(5);
    expect(train.imageShape).toEqual([28, 28, 1]);
    expect(train.classNames).toEqual([...FASHION_MNIST_CLASSES]);
    for (const ds of [train, test]) {
      for (let i = 0; i < ds.length; i++) {
        expect(ds.labels[i]).toBe((i * 7) % 10);
        const img = ds.image(i);
        expect(img[0]).toBe(i % 256);
        expect(img[5 * 28 + 9]).toBe((i + 15 + 45) % 256);
      }
    }
  });

  it('says what is missing or wrong', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'softbias-fmnist-bad-'));
    writeFakeSet(dir, 'train', 3, true);
    await expect(loadFashionMnist({ dir, split: 'test' })).rejects.toThrow(/lacks t10k-images-idx3-ubyte/);
    // labels count differs from images count
    writeFileSync(join(dir, 'train-labels-idx1-ubyte.gz'), gzipSync(Buffer.concat([idxHeader([2]), Buffer.from([1, 2])])));
    await expect(loadFashionMnist({ dir })).rejects.toThrow(/3 images but 2 labels/);
    writeFileSync(join(dir, 'train-labels-idx1-ubyte.gz'), gzipSync(Buffer.concat([idxHeader([3]), Buffer.from([1, 2, 12])])));
    await expect(loadFashionMnist({ dir })).rejects.toThrow(/label 12 is not one of the 10 classes/);
    await expect(loadFashionMnist({ split: 'val' as any })).rejects.toThrow(/split must be/);
  });

  it('embedded subset: 300 train and 100 test images per class', async () => {
    const train = await loadFashionMnist({ source: 'embedded' });
    const test = await loadFashionMnist({ source: 'embedded', split: 'test' });
    expect(train.source).toBe('embedded (train)');
    expect(classCounts(train.labels, 10)).toEqual(new Array(10).fill(300));
    expect(classCounts(test.labels, 10)).toEqual(new Array(10).fill(100));
    expect(train.imageShape).toEqual([28, 28, 1]);
    // Files stay small.
    let bytes = 0;
    for (const f of ['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz', 't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz']) {
      bytes += readFileSync(new URL(f, EMBEDDED_FASHION_MNIST_URL)).length;
    }
    expect(bytes).toBeLessThan(3_000_000);
  });

  it.skipIf(!existsSync(DEBIAN_FASHION_MNIST_DIR))('full set from the Debian package; the subset is drawn from it', async () => {
    const full = await loadFashionMnist({ source: 'full' });
    expect(full.length).toBe(60000);
    expect(full.source).toBe(`${DEBIAN_FASHION_MNIST_DIR} (train)`);
    expect(classCounts(full.labels, 10)).toEqual(new Array(10).fill(6000));
    const auto = await loadFashionMnist({ split: 'test' });
    expect(auto.length).toBe(10000);
    // Every embedded training image (with its label) is one of the full set's.
    const seen = new Set<string>();
    for (let i = 0; i < full.length; i++) seen.add(`${fnv(full.images, i * 784, 784)}:${full.labels[i]}`);
    const sub = await loadFashionMnist({ source: 'embedded' });
    for (let i = 0; i < sub.length; i++) expect(seen.has(`${fnv(sub.images, i * 784, 784)}:${sub.labels[i]}`)).toBe(true);
    // The raw (un-gzipped) Debian bytes parse the same as the gzipped ones.
    const raw = gunzipSync(readFileSync(join(DEBIAN_FASHION_MNIST_DIR, 't10k-labels-idx1-ubyte.gz')));
    const dir = mkdtempSync(join(tmpdir(), 'softbias-fmnist-raw-'));
    writeFileSync(join(dir, 't10k-labels-idx1-ubyte'), raw);
    writeFileSync(join(dir, 't10k-images-idx3-ubyte.gz'), readFileSync(join(DEBIAN_FASHION_MNIST_DIR, 't10k-images-idx3-ubyte.gz')));
    const rawTest = await loadFashionMnist({ dir, split: 'test' });
    expect(Array.from(rawTest.labels)).toEqual(Array.from(auto.labels));
  });
});
