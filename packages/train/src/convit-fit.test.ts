/**
 * fit() with a real ConViT (GPSA blocks, class token, MHSA blocks): the loss decreases on every backend, the
 * model's own noWeightDecay() is honoured, and after an optimizer step in eval mode the cached positional
 * attention matches a fresh model loaded with the same weights (the optimizer's assign invalidated the cache).
 */
import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend, currentBackend, expectClose } from '@softbias/test-utils';
import { Rng } from '@softbias/tensor-ops';
import { ArrayDataset, DataLoader } from '@softbias/data';
import { createModel } from '@softbias/models-convit';
import { fit, AdamW, crossEntropy } from '@softbias/train';

/** 4 classes of 8×8 grey textures (horizontal stripes, vertical stripes, checkerboard, flat) plus noise. */
function textures(n: number, seed: number): ArrayDataset {
  const rng = new Rng(seed);
  const images = new Uint8Array(n * 64);
  const labels: number[] = [];
  for (let i = 0; i < n; i++) {
    const c = i % 4;
    labels.push(c);
    for (let y = 0; y < 8; y++)
      for (let x = 0; x < 8; x++) {
        const on = c === 0 ? y % 2 === 0 : c === 1 ? x % 2 === 0 : c === 2 ? (x + y) % 2 === 0 : rng.random() < 0.5;
        images[i * 64 + y * 8 + x] = (on ? 160 : 50) + rng.int(50);
      }
  }
  return new ArrayDataset({ images, labels, imageShape: [8, 8, 1] });
}

const cfg = { imgSize: 8, patchSize: 4, inChans: 1, numClasses: 4, embedDim: 16, depth: 2, numHeads: 4, localUpToLayer: 1, dropPathRate: 0.1 };

describeBackend('fit with a ConViT', () => {
  it('loss decreases; an optimizer step invalidates the eval-mode positional attention', async () => {
    const model = createModel('convit_tiny', cfg);
    const optimizer = new AdamW(model, { lr: 3e-3, weightDecay: 0.05 });
    const nd = model.noWeightDecay();
    expect(nd.has('pos_embed')).toBe(true);
    expect(optimizer.noDecay).toEqual(nd);
    const train = new DataLoader(textures(48, 1), { batchSize: 24, seed: 2, mean: [0.5], std: [0.25] });
    const test = new DataLoader(textures(16, 2), { batchSize: 16, shuffle: false, mean: [0.5], std: [0.25] });
    const r = await fit({ model, data: train, epochs: 3, numClasses: 4, optimizer, labelSmoothing: 0.1, evaluate: { data: test }, progress: 'none' });
    console.log(`[${currentBackend}] ConViT fit: train loss ${r.history.map((h) => h.trainLoss.toFixed(3)).join(' → ')}, eval top-1 ${r.history.map((h) => h.eval!.top1.toFixed(2)).join(' → ')}`);
    expect(r.history[2]!.trainLoss).toBeLessThan(r.history[0]!.trainLoss);
    // An optimizer step in eval mode (no train()/eval() toggle): the assign alone must invalidate GPSA's cached
    // positional attention, so the model's logits equal those of a fresh model loaded with the new weights.
    const { x, y } = (await test.iterate().next()).value!;
    tf.dispose(model.forward(x)); // builds the eval-mode cache
    const { value, grads } = tf.variableGrads(() => crossEntropy(model.forward(x), y), optimizer.variables());
    const g = optimizer.gradsByName(grads);
    expect(g.has('blocks.0.attn.pos_proj.weight')).toBe(true);
    optimizer.applyGradients(g, 0.05);
    tf.dispose([value, ...g.values()]);
    const fresh = createModel('convit_tiny', { ...cfg, dropPathRate: 0 });
    const sd = model.stateDict();
    fresh.loadStateDict(sd);
    tf.dispose([...sd.values()]);
    const a = model.forward(x);
    const b = fresh.forward(x);
    await expectClose(a, (await b.data()) as Float32Array, 1e-5, 'convit-fit/cache');
    tf.dispose([a, b, x, y]);
    fresh.dispose();
    optimizer.dispose();
    model.dispose();
  });
});
