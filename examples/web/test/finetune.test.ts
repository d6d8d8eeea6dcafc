/**
 * The fine-tune tab's run (what its Worker executes), in Node on each backend: `fit` through a memory storage
 * reports loss, top-1, gates and nonlocality per epoch with a flat tensor count; a run stopped mid-training
 * through its AbortSignal and resumed from the stored checkpoint ends with the uninterrupted run's weights;
 * `classifyImages` with the trained weights reproduces the evaluation's top-1. A run from a checkpoint (the
 * shipped ConViT, a ConvNeXt V2 at another size and channel count) keeps its weights under a new head, reports
 * the checkpoint's gates at epoch 0 and trains at the checkpoint's input; a hub id that cannot be fetched says
 * what to do.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend, excludedHere, repoRoot } from '@softbias/test-utils';
import { memoryStorage } from '@softbias/train';
import { models, readWeights, setPretrainedConfig } from '@softbias/tensor-ops/models';
import { ConViT } from '@softbias/models-convit';
import { createModel as createConvNeXtV2 } from '@softbias/models-convnextv2';
import * as ort from 'onnxruntime-node';
import { inspectOnnx } from '@softbias/onnx';
import { FASHION_MNIST_MEAN, FASHION_MNIST_STD } from '@softbias/data';
import {
  baseWeights,
  buildModel,
  classifyImages,
  describeBase,
  fashionMnistData,
  finetunedOnnx,
  inputOf,
  runFinetune,
  TRUNK_INPUT,
  userData,
  type FinetuneConfig,
} from '../src/finetune.js';

const cfg: FinetuneConfig = { model: 'convit_fmnist', embedDim: 16, depth: 2, numHeads: 2, localUpToLayer: 1, epochs: 2, batchSize: 10, lr: 2e-3, seed: 1 };

async function data() {
  const dir = join(repoRoot, 'packages/data/assets/fashion-mnist');
  const f = (n: string) => new Uint8Array(readFileSync(join(dir, `${n}.gz`)));
  return fashionMnistData(
    { trainImages: f('train-images-idx3-ubyte'), trainLabels: f('train-labels-idx1-ubyte'), testImages: f('t10k-images-idx3-ubyte'), testLabels: f('t10k-labels-idx1-ubyte') },
    { perClass: 2, testPerClass: 1, seed: 1 },
  );
}

describeBackend('fine-tune tab: fit in a storage, reports, resume', () => {
  it('reports every epoch with a flat tensor count', async () => {
    const d = await data();
    expect(d.train.length).toBe(20);
    const start = tf.memory().numTensors;
    const full = await runFinetune(cfg, d, { storage: memoryStorage() });
    expect(full.status).toBe('completed');
    expect(full.step).toBe(4);
    expect(full.history.map((r) => r.epoch)).toEqual([0, 1, 2]);
    for (const r of full.history) {
      expect(r.gates).toHaveLength(2);
      expect(r.gates[0]).toBeGreaterThan(0);
      expect(r.gates[1]).toBeNull(); // block 1 is plain self-attention
      expect(r.nonlocality.every((v) => v !== null && v > 0)).toBe(true);
    }
    expect(full.history[0]!.gates[0]).toBeCloseTo(1 / (1 + Math.exp(-1)), 5); // σ(1) at initialisation
    expect(full.history[2]!.gates[0]).not.toBe(full.history[0]!.gates[0]);
    expect(full.history[1]!.numTensors).toBe(full.history[2]!.numTensors);
    expect(Number.isFinite(full.history[2]!.top1)).toBe(true);
    const file = await readWeights(full.weights);
    expect(file.metadata['labels']).toBe(JSON.stringify(d.classNames));
    expect(file.names()).toContain('blocks.0.attn.gating_param');

    // Classify with the fine-tuned weights: the test set's top-1 is what fit's evaluation reported for the
    // last epoch (same weights, same normalisation), probabilities sorted and, over all k classes, summing to 1.
    const testImages = await d.test.readImages(Int32Array.from({ length: d.test.length }, (_, i) => i));
    const top3 = await classifyImages(full.weights, testImages, 3);
    expect(top3).toHaveLength(d.test.length);
    for (const p of top3) {
      expect(p).toHaveLength(3);
      expect(p[0]!.prob).toBeGreaterThanOrEqual(p[1]!.prob);
      expect(p[1]!.prob).toBeGreaterThanOrEqual(p[2]!.prob);
      expect(p[0]!.name).toBe(d.classNames[p[0]!.index]);
    }
    const correct = top3.filter((p, i) => p[0]!.index === d.test.labels[i]).length;
    expect(correct / d.test.length).toBeCloseTo(full.history[2]!.top1, 6) // a fraction;
    const all = await classifyImages(full.weights, testImages.subarray(0, 28 * 28), 10);
    expect(all[0]!.reduce((s, p) => s + p.prob, 0)).toBeCloseTo(1, 5);
    await expect(classifyImages(full.weights, new Uint8Array(100))).rejects.toThrow(/whole number/);

    // The ONNX download: the same weights in onnxruntime (cpu) on the images normalised as in training give
    // the probabilities classifyImages gives, within 1e-4·max(1, max|p|).
    if (tf.getBackend() === 'webgpu' && typeof (globalThis as { OffscreenCanvas?: unknown }).OffscreenCanvas === 'undefined') {
      // Node's WebGPU has no OffscreenCanvas, through which tfjs-webgpu reads synchronously: exportOnnx says so
      // (the page's Worker has it; the browser e2e downloads the ONNX file there).
      await expect(finetunedOnnx(full.weights)).rejects.toThrow(/OffscreenCanvas/);
      expect(tf.memory().numTensors).toBe(start);
      return;
    }
    const onnx = await finetunedOnnx(full.weights);
    const info = inspectOnnx(onnx);
    expect(info.inputs[0]!.dims).toEqual(['batch', 28, 28, 1]);
    expect(info.outputs[0]!.dims).toEqual(['batch', 10]);
    expect(info.metadata['labels']).toBe(JSON.stringify(d.classNames));
    const sess = await ort.InferenceSession.create(onnx);
    const x = Float32Array.from(testImages, (v) => (v / 255 - FASHION_MNIST_MEAN[0]) / FASHION_MNIST_STD[0]);
    const logits = (await sess.run({ input: new ort.Tensor('float32', x, [d.test.length, 28, 28, 1]) }))['logits']!.data as Float32Array;
    const probsAll = await classifyImages(full.weights, testImages, 10);
    for (let i = 0; i < d.test.length; i++) {
      const row = Array.from(logits.subarray(10 * i, 10 * i + 10));
      const m = Math.max(...row);
      const z = row.reduce((a, v) => a + Math.exp(v - m), 0);
      for (const p of probsAll[i]!) expect(Math.abs(Math.exp(row[p.index]! - m) / z - p.prob), `image ${i} class ${p.index}`).toBeLessThanOrEqual(1e-4);
    }
    await sess.release();
    expect(tf.memory().numTensors).toBe(start);
  }, 240_000); // SwiftShader WebGPU in Node: about 20 s

  it.skipIf(excludedHere('web/finetune/abort-resume'))('abort + resume ends with the same weights', async () => {
    const d = await data();
    const start = tf.memory().numTensors;
    const full = await runFinetune(cfg, d, { storage: memoryStorage() });
    const storage = memoryStorage();
    const ac = new AbortController();
    const stopped = await runFinetune(cfg, d, { storage, signal: ac.signal, onProgress: (p) => p.step === 3 && ac.abort() });
    expect(stopped.status).toBe('aborted');
    expect(stopped.step).toBe(3);
    const resumed = await runFinetune(cfg, d, { storage, resume: true });
    expect(resumed.resumedFrom).toBe(3);
    expect(resumed.step).toBe(4);
    expect(resumed.checksum).toBe(full.checksum);
    expect(resumed.lastLoss).toBe(full.lastLoss);
    expect(resumed.history.map((r) => r.epoch)).toEqual([1, 2]); // epoch 1 from the checkpoint's history
    expect(resumed.history[1]!.gates).toEqual(full.history[2]!.gates);
    expect(tf.memory().numTensors).toBe(start);
  }, 240_000);

  it('the trunk trains at convit_fmnist\'s registered input: 28×28 grey, Fashion-MNIST\'s mean and std', () => {
    const m = buildModel(cfg, 4);
    expect(m.name).toBe('convit_fmnist');
    expect(inputOf(m)).toEqual(TRUNK_INPUT);
    expect(TRUNK_INPUT).toEqual({ size: [28, 28], channels: 1, mean: [FASHION_MNIST_MEAN[0]], std: [FASHION_MNIST_STD[0]] });
    m.dispose();
  });

  it('user images: 2–10 classes, every fifth image of a class held out', () => {
    const px = 28 * 28;
    const labels = [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1];
    const d = userData(new Uint8Array(labels.length * px), labels, ['cat', 'dog']);
    expect(d.train.length).toBe(9);
    expect(d.test.length).toBe(2);
    expect(() => userData(new Uint8Array(px), [0], ['only'])).toThrow(/2 to 10 classes/);
    expect(() => userData(new Uint8Array(2 * px), [0, 0], ['a', 'b'])).toThrow(/'b' has no images/);
  });

  it.skipIf(excludedHere('web/finetune/checkpoint-base'))('a checkpoint with a new head: its weights, gates and input kept', async () => {
    const start = tf.memory().numTensors;
    const d = await data();
    const shipped = new Uint8Array(readFileSync(join(repoRoot, 'examples/web/public/models/fashion-mnist-convit.safetensors')));
    const baseFile = await readWeights(shipped);
    // Three of the ten classes, the user's way (28×28 grey, every fifth held out).
    const keep = Array.from(d.train.labels.entries()).filter(([, c]) => c < 3).map(([i]) => i);
    const user = userData(await d.train.readImages(keep), keep.map((i) => d.train.labels[i]!), ['top', 'trouser', 'pullover']);
    const base = { source: 'shipped' as const, name: 'the shipped Fashion-MNIST ConViT' };
    const info = await describeBase(shipped);
    expect(info.input).toEqual({ size: [28, 28], channels: 1, mean: [FASHION_MNIST_MEAN[0]], std: [FASHION_MNIST_STD[0]] });
    expect(info.gpsa).toBe(true);
    expect(info.description).toMatch(/10 classes/);
    const ref = (await models.fromFile(baseFile)) as ConViT;
    const baseGates = (await ref.gates()).map((g) => (g ? g.reduce((a, v) => a + v, 0) / g.length : null));
    ref.dispose();

    // lr 0 (AdamW's decay is lr·wd: nothing moves): every trunk weight is the checkpoint's, the head is new.
    const still = await runFinetune({ ...cfg, base, lr: 0, epochs: 1 }, user, { storage: memoryStorage() }, shipped);
    expect(still.status).toBe('completed');
    expect(still.history[0]!.gates).toEqual(baseGates);
    const out = await readWeights(still.weights);
    expect(out.metadata['labels']).toBe(JSON.stringify(['top', 'trouser', 'pullover']));
    expect(JSON.parse(out.metadata['pretrained_cfg']!).input_size).toEqual([1, 28, 28]);
    const wantSd = baseFile.stateDict();
    const gotSd = out.stateDict();
    const host = (e: unknown) => (e as { data: Float32Array; shape: number[] });
    for (const n of baseFile.names()) {
      if (n.startsWith('head.')) continue;
      const want = host(wantSd.get(n)).data;
      const got = host(gotSd.get(n)).data;
      let same = want.length === got.length;
      for (let i = 0; same && i < want.length; i++) same = want[i] === got[i];
      expect(same, `${n} kept`).toBe(true);
    }
    expect(out.shape('head.weight')).toEqual([3, baseFile.shape('head.weight')![1]]);

    // Trained: the gates move from the checkpoint's, the classifier answers in the user's classes.
    const moved = await runFinetune({ ...cfg, base, epochs: 1 }, user, { storage: memoryStorage() }, shipped);
    expect(moved.history.map((r) => r.epoch)).toEqual([0, 1]);
    expect(moved.history[0]!.gates).toEqual(baseGates);
    expect(moved.history[1]!.gates).not.toEqual(baseGates);
    const top = await classifyImages(moved.weights, await user.test.readImages([0]), 3);
    expect(top[0]!.map((p) => p.name).sort()).toEqual(['pullover', 'top', 'trouser']);

    // A ConvNeXt V2 taking 32×32 RGB: the grey 28×28 images are repeated to RGB and resized as they are read.
    const cnx = createConvNeXtV2('convnextv2_atto', { depths: [1, 1, 1, 1], dims: [8, 16, 24, 32], numClasses: 5, seed: 3 });
    setPretrainedConfig(cnx, { inputSize: [3, 32, 32], mean: [0.5, 0.4, 0.3], std: [0.2, 0.25, 0.3] });
    const cnxBytes = await cnx.saveWeights();
    cnx.dispose();
    const cbase = { source: 'file' as const, name: 'tiny-convnextv2.safetensors' };
    const ran = await runFinetune({ ...cfg, base: cbase, epochs: 1 }, user, { storage: memoryStorage(), onStart: (i) => expect(i.size).toEqual([32, 32]) }, cnxBytes);
    expect(ran.input).toEqual({ size: [32, 32], channels: 3, mean: [0.5, 0.4, 0.3], std: [0.2, 0.25, 0.3] });
    expect(ran.history[1]!.gates).toEqual([]); // no GPSA in a ConvNet
    const rgb = new Uint8Array(2 * 32 * 32 * 3).map((_, i) => (i * 37) % 256);
    expect(await classifyImages(ran.weights, rgb, 2)).toHaveLength(2);
    await expect(classifyImages(ran.weights, new Uint8Array(28 * 28))).rejects.toThrow(/32×32×3/);
    await expect(runFinetune({ ...cfg, base: cbase }, user, { storage: memoryStorage() })).rejects.toThrow(/weights were not given/);
    expect(tf.memory().numTensors).toBe(start);
  }, 240_000);

  it('a hub checkpoint that cannot be fetched says what to do', async () => {
    const fetch404 = (async () => new Response('<html>not found</html>', { status: 404, headers: { 'content-type': 'text/html' } })) as typeof fetch;
    await expect(
      baseWeights({ source: 'hub', name: 'timm/convit_tiny.fb_in1k' }, undefined, { fetch: fetch404, cache: false, retries: 0 }),
    ).rejects.toThrow(/could not load 'timm\/convit_tiny\.fb_in1k' from the hub .*drop the file here/s);
    await expect(baseWeights({ source: 'file', name: 'x.safetensors' }, undefined)).rejects.toThrow(/no weights for x\.safetensors/);
  });
});
