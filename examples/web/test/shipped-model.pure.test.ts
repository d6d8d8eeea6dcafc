/**
 * The web app's shipped assets (public/): the Fashion-MNIST ConViT (< 1 MB, float16, Fashion-MNIST names and
 * preprocessing in its metadata; a grey image's input = (v/255 − mean)/std) and its ten sample images, classified
 * mostly right. `*.pure.test.ts` (cpu only): the files are checked here; the page running them on wasm and
 * WebGPU is checked against Node in e2e.pure.test.ts.
 */
import * as tf from '@tensorflow/tfjs-core';
import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { defaultAtol } from '@softbias/test-utils';
import { decodePng, FASHION_MNIST_CLASSES, FASHION_MNIST_MEAN, FASHION_MNIST_STD } from '@softbias/data';
import { classify, loadDemoModel, preprocessFor } from '../src/demo-model.js';

describe('web app: the shipped model and samples', () => {
  it('the shipped model: float16, Fashion-MNIST names and preprocessing; grey input = (v/255 − mean)/std; the samples classified', async () => {
    const start = tf.memory().numTensors;
    const pub = (f: string) => new Uint8Array(readFileSync(fileURLToPath(new URL(`../public/${f}`, import.meta.url))));
    const bytes = pub('models/fashion-mnist-convit.safetensors');
    expect(bytes.length).toBeLessThan(1 << 20);
    const dm = await loadDemoModel(bytes);
    expect(dm.kind).toBe('convit');
    expect(dm.labels).toEqual([...FASHION_MNIST_CLASSES]);
    expect(dm.pretrained.mean[0]).toBeCloseTo(FASHION_MNIST_MEAN[0]!, 6);
    expect(dm.pretrained.std[0]).toBeCloseTo(FASHION_MNIST_STD[0]!, 6);
    const samples = JSON.parse(new TextDecoder().decode(pub('samples/samples.json'))) as { file: string; label: string }[];
    expect(samples.map((s) => s.label)).toEqual([...FASHION_MNIST_CLASSES]);
    const xs: tf.Tensor4D[] = [];
    for (const s of samples) {
      const png = await decodePng(pub(s.file));
      expect([png.width, png.height, png.channels]).toEqual([28, 28, 1]);
      // As a browser decodes a grey PNG: RGBA with R = G = B.
      const rgba = new Uint8ClampedArray(28 * 28 * 4);
      for (let i = 0; i < 28 * 28; i++) rgba.set([png.data[i]!, png.data[i]!, png.data[i]!, 255], 4 * i);
      const x = preprocessFor(dm, { data: rgba, width: 28, height: 28 });
      xs.push(x);
      expect(x.shape).toEqual([1, 28, 28, 1]);
      const got = (await x.data()) as Float32Array;
      const want = Float32Array.from(png.data as Uint8Array, (v) => (v / 255 - FASHION_MNIST_MEAN[0]!) / FASHION_MNIST_STD[0]!);
      const worst = Math.max(...got.map((v, i) => Math.abs(v - want[i]!)));
      expect(worst, `${s.file}: preprocessed pixels`).toBeLessThanOrEqual(defaultAtol(want));
    }
    const { top5 } = await classify(dm, xs[0]!);
    expect(top5.map((p) => p.label).every((l) => (FASHION_MNIST_CLASSES as readonly string[]).includes(l))).toBe(true);
    // All ten in one forward (cheap on SwiftShader WebGPU too).
    const predT = tf.tidy(() => tf.argMax(dm.model.forward(tf.concat(xs, 0)), -1));
    const pred = Array.from(await predT.data());
    tf.dispose([predT, ...xs]);
    const right = pred.filter((k, i) => FASHION_MNIST_CLASSES[k] === samples[i]!.label).length;
    // 75 % test top-1 when it was trained (scripts/make-assets.mjs); these ten are its test images.
    expect(right, `predicted ${pred.map((k) => FASHION_MNIST_CLASSES[k])}`).toBeGreaterThanOrEqual(6);
    dm.model.dispose();
    expect(tf.memory().numTensors).toBe(start);
  });
});
