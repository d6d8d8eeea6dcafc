/**
 * Every registered ConViT, DeiT twin and ConvNeXt V2 up to base size, with seeded random weights: exported once
 * (opset 17, dynamic batch), run by onnxruntime-node at batch 2 (the batch dimension is the graph's `batch`
 * symbol: a batch size baked in at export would fail there; other batch sizes of exported graphs are run on small
 * models in export.pure.test.ts and fixtures.pure.test.ts), compared with softbias' own forward (wasm, 2 threads) within the project's rule for comparisons without a fixture tolerance,
 * 1e-4·max(1, max|softbias|). Large and huge (over 2 GiB / slow here) are exported by scripts/export-large.ts.
 *
 * A `.pure` spec (runs once, in the cpu project) that sets up its own backend: wasm, for speed.
 */
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { setupBackend } from '@softbias/tensor-ops';
import * as convit from '@softbias/models-convit';
import * as convnext from '@softbias/models-convnextv2';
import { exportOnnx, inspectOnnx, type ExportableModel } from './index.js';
import { compare, images, randomizeWeights } from '../test/helpers.js';

const EXCLUDED = new Set(['convnextv2_large', 'convnextv2_huge']);
const models = [
  ...convit.listModels().map((name) => ({ family: 'convit' as const, name })),
  ...convnext.listModels().filter((n) => !EXCLUDED.has(n)).map((name) => ({ family: 'convnextv2' as const, name })),
];
const rows: string[] = [];

beforeAll(async () => {
  await setupBackend('wasm', { threads: 2 });
});
afterAll(() => {
  console.log(['| model | params | onnx MB | b2 max|Δ| | atol | s |', '|---|---|---|---|---|---|', ...rows].join('\n'));
});

describe('every registered model up to base size: onnxruntime-node = softbias at batch 2 (dynamic batch)', () => {
  it('covers both families up to base size', () => {
    expect(models.filter((m) => m.family === 'convit').length).toBe(11); // 9 ImageNet models + the 2 Fashion-MNIST ones
    expect(models.map((m) => m.name)).toContain('convnextv2_base');
    expect(models.map((m) => m.name)).toContain('convit_base_deit');
  });

  models.forEach(({ family, name }, k) => {
    it(name, async () => {
      const t0 = performance.now();
      const model = (family === 'convit' ? convit.createModel(name, { seed: k }) : convnext.createModel(name, { seed: k })) as ExportableModel & {
        forward(x: tf.Tensor): tf.Tensor;
        dispose(): void;
        pretrainedConfig: { inputSize: readonly [number, number, number]; numClasses: number };
      };
      // Its registered input (224×224 RGB, 1000 classes; the Fashion-MNIST models 28×28 grey, 10 classes).
      const [C, H, W] = model.pretrainedConfig.inputSize;
      const K = model.pretrainedConfig.numClasses;
      try {
        randomizeWeights(model, k);
        const bytes = exportOnnx(model, { opset: 17, dynamicBatch: true });
        const s = inspectOnnx(bytes);
        expect(s.inputs).toEqual([{ name: 'input', dims: ['batch', H, W, C] }]);
        expect(s.outputs).toEqual([{ name: 'logits', dims: ['batch', K] }]);
        expect(s.opset).toBe(17);
        const sess = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 2, graphOptimizationLevel: 'all' });
        const diffs: number[] = [];
        let atol = 0;
        try {
          for (const B of [2]) {
            const xd = images([B, H, W, C], 7 + B);
            const x = tf.tensor(xd, [B, H, W, C]);
            const y = model.forward(x);
            const want = (await y.data()) as Float32Array;
            tf.dispose([x, y]);
            const out = await sess.run({ input: new ort.Tensor('float32', xd, [B, H, W, C]) });
            expect(out.logits!.dims).toEqual([B, K]);
            const c = compare(out.logits!.data as Float32Array, want);
            diffs.push(c.diff);
            atol = Math.max(atol, c.atol);
            expect(c.diff, `${name} batch ${B}: max |onnxruntime − softbias| ${c.diff} > ${c.atol}`).toBeLessThanOrEqual(c.atol);
          }
        } finally {
          await sess.release();
        }
        rows.push(
          `| ${name} | ${(model as unknown as { numParameters(): number }).numParameters().toLocaleString('en')} | ${(bytes.byteLength / 2 ** 20).toFixed(1)} | ` +
            `${diffs[0]!.toExponential(1)} | ${atol.toExponential(1)} | ${((performance.now() - t0) / 1000).toFixed(1)} |`,
        );
      } finally {
        model.dispose();
      }
    });
  });
});
