/**
 * CIFAR-10 binary batches ("CIFAR-10 binary version"): records of 1 label byte followed by 3072 pixel bytes,
 * the 1024 red values, then green, then blue, each row-major 32×32. Converted to HWC here.
 */
import { ArrayDataset } from './dataset.js';
import { readSource, pathExists } from './bytes.js';

export const CIFAR10_CLASSES = [
  'airplane',
  'automobile',
  'bird',
  'cat',
  'deer',
  'dog',
  'frog',
  'horse',
  'ship',
  'truck',
] as const;

/** Per-channel mean and standard deviation of the training pixels scaled to [0, 1]. */
export const CIFAR10_MEAN = [0.4914, 0.4822, 0.4465] as const;
export const CIFAR10_STD = [0.247, 0.2435, 0.2616] as const;

const RECORD = 1 + 3 * 1024;

/** Parse one binary batch file. `what` names it in errors. */
export function parseCifar10Batch(bytes: Uint8Array, what = 'CIFAR-10 batch'): { images: Uint8Array; labels: Uint8Array } {
  if (bytes.length === 0 || bytes.length % RECORD !== 0) {
    throw new Error(
      `${what}: ${bytes.length} bytes is not a whole number of ${RECORD}-byte records (1 label + 3·32·32 pixels)` +
        (bytes.length % (RECORD + 1) === 0 ? '; it looks like CIFAR-100 (2 label bytes per record)' : ''),
    );
  }
  const n = bytes.length / RECORD;
  const images = new Uint8Array(n * 3072);
  const labels = new Uint8Array(n);
  for (let r = 0; r < n; r++) {
    const base = r * RECORD;
    const l = bytes[base]!;
    if (l > 9) throw new Error(`${what}: record ${r} has label ${l}; CIFAR-10 labels are 0–9`);
    labels[r] = l;
    const dst = r * 3072;
    for (let p = 0; p < 1024; p++) {
      images[dst + 3 * p] = bytes[base + 1 + p]!;
      images[dst + 3 * p + 1] = bytes[base + 1 + 1024 + p]!;
      images[dst + 3 * p + 2] = bytes[base + 1 + 2048 + p]!;
    }
  }
  return { images, labels };
}

export interface Cifar10Options {
  /** The `cifar-10-batches-bin` folder (or its parent). */
  dir: string;
  split?: 'train' | 'test';
}

/** Load CIFAR-10 from its binary batches: train = data_batch_1..5.bin, test = test_batch.bin. */
export async function loadCifar10(opts: Cifar10Options): Promise<ArrayDataset> {
  const split = opts.split ?? 'train';
  if (split !== 'train' && split !== 'test') throw new Error(`CIFAR-10: split must be 'train' or 'test', got '${split}'`);
  let dir = opts.dir.replace(/\/$/, '');
  if (!(await pathExists(`${dir}/test_batch.bin`)) && (await pathExists(`${dir}/cifar-10-batches-bin/test_batch.bin`))) {
    dir = `${dir}/cifar-10-batches-bin`;
  }
  const files = split === 'train' ? [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`) : ['test_batch.bin'];
  const parts: { images: Uint8Array; labels: Uint8Array }[] = [];
  for (const f of files) {
    const path = `${dir}/${f}`;
    if (!(await pathExists(path))) {
      throw new Error(`CIFAR-10: ${path} not found (expected the binary version's ${files.join(', ')} in ${dir})`);
    }
    parts.push(parseCifar10Batch(await readSource(path), path));
  }
  const n = parts.reduce((s, p) => s + p.labels.length, 0);
  const images = new Uint8Array(n * 3072);
  const labels = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    images.set(p.images, o * 3072);
    labels.set(p.labels, o);
    o += p.labels.length;
  }
  let classNames: string[] = [...CIFAR10_CLASSES];
  if (await pathExists(`${dir}/batches.meta.txt`)) {
    const names = new TextDecoder().decode(await readSource(`${dir}/batches.meta.txt`)).split(/\r?\n/).map((s) => s.trim()).filter(Boolean);
    if (names.length === 10) classNames = names;
  }
  return new ArrayDataset({ images, labels, imageShape: [32, 32, 3], classNames, source: `${dir} (${split})` });
}
