/**
 * Labelled image datasets held as uint8 HWC pixels. An in-memory dataset (`ArrayDataset`) keeps one
 * Uint8Array; a folder dataset decodes its files per batch. Neither makes tensors: `DataLoader` does, a batch
 * at a time.
 */

export interface ImageDataset {
  /** Number of samples. */
  readonly length: number;
  /** [H, W, C] of every image. */
  readonly imageShape: readonly [number, number, number];
  /** Label of every sample (cheap to hold even when the pixels are not). */
  readonly labels: Int32Array;
  readonly numClasses: number;
  readonly classNames: readonly string[];
  /** Where the data came from (a path, 'embedded', 'memory', …), for logs. */
  readonly source: string;
  /** Pixels of the given samples, concatenated: `indices.length · H · W · C` uint8 values, HWC per image. */
  readImages(indices: ArrayLike<number>): Promise<Uint8Array>;
}

export interface ArrayDatasetOptions {
  images: Uint8Array;
  labels: ArrayLike<number>;
  /** [H, W, C]. */
  imageShape: readonly [number, number, number];
  numClasses?: number;
  classNames?: readonly string[];
  source?: string;
}

/** A dataset whose pixels are all in memory (Fashion-MNIST, CIFAR-10). */
export class ArrayDataset implements ImageDataset {
  readonly images: Uint8Array;
  readonly labels: Int32Array;
  readonly imageShape: readonly [number, number, number];
  readonly numClasses: number;
  readonly classNames: readonly string[];
  readonly source: string;
  private readonly imageSize: number;

  constructor(opts: ArrayDatasetOptions) {
    const [h, w, c] = opts.imageShape;
    if (![h, w, c].every((v) => Number.isInteger(v) && v > 0)) {
      throw new Error(`ArrayDataset: imageShape must be [H, W, C] of positive integers, got [${opts.imageShape}]`);
    }
    this.imageSize = h * w * c;
    const n = opts.labels.length;
    if (opts.images.length !== n * this.imageSize) {
      throw new Error(
        `ArrayDataset: ${n} labels need ${n}·${h}·${w}·${c} = ${n * this.imageSize} pixel values, got ${opts.images.length}`,
      );
    }
    this.images = opts.images;
    this.labels = Int32Array.from(opts.labels);
    let maxLabel = -1;
    for (const l of this.labels) {
      if (!Number.isInteger(l) || l < 0) throw new Error(`ArrayDataset: labels must be non-negative integers, got ${l}`);
      maxLabel = Math.max(maxLabel, l);
    }
    this.numClasses = opts.numClasses ?? opts.classNames?.length ?? maxLabel + 1;
    if (maxLabel >= this.numClasses) {
      throw new Error(`ArrayDataset: label ${maxLabel} is out of range for ${this.numClasses} classes`);
    }
    this.classNames = opts.classNames ?? Array.from({ length: this.numClasses }, (_, i) => String(i));
    if (this.classNames.length !== this.numClasses) {
      throw new Error(`ArrayDataset: ${this.classNames.length} class names for ${this.numClasses} classes`);
    }
    this.imageShape = [h, w, c];
    this.source = opts.source ?? 'memory';
  }

  get length(): number {
    return this.labels.length;
  }

  /** The pixels of sample i (a view, not a copy). */
  image(i: number): Uint8Array {
    checkIndex(i, this.length);
    return this.images.subarray(i * this.imageSize, (i + 1) * this.imageSize);
  }

  async readImages(indices: ArrayLike<number>): Promise<Uint8Array> {
    const out = new Uint8Array(indices.length * this.imageSize);
    for (let k = 0; k < indices.length; k++) out.set(this.image(indices[k]!), k * this.imageSize);
    return out;
  }
}

/** A view of some samples of another dataset (no pixel copy). */
export class SubsetDataset implements ImageDataset {
  readonly labels: Int32Array;
  readonly indices: Int32Array;

  constructor(
    readonly parent: ImageDataset,
    indices: ArrayLike<number>,
  ) {
    this.indices = Int32Array.from(indices);
    for (const i of this.indices) checkIndex(i, parent.length);
    this.labels = this.indices.map((i) => parent.labels[i]!);
  }

  get length(): number {
    return this.indices.length;
  }
  get imageShape(): readonly [number, number, number] {
    return this.parent.imageShape;
  }
  get numClasses(): number {
    return this.parent.numClasses;
  }
  get classNames(): readonly string[] {
    return this.parent.classNames;
  }
  get source(): string {
    return this.parent.source;
  }

  readImages(indices: ArrayLike<number>): Promise<Uint8Array> {
    const mapped = new Int32Array(indices.length);
    for (let k = 0; k < indices.length; k++) {
      checkIndex(indices[k]!, this.length);
      mapped[k] = this.indices[indices[k]!]!;
    }
    return this.parent.readImages(mapped);
  }
}

/** The samples at `indices` of a dataset, as a view. */
export function subset(dataset: ImageDataset, indices: ArrayLike<number>): SubsetDataset {
  return new SubsetDataset(dataset, indices);
}

/** Decode every image of a (lazy) dataset into memory, `chunk` images at a time. */
export async function materialize(dataset: ImageDataset, chunk = 256): Promise<ArrayDataset> {
  const [h, w, c] = dataset.imageShape;
  const size = h * w * c;
  const images = new Uint8Array(dataset.length * size);
  for (let start = 0; start < dataset.length; start += chunk) {
    const idx = Array.from({ length: Math.min(chunk, dataset.length - start) }, (_, k) => start + k);
    images.set(await dataset.readImages(idx), start * size);
  }
  return new ArrayDataset({
    images,
    labels: dataset.labels,
    imageShape: dataset.imageShape,
    numClasses: dataset.numClasses,
    classNames: dataset.classNames,
    source: dataset.source,
  });
}

/** Number of samples per class. */
export function classCounts(labels: ArrayLike<number>, numClasses: number): number[] {
  const counts = new Array<number>(numClasses).fill(0);
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i]!;
    if (l < 0 || l >= numClasses) throw new Error(`classCounts: label ${l} is out of range for ${numClasses} classes`);
    counts[l]!++;
  }
  return counts;
}

function checkIndex(i: number, n: number): void {
  if (!Number.isInteger(i) || i < 0 || i >= n) throw new RangeError(`sample index ${i} is out of range [0, ${n})`);
}
