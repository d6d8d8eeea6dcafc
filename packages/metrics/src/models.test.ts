/**
 * The analytic MAC counts against the kernels the real models run (tf.profile), at small input sizes.
 */
import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend } from '@softbias/test-utils';
import { createModel as createConvit } from '@softbias/models-convit';
import { createModel as createConvnext } from '@softbias/models-convnextv2';
import { profileMacs, convitMacs, convnextv2Macs, countMacs, summarizeOverDataset, summarizeLayers } from '@softbias/metrics';

describeBackend('MACs of the real models', () => {
  it('ConViT: profiled = analytic (eval: positional attention computed once, then cached)', async () => {
    const cfg = { imgSize: 32, patchSize: 8, embedDim: 48, depth: 3, numHeads: 4, localUpToLayer: 2, numClasses: 10 };
    const m = createConvit('convit_tiny', cfg);
    const x = tf.zeros([1, 32, 32, 3]);
    const first = await profileMacs(() => m.forward(x));
    const second = await profileMacs(() => m.forward(x));
    expect(first.total).toBe(convitMacs(cfg).total);
    expect(second.total).toBe(convitMacs({ ...cfg, countPositional: false }).total);
    x.dispose();
    m.dispose();
  });

  // Each mixer counts its own MACs (model.macs()): what the kernels the model runs do, for every mixer kind.
  const mixers = [
    { kind: 'window', size: 2 },
    { kind: 'dwconv', kernelSize: 3 },
    { kind: 'dwconv', kernelSize: 3, dynamic: true },
    { kind: 'ff-patches' },
  ] as const;
  for (const spec of mixers) {
    it(`ConViT with a ${JSON.stringify(spec)} block: profiled = the model's own count (eval, then cached)`, async () => {
      const cfg = { imgSize: 32, patchSize: 8, embedDim: 48, depth: 3, numHeads: 4, localUpToLayer: 1, numClasses: 10 };
      const m = createConvit('convit_tiny', { ...cfg, mixers: [{ kind: 'gpsa' }, spec, { kind: 'mhsa' }] });
      m.eval();
      const x = tf.zeros([1, 32, 32, 3]);
      const want = countMacs(m.macs()).total;
      const first = await profileMacs(() => m.forward(x));
      expect(first.total).toBe(want);
      const cached = countMacs(m.macs()).total; // GPSA's positional projection is cached now
      expect(cached).toBe(want - 16 * 16 * 3 * 4);
      expect((await profileMacs(() => m.forward(x))).total).toBe(cached);
      expect(() => convitMacs({ ...cfg, mixers: m.config.mixers })).toThrow(/block 1 is '(window|dwconv|ff-patches)'.*countMacs\(model\.macs\(\)\)/);
      x.dispose();
      m.dispose();
    });
  }

  it('ConvNeXt V2: profiled = analytic, odd sizes floored', async () => {
    const cfg = { depths: [1, 1, 2, 1], dims: [8, 16, 24, 32], numClasses: 5 };
    const m = createConvnext('convnextv2_atto', cfg);
    for (const [h, w] of [[64, 64], [64, 48]] as const) {
      const x = tf.zeros([1, h, w, 3]);
      const p = await profileMacs(() => m.forward(x));
      expect(p.total).toBe(convnextv2Macs({ imgSize: [h, w], ...cfg }).total);
      x.dispose();
    }
    m.dispose();
  });

  it('ConViT nonlocality and gates through the per-layer summaries (MHSA layers have gates = null)', async () => {
    const m = createConvit('convit_tiny', { imgSize: 16, patchSize: 4, embedDim: 16, depth: 3, numHeads: 4, localUpToLayer: 2, numClasses: 3 });
    const xs = [tf.randomNormal([3, 16, 16, 3], 0, 1, 'float32', 1), tf.randomNormal([1, 16, 16, 3], 0, 1, 'float32', 2)];
    const per = [await m.nonlocality(xs[0]!), await m.nonlocality(xs[1]!)];
    const s = await summarizeOverDataset(xs.map((x) => ({ x })), (x) => m.nonlocality(x), { dispose: false });
    expect(s.samples).toBe(4);
    s.layers.forEach((layer, l) => {
      // Definition: the batch-size-weighted mean of the per-batch values.
      layer!.heads.forEach((v, h) => {
        expect(v).toBeCloseTo((3 * per[0]![l]![h]! + per[1]![l]![h]!) / 4, 5);
      });
    });
    const gates = summarizeLayers(await m.gates());
    expect(gates.layers.map((g) => (g === null ? null : g.heads.length))).toEqual([4, 4, null]);
    for (const g of gates.layers.slice(0, 2)) for (const v of g!.heads) expect(v).toBeCloseTo(1 / (1 + Math.exp(-1)), 5); // timm's init λ = 1
    tf.dispose(xs);
    m.dispose();
  });
});
