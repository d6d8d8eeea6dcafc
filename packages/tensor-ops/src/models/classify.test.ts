/** classify / classifyBatch on a tiny classifier of the contract: the shared preprocess, softmax, top-k, names, every image kind. */
import * as tf from '@tensorflow/tfjs-core';
import { it, expect, afterEach } from 'vitest';
import { describeBackend } from '@softbias/test-utils';
import { InputError, Module, Rng } from '@softbias/tensor-ops';
import {
  ClassifierHead,
  type ForwardIntermediatesResult,
  type PretrainedConfig,
  type VisionModel,
  classify,
  classifyBatch,
  imagenetConfig,
  imagenetLabels,
  labelNamesOf,
  preprocess,
  readWeights,
  setLabelNames,
  writeWeights,
} from '@softbias/tensor-ops/models';

/** Mean colour → a linear classifier: the logits depend on the image, so the ranking does too. */
class Tiny extends Module implements VisionModel<{ n: number }> {
  readonly config: { n: number };
  readonly pretrainedConfig: PretrainedConfig;
  head: ClassifierHead;
  constructor(n: number, seed = 1) {
    super();
    this.config = { n };
    this.pretrainedConfig = imagenetConfig({ inputSize: [3, 8, 8], cropPct: 0.8, numClasses: n, firstConv: 'stem', classifier: 'head' });
    this.head = this.registerModule('head', new ClassifierHead(3, n, { rng: new Rng(seed), scale: 20 }));
  }
  get numClasses() {
    return this.head.numClasses;
  }
  get numFeatures() {
    return 3;
  }
  forwardFeatures(x: tf.Tensor) {
    return tf.mean(x, [1, 2]);
  }
  forwardHead(f: tf.Tensor) {
    return this.head.forward(f);
  }
  forward(x: tf.Tensor) {
    return tf.tidy(() => this.forwardHead(this.forwardFeatures(x)));
  }
  forwardIntermediates(x: tf.Tensor): ForwardIntermediatesResult {
    return { intermediates: [], features: this.forwardFeatures(x) };
  }
  resetClassifier(n: number) {
    this.head = this.replaceModule('head', new ClassifierHead(3, n, { rng: new Rng(2) }));
  }
  loadWeights(): never {
    throw new Error('not used');
  }
  saveWeights(): never {
    throw new Error('not used');
  }
}

/** A 10×12 RGBA image, varied. */
function rgba(seed: number): ImageData {
  const data = new Uint8ClampedArray(10 * 12 * 4);
  for (let i = 0; i < data.length; i++) data[i] = (i * 37 + seed * 101) % 256;
  return { data, width: 12, height: 10, colorSpace: 'srgb' } as ImageData;
}

let start = 0;
afterEach(() => {
  expect(tf.memory().numTensors).toBe(start); // nothing leaked by the test
});

describeBackend('classify', () => {
  it('top-k of the softmax of the logits on the shared preprocess, best first, with the given names', async () => {
    start = tf.memory().numTensors;
    const m = new Tiny(7);
    const img = rgba(3);
    const x = preprocess(img, m);
    const logits = m.forward(x);
    const probs = tf.softmax(logits);
    const ref = Array.from(await probs.data());
    tf.dispose([x, logits, probs]);
    const labels = ['a', 'b', 'c', 'd', 'e', 'f', 'g'];
    const top = await classify(m, img, { topK: 3, labels });
    expect(top).toHaveLength(3);
    const order = ref.map((p, i) => [p, i] as const).sort((p, q) => q[0] - p[0]);
    expect(top.map((p) => p.index)).toEqual(order.slice(0, 3).map(([, i]) => i));
    for (const p of top) {
      expect(p.score).toBeCloseTo(ref[p.index]!, 5);
      expect(p.label).toBe(labels[p.index]);
    }
    expect(top[0]!.score).toBeGreaterThan(top[2]!.score); // scale 20: clearly separated
    const all = await classify(m, img, { topK: 100 }); // capped at numClasses
    expect(all).toHaveLength(7);
    expect(all.reduce((s, p) => s + p.score, 0)).toBeCloseTo(1, 5);
    expect(all[0]!.label).toBe(`class ${all[0]!.index}`); // no names: 'class i'
    m.dispose();
  });

  it('names: given > the checkpoint’s (setLabelNames / pretrainedConfig.labelNames) > ImageNet-1k for 1000 classes', async () => {
    start = tf.memory().numTensors;
    const big = new Tiny(1000);
    const [p] = await classify(big, rgba(1), { topK: 1 });
    expect(p!.label).toBe(imagenetLabels()[p!.index]);
    const names = Array.from({ length: 1000 }, (_, i) => `own ${i}`);
    setLabelNames(big, names);
    expect((await classify(big, rgba(1), { topK: 1 }))[0]!.label).toBe(`own ${p!.index}`);
    // They travel with the weights: writeWeights stores them, labelNamesOf reads them back.
    const saved = await readWeights(await writeWeights(big, { arch: 'tiny', family: 'tiny', config: {} }));
    expect(labelNamesOf(saved)).toEqual(names);
    setLabelNames(big, undefined);
    const bare = await readWeights(await writeWeights(big, { arch: 'tiny', family: 'tiny', config: {} }));
    expect(bare.metadata['labels']).toBeUndefined();
    big.dispose();
    const m = new Tiny(3);
    (m.pretrainedConfig as { labelNames?: string[] }).labelNames = ['x', 'y', 'z'];
    const [q] = await classify(m, rgba(2), { topK: 1 });
    expect(q!.label).toBe(['x', 'y', 'z'][q!.index]);
    await expect(classify(m, rgba(2), { labels: ['only one'] })).rejects.toThrow(/1 label names for a model with 3 classes/);
    await expect(classify(m, rgba(2), { topK: 0 })).rejects.toThrow(/topK must be a positive integer/);
    m.resetClassifier(4); // a new classifier: the old names no longer fit and are not used
    expect((await classify(m, rgba(2), { topK: 1 }))[0]!.label).toMatch(/^class \d$/);
    m.resetClassifier(0);
    await expect(classify(m, rgba(2))).rejects.toThrow(/no classifier/);
    m.dispose();
  });

  it('every image kind gives the same answer: ImageData, RGB and gray pixels, canvas, drawable, float32 tensor, batches', async () => {
    start = tf.memory().numTensors;
    const m = new Tiny(5);
    const img = rgba(4);
    const want = await classify(m, img, { topK: 5 });
    const rgb = new Uint8Array(10 * 12 * 3);
    for (let i = 0; i < 120; i++) for (let k = 0; k < 3; k++) rgb[i * 3 + k] = img.data[i * 4 + k]!;
    expect(await classify(m, { data: rgb, width: 12, height: 10, channels: 3 }, { topK: 5 })).toEqual(want);
    // A canvas: its 2D context's pixels.
    const canvas = { width: 12, height: 10, getContext: () => ({ getImageData: () => img, drawImage() {} }) };
    expect(await classify(m, canvas, { topK: 5 })).toEqual(want);
    // An image element / ImageBitmap: drawn on an OffscreenCanvas of its natural size.
    const g = globalThis as { OffscreenCanvas?: unknown };
    const saved = g.OffscreenCanvas;
    const drawn: unknown[] = [];
    g.OffscreenCanvas = class {
      constructor(readonly width: number, readonly height: number) {}
      getContext() {
        return { drawImage: (i: unknown) => drawn.push(i), getImageData: (_x: number, _y: number, w: number, h: number) => (w === 12 && h === 10 ? img : null) };
      }
    };
    try {
      const element = { width: 3, height: 3, naturalWidth: 12, naturalHeight: 10 };
      expect(await classify(m, element, { topK: 5 })).toEqual(want);
      expect(drawn).toEqual([element]);
      await expect(classify(m, { width: 0, height: 0 })).rejects.toThrow(/no pixels yet/);
    } finally {
      g.OffscreenCanvas = saved;
    }
    // A float32 tensor of 0–1 pixels; batches.
    const t = tf.tidy(() => tf.div(tf.tensor3d(Float32Array.from(rgb), [10, 12, 3]), 255));
    const fromTensor = await classify(m, t, { topK: 5 });
    expect(fromTensor.map((p) => p.index)).toEqual(want.map((p) => p.index));
    for (const [i, p] of fromTensor.entries()) expect(p.score).toBeCloseTo(want[i]!.score, 5);
    const batch = tf.tidy(() => tf.stack([t, tf.sub(1, t)]));
    const two = await classifyBatch(m, batch, { topK: 2 });
    expect(two).toHaveLength(2);
    expect(two[0]!.map((p) => p.index)).toEqual(want.slice(0, 2).map((p) => p.index));
    expect(two[1]).not.toEqual(two[0]);
    await expect(classify(m, batch)).rejects.toThrow(/one image at a time/);
    const listed = await classifyBatch(m, [img, img], { topK: 1 });
    expect(listed).toEqual([want.slice(0, 1), want.slice(0, 1)]);
    // Gray: the gray value in every channel.
    const gray = new Uint8Array(120).map((_, i) => (i * 13) % 256);
    const gray3 = new Uint8Array(360).map((_, i) => gray[Math.floor(i / 3)]!);
    expect(await classify(m, { data: gray, width: 12, height: 10, channels: 1 }, { topK: 5 })).toEqual(
      await classify(m, { data: gray3, width: 12, height: 10 }, { topK: 5 }),
    );
    tf.dispose([t, batch]);
    m.dispose();
  });

  it('refuses int / bool tensors (the model entries’ rule), paths and bytes (decode with @softbias/data), null', async () => {
    start = tf.memory().numTensors;
    const m = new Tiny(3);
    const ints = tf.zeros([10, 12, 3], 'int32');
    const bools = tf.zeros([10, 12, 3], 'bool');
    await expect(classify(m, ints)).rejects.toThrow(InputError);
    await expect(classify(m, ints)).rejects.toThrow(/expected float32 input, got int32/);
    await expect(classify(m, bools)).rejects.toThrow(/got bool/);
    await expect(classify(m, 'cat.jpg' as never)).rejects.toThrow(/decodeImageFile/);
    await expect(classify(m, new Uint8Array([0xff, 0xd8]) as never)).rejects.toThrow(/decodeImage\(bytes\)/);
    await expect(classify(m, null as never)).rejects.toThrow(/expected an image/);
    await expect(classify(m, { data: new Uint8Array(5), width: 2, height: 2 })).rejects.toThrow(/RGB or RGBA/);
    tf.dispose([ints, bools]);
    m.dispose();
  });
});
