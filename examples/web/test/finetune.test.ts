/**
 * The fine-tune tab's run (what its Worker executes), in Node on each backend: `fit` through a memory storage
 * reports loss, top-1, gates and nonlocality per epoch with a flat tensor count; a run stopped mid-training
 * through its AbortSignal and resumed from the stored checkpoint ends with the uninterrupted run's weights;
 * `classifyImages` with the trained weights reproduces the evaluation's top-1.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend, excludedHere, repoRoot } from '@softbias/test-utils';
import { memoryStorage } from '@softbias/train';
import { readWeights } from '@softbias/tensor-ops/models';
import * as ort from 'onnxruntime-node';
import { inspectOnnx } from '@softbias/onnx';
import { FASHION_MNIST_MEAN, FASHION_MNIST_STD } from '@softbias/data';
import { classifyImages, fashionMnistData, finetunedOnnx, runFinetune, userData, type FinetuneConfig } from '../src/finetune.js';

const cfg: FinetuneConfig = { model: 'convit_tiny', embedDim: 16, depth: 2, numHeads: 2, localUpToLayer: 1, epochs: 2, batchSize: 10, lr: 2e-3, seed: 1 };

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
    const top3 = await classifyImages(cfg, full.weights, testImages, 3);
    expect(top3).toHaveLength(d.test.length);
    for (const p of top3) {
      expect(p).toHaveLength(3);
      expect(p[0]!.prob).toBeGreaterThanOrEqual(p[1]!.prob);
      expect(p[1]!.prob).toBeGreaterThanOrEqual(p[2]!.prob);
      expect(p[0]!.name).toBe(d.classNames[p[0]!.index]);
    }
    const correct = top3.filter((p, i) => p[0]!.index === d.test.labels[i]).length;
    expect(correct / d.test.length).toBeCloseTo(full.history[2]!.top1, 6) // a fraction;
    const all = await classifyImages(cfg, full.weights, testImages.subarray(0, 28 * 28), 10);
    expect(all[0]!.reduce((s, p) => s + p.prob, 0)).toBeCloseTo(1, 5);
    await expect(classifyImages(cfg, full.weights, new Uint8Array(100))).rejects.toThrow(/whole number/);

    // The ONNX download: the same weights in onnxruntime (cpu) on the images normalised as in training give
    // the probabilities classifyImages gives, within 1e-4·max(1, max|p|).
    if (tf.getBackend() === 'webgpu' && typeof (globalThis as { OffscreenCanvas?: unknown }).OffscreenCanvas === 'undefined') {
      // Node's WebGPU has no OffscreenCanvas, through which tfjs-webgpu reads synchronously: exportOnnx says so
      // (the page's Worker has it; the browser e2e downloads the ONNX file there).
      await expect(finetunedOnnx(cfg, full.weights)).rejects.toThrow(/OffscreenCanvas/);
      expect(tf.memory().numTensors).toBe(start);
      return;
    }
    const onnx = await finetunedOnnx(cfg, full.weights);
    const info = inspectOnnx(onnx);
    expect(info.inputs[0]!.dims).toEqual(['batch', 28, 28, 1]);
    expect(info.outputs[0]!.dims).toEqual(['batch', 10]);
    expect(info.metadata['labels']).toBe(JSON.stringify(d.classNames));
    const sess = await ort.InferenceSession.create(onnx);
    const x = Float32Array.from(testImages, (v) => (v / 255 - FASHION_MNIST_MEAN[0]) / FASHION_MNIST_STD[0]);
    const logits = (await sess.run({ input: new ort.Tensor('float32', x, [d.test.length, 28, 28, 1]) }))['logits']!.data as Float32Array;
    const probsAll = await classifyImages(cfg, full.weights, testImages, 10);
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

  it('user images: 2–10 classes, every fifth image of a class held out', () => {
    const px = 28 * 28;
    const labels = [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1];
    const d = userData(new Uint8Array(labels.length * px), labels, ['cat', 'dog']);
    expect(d.train.length).toBe(9);
    expect(d.test.length).toBe(2);
    expect(() => userData(new Uint8Array(px), [0], ['only'])).toThrow(/2 to 10 classes/);
    expect(() => userData(new Uint8Array(2 * px), [0, 0], ['a', 'b'])).toThrow(/'b' has no images/);
  });
});
