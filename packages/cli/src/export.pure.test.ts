/**
 * `softbias export`: a saved ConViT, ConvNeXt V2 and FCMAE rebuilt from their files and written as ONNX that
 * onnxruntime-node runs to softbias' numbers (1e-4·max(1, max|softbias|)); --opset, --static-batch,
 * --external-data; argument errors. tfjs cpu backend.
 */
import * as tf from '@tensorflow/tfjs-core';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { setupBackend } from '@softbias/tensor-ops';
import { createModel as createConvit } from '@softbias/models-convit';
import { createFcmae, createModel as createConvnext } from '@softbias/models-convnextv2';
import { inspectOnnx } from '@softbias/onnx';
import { readFileSync } from 'node:fs';
import { exportCmd, parseExportArgs } from './export.js';

const dir = mkdtempSync(join(tmpdir(), 'softbias-cli-export-'));
const lines: string[] = [];
const log = (s: string) => lines.push(s);

beforeAll(async () => {
  await setupBackend('cpu');
});

async function agrees(onnx: string, forward: (x: tf.Tensor) => tf.Tensor, shape: [number, number, number, number]): Promise<void> {
  const sess = await ort.InferenceSession.create(onnx);
  const n = shape.reduce((a, b) => a * b, 1);
  const xd = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37));
  const out = await sess.run({ input: new ort.Tensor('float32', xd, shape) });
  const y = forward(tf.tensor(xd, shape));
  const want = (await y.data()) as Float32Array;
  const got = out[sess.outputNames[0]!]!.data as Float32Array;
  let diff = 0;
  let max = 0;
  want.forEach((v, i) => {
    diff = Math.max(diff, Math.abs(v - got[i]!));
    max = Math.max(max, Math.abs(v));
  });
  expect(diff).toBeLessThanOrEqual(1e-4 * Math.max(1, max));
  tf.dispose(y);
  await sess.release();
}

describe('softbias export', () => {
  it('a ConViT file → ONNX with a dynamic batch (batch 2 here), opset 17 by default', async () => {
    const m = createConvit('convit_tiny', { imgSize: 32, patchSize: 4, embedDim: 48, depth: 3, numHeads: 4, localUpToLayer: 2, numClasses: 5, seed: 1 });
    const st = join(dir, 'convit.safetensors');
    await m.saveWeights(st);
    await exportCmd(parseExportArgs([st, join(dir, 'convit.onnx')]), log);
    expect(lines.at(-2)).toMatch(/\(convit\) → .*convit\.onnx/);
    expect(lines.at(-1)).toBe('opset 17; inputs input [batch, 32, 32, 3] (NHWC float32); output logits [batch, 5]');
    await agrees(join(dir, 'convit.onnx'), (x) => m.forward(x), [2, 32, 32, 3]);
    m.dispose();
  });

  it('a ConvNeXt V2 file with --opset 18 --static-batch --batch 3 --img-size 64 --external-data', async () => {
    const m = createConvnext('convnextv2_custom', { depths: [1, 1, 1, 1], dims: [8, 16, 32, 64], numClasses: 4, seed: 2 });
    const st = join(dir, 'cnx.safetensors');
    await m.saveWeights(st);
    const out = join(dir, 'cnx.onnx');
    await exportCmd(parseExportArgs([st, out, '--opset', '18', '--static-batch', '--batch', '3', '--img-size', '64', '--external-data']), log);
    expect(existsSync(`${out}.data`)).toBe(true);
    const s = inspectOnnx(new Uint8Array(readFileSync(out)));
    expect(s.opset).toBe(18);
    expect(s.inputs[0]!.dims).toEqual([3, 64, 64, 3]);
    expect(s.externalLocations).toEqual(['cnx.onnx.data']);
    await agrees(out, (x) => m.forward(x), [3, 64, 64, 3]);
    m.dispose();
  });

  it('an FCMAE file → its encoder (inputs input and mask)', async () => {
    const f = createFcmae({ imgSize: 64, depths: [1, 1, 1, 1], dims: [8, 16, 32, 64], decoderEmbedDim: 16 });
    const st = join(dir, 'fcmae.safetensors');
    await f.saveWeights(st);
    await exportCmd(parseExportArgs([st, join(dir, 'fcmae.onnx')]), log);
    expect(lines.at(-1)).toBe('opset 17; inputs input [batch, 64, 64, 3], mask [batch, 4] (NHWC float32); output features [batch, 2, 2, 64]');
    f.dispose();
  });

  it('argument errors', () => {
    expect(() => parseExportArgs(['a.safetensors'])).toThrow(/weights file and an output path/);
    expect(() => parseExportArgs(['a', 'b', '--opset', 'x'])).toThrow(/--opset/);
    expect(() => parseExportArgs(['a', 'b', '--batch', '2'])).toThrow(/--static-batch/);
    expect(() => parseExportArgs(['a', 'b', '--external-data', '--single-file'])).toThrow(/exclude/);
    expect(() => parseExportArgs(['a', 'b', '--nope'])).toThrow();
    expect(parseExportArgs(['a', 'b', '--img-size', '96,64'])).toMatchObject({ imgSize: [96, 64], externalData: 'auto', staticBatch: false, opset: 17 });
  });
});
