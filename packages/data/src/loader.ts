/**
 * Batches streamed from a dataset: seeded shuffling per epoch, per-sample augmentation and normalisation on
 * the host, one `{ x, y }` pair of tensors per batch (the consumer disposes them). The sampler state
 * `{ epoch, position }` (with the seed and sizes it was made for) is plain JSON, so a checkpoint can resume
 * a run mid-epoch with exactly the batches it would have seen.
 *
 * Randomness is derived, not carried: epoch e's order comes from `Rng(mix(seed, e))` and batch b's
 * augmentation from `Rng(mix(seed, e, b))`, so the state needs no generator internals and any position can
 * be resumed directly.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '@softbias/tensor-ops';
import type { ImageDataset } from './dataset.js';
import { type AugmentOptions, type Normalization, normalizationCoefficients, renderSample } from './augment.js';
import { mixSeed } from './seed.js';

export interface DataLoaderOptions extends Normalization {
  batchSize: number;
  /** Shuffle each epoch (seeded). Default true. */
  shuffle?: boolean;
  /** Seed of the order and the augmentation. Default 0. */
  seed?: number;
  /** Drop the last incomplete batch. Default false. */
  dropLast?: boolean;
  /** Random crop / flip (training). Default none. */
  augment?: AugmentOptions;
  /** Output [H, W] (resized bilinearly when it differs from the dataset's, or the random-resized-crop size). */
  outputSize?: number | readonly [number, number];
}

/** The resumable sampler state (JSON). */
export interface LoaderState {
  /** Epoch being read (0-based). */
  epoch: number;
  /** Batches of that epoch already handed out. */
  position: number;
  seed: number;
  /** Dataset length and batch size the state belongs to (checked on restore). */
  length: number;
  batchSize: number;
}

export interface Batch {
  /** [B, H, W, C] float32, normalised. */
  x: tf.Tensor4D;
  /** [B] int32 labels. */
  y: tf.Tensor1D;
  /** Dataset indices of the samples. */
  indices: Int32Array;
  epoch: number;
  /** Batch index within the epoch. */
  index: number;
}

/** Host-side batch before it becomes tensors. */
export interface HostBatch {
  x: Float32Array;
  y: Int32Array;
  shape: [number, number, number, number];
  indices: Int32Array;
  epoch: number;
  index: number;
}

export class DataLoader {
  readonly batchSize: number;
  readonly seed: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  readonly outputShape: readonly [number, number, number];
  readonly batchesPerEpoch: number;
  private readonly coeffs: { scale: Float64Array; shift: Float64Array };
  private _epoch = 0;
  private _position = 0;

  constructor(
    readonly dataset: ImageDataset,
    readonly opts: DataLoaderOptions,
  ) {
    const { batchSize } = opts;
    if (!(Number.isInteger(batchSize) && batchSize > 0)) throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);
    if (dataset.length === 0) throw new Error('DataLoader: the dataset is empty');
    this.batchSize = batchSize;
    this.seed = opts.seed ?? 0;
    this.shuffle = opts.shuffle ?? true;
    this.dropLast = opts.dropLast ?? false;
    const [H, W, C] = dataset.imageShape;
    const size = opts.outputSize === undefined ? [H, W] : typeof opts.outputSize === 'number' ? [opts.outputSize, opts.outputSize] : opts.outputSize;
    if (!size.every((v) => Number.isInteger(v) && v > 0)) throw new RangeError(`outputSize must be positive integers, got [${size}]`);
    this.outputShape = [size[0]!, size[1]!, C];
    this.coeffs = normalizationCoefficients(C, opts);
    this.batchesPerEpoch = this.dropLast ? Math.floor(dataset.length / batchSize) : Math.ceil(dataset.length / batchSize);
    if (this.batchesPerEpoch === 0) {
      throw new Error(`DataLoader: ${dataset.length} samples make no full batch of ${batchSize} with dropLast`);
    }
  }

  get length(): number {
    return this.dataset.length;
  }
  get epoch(): number {
    return this._epoch;
  }
  get position(): number {
    return this._position;
  }

  getState(): LoaderState {
    return { epoch: this._epoch, position: this._position, seed: this.seed, length: this.dataset.length, batchSize: this.batchSize };
  }

  /** Restore a state from `getState()`; throws if it was made for another dataset size, batch size or seed. */
  setState(s: LoaderState): void {
    if (s.length !== this.dataset.length || s.batchSize !== this.batchSize || s.seed !== this.seed) {
      throw new Error(
        `DataLoader.setState: state is for ${s.length} samples, batch ${s.batchSize}, seed ${s.seed}; this loader has ` +
          `${this.dataset.length} samples, batch ${this.batchSize}, seed ${this.seed}`,
      );
    }
    if (!(Number.isInteger(s.epoch) && s.epoch >= 0 && Number.isInteger(s.position) && s.position >= 0 && s.position <= this.batchesPerEpoch)) {
      throw new Error(`DataLoader.setState: invalid epoch/position ${s.epoch}/${s.position} (${this.batchesPerEpoch} batches per epoch)`);
    }
    this._epoch = s.epoch;
    this._position = s.position;
  }

  /** Move to the start of the next epoch. */
  nextEpoch(): void {
    this._epoch++;
    this._position = 0;
  }

  /** The sample order of an epoch (dataset indices). */
  order(epoch: number): Int32Array {
    const idx = new Int32Array(this.dataset.length);
    for (let i = 0; i < idx.length; i++) idx[i] = i;
    if (this.shuffle) new Rng(mixSeed(this.seed, epoch, 0x5eed)).shuffle(idx);
    return idx;
  }

  /** Build batch `index` of `epoch` on the host (no tensors). */
  async hostBatch(epoch: number, index: number, order: Int32Array = this.order(epoch)): Promise<HostBatch> {
    if (!(index >= 0 && index < this.batchesPerEpoch)) throw new RangeError(`batch ${index} out of range [0, ${this.batchesPerEpoch})`);
    const start = index * this.batchSize;
    const indices = order.slice(start, Math.min(start + this.batchSize, order.length));
    const B = indices.length;
    const [H, W, C] = this.dataset.imageShape;
    const [oh, ow] = this.outputShape;
    const pixels = await this.dataset.readImages(indices);
    const x = new Float32Array(B * oh * ow * C);
    const rng = this.opts.augment ? new Rng(mixSeed(this.seed, epoch, index)) : null;
    const inSize = H * W * C;
    for (let k = 0; k < B; k++) {
      renderSample(pixels.subarray(k * inSize, (k + 1) * inSize), [H, W, C], x, k * oh * ow * C, oh, ow, this.opts.augment, this.coeffs, rng);
    }
    const y = new Int32Array(B);
    for (let k = 0; k < B; k++) y[k] = this.dataset.labels[indices[k]!]!;
    return { x, y, shape: [B, oh, ow, C], indices, epoch, index };
  }

  /**
   * Stateless: the batches of `epoch` from batch `from` (default: the current epoch from its start). For
   * evaluation passes; does not move the sampler.
   */
  async *iterate(opts: { epoch?: number; from?: number } = {}): AsyncGenerator<Batch> {
    const epoch = opts.epoch ?? this._epoch;
    const order = this.order(epoch);
    for (let b = opts.from ?? 0; b < this.batchesPerEpoch; b++) yield toTensors(await this.hostBatch(epoch, b, order));
  }

  /**
   * Stateful: the remaining batches of the current epoch. The position advances as each batch is handed out,
   * so `getState()` taken after a batch was used resumes at the next one. Call `nextEpoch()` to go on.
   */
  async *batches(): AsyncGenerator<Batch> {
    const epoch = this._epoch;
    const order = this.order(epoch);
    while (this._epoch === epoch && this._position < this.batchesPerEpoch) {
      const host = await this.hostBatch(epoch, this._position, order);
      this._position++;
      yield toTensors(host);
    }
  }

  /** One full pass over the current epoch (stateless), e.g. `for await (const b of testLoader)`. */
  [Symbol.asyncIterator](): AsyncGenerator<Batch> {
    return this.iterate();
  }
}

function toTensors(h: HostBatch): Batch {
  return {
    x: tf.tensor4d(h.x, h.shape, 'float32'),
    y: tf.tensor1d(h.y, 'int32'),
    indices: h.indices,
    epoch: h.epoch,
    index: h.index,
  };
}
