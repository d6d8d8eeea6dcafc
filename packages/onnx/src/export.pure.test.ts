/**
 * exportOnnx's options and architecture variants on small models, each run by onnxruntime-node and compared
 * with softbias' forward at 1e-4·max(1, max|softbias|): opsets 17/18/21, static batch, external data
 * (in memory, and on disk through writeOnnx), ConViT pooling variants / no head / qkv bias / all-GPSA,
 * ConvNeXt V2 without head and at an odd input size, the FCMAE encoder at batch 3; and the refusals.
 * softbias runs on tfjs' cpu backend here (the reference op graph; SOFTBIAS_ONNX_REF=wasm for wasm).
 */
import * as tf from '@tensorflow/tfjs-core';
import { mkdtempSync, readFileSync, existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import * as ortWeb from 'onnxruntime-web';
import { setupBackend } from '@softbias/tensor-ops';
import { createModel as createConvit, type ConvitOverrides } from '@softbias/models-convit';
import { createFcmae, createModel as createConvnext } from '@softbias/models-convnextv2';
import { exportOnnx, inspectOnnx, writeOnnx, type ExportableModel, type ExportOnnxOptions } from './index.js';
import { compare, images, randomizeWeights } from '../test/helpers.js';

beforeAll(async () => {
  await setupBackend(process.env.SOFTBIAS_ONNX_REF === 'wasm' ? 'wasm' : 'cpu');
  ortWeb.env.wasm.numThreads = 1;
});

const micro: ConvitOverrides = { imgSize: 32, patchSize: 4, embedDim: 48, depth: 4, numHeads: 4, localUpToLayer: 2, numClasses: 10 };
const dir = mkdtempSync(join(tmpdir(), 'softbias-onnx-'));

type Fwd = ExportableModel & { forward(x: tf.Tensor): tf.Tensor; dispose(): void };

/** onnxruntime-node on `model` (bytes or a path) vs softbias' forward, batch B of H×W images. */
async function check(model: Fwd, source: Uint8Array | string, B: number, [H, W]: [number, number], label: string): Promise<number[]> {
  const sess = await ort.InferenceSession.create(source as Uint8Array);
  try {
    const xd = images([B, H, W, 3], B + H);
    const x = tf.tensor(xd, [B, H, W, 3]);
    const y = model.forward(x);
    const want = (await y.data()) as Float32Array;
    const shape = y.shape;
    tf.dispose([x, y]);
    const out = await sess.run({ [sess.inputNames[0]!]: new ort.Tensor('float32', xd, [B, H, W, 3]) });
    const got = out[sess.outputNames[0]!]!;
    expect(got.dims, `${label}: output shape`).toEqual(shape);
    const c = compare(got.data as Float32Array, want);
    expect(c.diff, `${label}: max |onnxruntime − softbias| = ${c.diff}`).toBeLessThanOrEqual(c.atol);
    return [c.diff];
  } finally {
    await sess.release();
  }
}

function convit(o: ConvitOverrides = {}, seed = 3): Fwd {
  const m = createConvit('convit_tiny', { ...micro, ...o, seed }) as unknown as Fwd;
  randomizeWeights(m, seed);
  return m;
}

function convnext(o: Record<string, unknown> = {}, seed = 4): Fwd {
  const m = createConvnext('convnextv2_custom', { depths: [1, 1, 2, 1], dims: [16, 32, 64, 128], numClasses: 10, ...o, seed }) as unknown as Fwd;
  randomizeWeights(m, seed);
  return m;
}

describe('opsets, batch, external data', () => {
  it('opsets 17, 18 (ReduceMean axes as an input) and 21, both families', async () => {
    const a = convit({ globalPool: 'avg' });
    const b = convnext();
    for (const opset of [17, 18, 21]) {
      const bytes = exportOnnx(a, { opset });
      expect(inspectOnnx(bytes).opset).toBe(opset);
      await check(a, bytes, 2, [32, 32], `convit opset ${opset}`);
      await check(b, exportOnnx(b, { opset, imgSize: 64 }), 2, [64, 64], `convnext opset ${opset}`);
    }
    a.dispose();
    b.dispose();
  });

  it('static batch: the dims are fixed; custom input/output names', async () => {
    const m = convit();
    const bytes = exportOnnx(m, { dynamicBatch: false, batchSize: 3, inputName: 'images', outputName: 'scores' });
    const s = inspectOnnx(bytes);
    expect(s.inputs).toEqual([{ name: 'images', dims: [3, 32, 32, 3] }]);
    expect(s.outputs).toEqual([{ name: 'scores', dims: [3, 10] }]);
    await check(m, bytes, 3, [32, 32], 'static batch 3');
    expect(inspectOnnx(exportOnnx(m, { dynamicBatch: false })).inputs[0]!.dims).toEqual([1, 32, 32, 3]);
    expect(() => exportOnnx(m, { dynamicBatch: false, batchSize: 0 })).toThrow(/batchSize/);
    m.dispose();
  });

  it('external data in memory: the graph, its weights file; onnxruntime-web loads both', async () => {
    const m = convnext();
    const r = exportOnnx(m, { externalData: 'weights.bin', imgSize: 64 });
    expect(r.location).toBe('weights.bin');
    const s = inspectOnnx(r.model);
    expect(s.externalInitializers).toBeGreaterThan(5);
    expect(s.externalLocations).toEqual(['weights.bin']);
    expect(r.model.byteLength).toBeLessThan(r.data.byteLength / 4);
    const sess = await ortWeb.InferenceSession.create(r.model, { externalData: [{ path: 'weights.bin', data: r.data }] });
    const xd = images([2, 64, 64, 3], 1);
    const out = await sess.run({ input: new ortWeb.Tensor('float32', xd, [2, 64, 64, 3]) });
    const y = m.forward(tf.tensor(xd, [2, 64, 64, 3]));
    const c = compare(out.logits!.data as Float32Array, (await y.data()) as Float32Array);
    expect(c.diff).toBeLessThanOrEqual(c.atol);
    await sess.release();
    expect(() => exportOnnx(m, { externalData: 'sub/dir.data' })).toThrow(/file name/);
    expect(exportOnnx(m, { externalData: true }).location).toBe('model.onnx.data');
    tf.dispose(y);
    m.dispose();
  });

  it('writeOnnx: one file (auto, small model), or the graph plus <file>.data that onnxruntime-node finds by path', async () => {
    const m = convit();
    const one = await writeOnnx(m, join(dir, 'one.onnx'));
    expect(one.dataPath).toBeNull();
    expect(statSync(one.path).size).toBe(one.modelBytes);
    expect([...readFileSync(one.path)]).toEqual([...exportOnnx(m)]);
    await check(m, one.path, 2, [32, 32], 'writeOnnx single file');
    const two = await writeOnnx(m, join(dir, 'two.onnx'), { externalData: true });
    expect(two.dataPath).toBe(join(dir, 'two.onnx.data'));
    expect(existsSync(two.dataPath!)).toBe(true);
    expect(statSync(two.dataPath!).size).toBe(two.dataBytes);
    await check(m, two.path, 1, [32, 32], 'writeOnnx external data');
    m.dispose();
  });
});

describe('architecture variants', () => {
  const variants: [string, ConvitOverrides][] = [
    ['class token, qkv bias', { qkvBias: true }],
    ['avg pool', { globalPool: 'avg' }],
    ["no pool ('')", { globalPool: '' }],
    ['no head (pre-logits)', { numClasses: 0 }],
    ['every block GPSA (no class token)', { localUpToLayer: 4 }],
    ['DeiT twin, 2 heads, 24×16 input', { localUpToLayer: 0, numHeads: 2, imgSize: [24, 16] }],
    ['no position embedding, 3 heads of 16', { usePosEmbed: false, numHeads: 3 }],
  ];
  for (const [label, o] of variants) {
    it(`ConViT: ${label}`, async () => {
      const m = convit(o);
      const [H, W] = (m as unknown as { config: { imgSize: [number, number] } }).config.imgSize;
      await check(m, exportOnnx(m), 2, [H, W], label);
      m.dispose();
    });
  }

  it('ConvNeXt V2: no head, and an odd 70×50 input (floors at every stride)', async () => {
    const m = convnext({ numClasses: 0 });
    expect(inspectOnnx(exportOnnx(m, { imgSize: 64 })).outputs[0]!.dims).toEqual(['batch', 128]);
    await check(m, exportOnnx(m, { imgSize: 64 }), 2, [64, 64], 'no head');
    m.dispose();
    const n = convnext();
    await check(n, exportOnnx(n, { imgSize: [70, 50] }), 2, [70, 50], '70×50');
    n.dispose();
  });

  it('FCMAE encoder at batch 3, per-image and batch-pooled GRN statistics = softbias dense-masked encoder', async () => {
    const f = createFcmae({ imgSize: 64, depths: [1, 1, 1, 1], dims: [8, 16, 32, 64], decoderEmbedDim: 16, seed: 2 });
    randomizeWeights(f.encoder, 5);
    const B = 3;
    const xd = images([B, 64, 64, 3], 9);
    const mask = Float32Array.from([1, 0, 0, 1, 0, 1, 1, 0, 0, 0, 1, 1]);
    for (const grnStats of ['sample', 'batch'] as const) {
      const bytes = exportOnnx(f, { grnStats });
      const s = inspectOnnx(bytes);
      expect(s.inputs).toEqual([{ name: 'input', dims: ['batch', 64, 64, 3] }, { name: 'mask', dims: ['batch', 4] }]);
      expect(s.outputs).toEqual([{ name: 'features', dims: ['batch', 2, 2, 64] }]);
      const sess = await ort.InferenceSession.create(bytes);
      const out = await sess.run({ input: new ort.Tensor('float32', xd, [B, 64, 64, 3]), mask: new ort.Tensor('float32', mask, [B, 4]) });
      const x = tf.tensor(xd, [B, 64, 64, 3]);
      const want = f.forwardEncoder(x, mask, { encoder: 'dense', grnStats });
      const c = compare(out.features!.data as Float32Array, (await want.data()) as Float32Array);
      expect(c.diff, grnStats).toBeLessThanOrEqual(c.atol);
      tf.dispose([x, want]);
      await sess.release();
    }
    f.dispose();
  });
});

describe('refusals', () => {
  it('a token mixer without an ONNX mapping names the block and the kinds that export', () => {
    const m = createConvit('convit_tiny', { ...micro, mixers: (i) => (i === 1 ? { kind: 'window', size: 4 } : undefined) });
    expect(() => exportOnnx(m)).toThrow(/block 1's token mixer 'window'/);
    m.dispose();
  });

  it('not a softbias model; an opset outside 17…22; another input size for a ConViT', () => {
    expect(() => exportOnnx({} as ExportableModel)).toThrow(TypeError);
    const m = convit();
    expect(() => exportOnnx(m, { imgSize: 64 })).toThrow(/built for 32×32/);
    expect(() => exportOnnx(m, { imgSize: 32 })).not.toThrow();
    expect(() => exportOnnx(m, { opset: 13 } as ExportOnnxOptions)).toThrow(/opset/);
    m.dispose();
  });
});
