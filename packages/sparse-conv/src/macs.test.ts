/**
 * Multiply-adds of the sparse encoder against the dense-masked one at mask ratio 0.6, counted op by op as the
 * encoders run, checked against closed forms. The counts do not depend on the backend; the 224-px Atto case
 * runs on wasm only (tfjs-cpu needs ~70 s for its dense form), the small case on cpu and wasm (not on the
 * ~100× slower SwiftShader WebGPU): see vitest.exclusions.ts.
 */
import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend, excludedHere } from '@softbias/test-utils';
import { MacCounter } from './macs.js';
import { maskedDenseEncoder, sparseEncoder } from './encoder.js';
import { numKept, randomMaskData } from './mask.js';
import { randomEncoderWeights } from '../test/fixture-weights.js';

function count(dims: number[], depths: number[], size: number, batch: number) {
  const rw = randomEncoderWeights(dims, depths, 1);
  const g = size / 32;
  const mask = randomMaskData({ batch, numPatches: g * g, ratio: 0.6, rng: 2 });
  const img = tf.randomNormal([batch, size, size, 3], 0, 1, 'float32', 3);
  const sparse = new MacCounter();
  const dense = new MacCounter();
  tf.dispose(sparseEncoder(img, mask, rw.weights, { counter: sparse }).out);
  tf.dispose(maskedDenseEncoder(img, mask, rw.weights, { counter: dense }).out);
  img.dispose();
  rw.dispose();
  return { sparse, dense, visibleFraction: numKept(g * g, 0.6) / (g * g) };
}

/** Closed forms of the fc1 + fc2 multiply-adds: 8·C² per site and block, on `sites(i)` sites of stage i. */
function mlpMacs(dims: number[], depths: number[], sites: (i: number) => number): number {
  return dims.reduce((s, c, i) => s + depths[i]! * 8 * c * c * sites(i), 0);
}

describeBackend('multiply-adds: sparse vs dense-masked encoder at mask ratio 0.6', () => {
  const cases = [
    { id: 'sparse-conv/macs/fcmae_tiny', name: 'fcmae_tiny config (128 px, dims 8…64, batch 2)', dims: [8, 16, 32, 64], depths: [1, 1, 1, 1], size: 128, batch: 2 },
    { id: 'sparse-conv/macs/convnextv2_atto', name: 'convnextv2_atto encoder (224 px, batch 1)', dims: [40, 80, 160, 320], depths: [2, 2, 6, 2], size: 224, batch: 1 },
  ];
  for (const c of cases) {
    it.skipIf(excludedHere(c.id))(`${c.name}: sparse ≤ 0.5 × dense, every op counted`, () => {
      const { sparse, dense, visibleFraction } = count(c.dims, c.depths, c.size, c.batch);
      const stemSites = (i: number) => c.batch * (c.size / 4 / 2 ** i) ** 2;
      // closed forms: MLP multiply-adds on all sites (dense) and on visible sites only (sparse)
      const kd = dense.byKind();
      const ks = sparse.byKind();
      expect(kd.get('linear')).toBe(mlpMacs(c.dims, c.depths, stemSites));
      expect(ks.get('linear')).toBe(mlpMacs(c.dims, c.depths, (i) => stemSites(i) * visibleFraction));
      // the depth-wise 7×7: 49·C per computed site
      const dw = (f: number) => c.dims.reduce((s, ch, i) => s + c.depths[i]! * 49 * ch * stemSites(i) * f, 0);
      expect(kd.get('dwconv')).toBe(dw(1));
      expect(ks.get('dwconv')).toBe(dw(visibleFraction));
      // stem conv: 4·4·3 per output channel and site
      expect(kd.get('conv')! - ks.get('conv')!).toBeCloseTo((1 - visibleFraction) * kd.get('conv')!, 6);
      // the dense-masked form also pays for zeroing masked sites after every op
      expect(kd.get('mask')).toBeGreaterThan(0);
      expect(ks.get('mask') ?? 0).toBe(0);
      const ratio = sparse.total / dense.total;
      console.log(
        `${c.name}: dense ${(dense.total / 1e6).toFixed(1)} M, sparse ${(sparse.total / 1e6).toFixed(1)} M multiply-adds, ratio ${ratio.toFixed(3)} ` +
          `(visible ${visibleFraction.toFixed(3)}); by kind dense ${JSON.stringify(Object.fromEntries([...kd].map(([k, v]) => [k, Math.round(v / 1e3)])))} k, ` +
          `sparse ${JSON.stringify(Object.fromEntries([...ks].map(([k, v]) => [k, Math.round(v / 1e3)])))} k`,
      );
      expect(ratio).toBeLessThanOrEqual(0.5);
      // every op does the same work per site, on the visible sites only; the dense form also zeroes masked sites
      const rel = Math.abs(sparse.total - visibleFraction * (dense.total - kd.get('mask')!)) / sparse.total;
      expect(rel).toBeLessThan(1e-9);
    });
  }
});
