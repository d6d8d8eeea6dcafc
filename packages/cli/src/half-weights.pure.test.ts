/**
 * The CLI takes float16 / bfloat16 weights files (saveWeights({ dtype })): `softbias eval --weights` scores a
 * float16 file as its float32 original (top-1 within one image), and `softbias export` turns it into ONNX that
 * onnxruntime runs to the float16 model's numbers. tfjs wasm backend (the evaluation of the embedded test set is 10× faster there than on cpu).
 */
import * as tf from '@tensorflow/tfjs-core';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { setupBackend } from '@softbias/tensor-ops';
import { models } from '@softbias/tensor-ops/models';
import { createModel as createConvit } from '@softbias/models-convit';
import { evalCmd } from './commands.js';
import { exportCmd, parseExportArgs } from './export.js';

const dir = mkdtempSync(join(tmpdir(), 'softbias-cli-half-'));

beforeAll(async () => {
  await setupBackend('wasm');
});

describe('half-precision weights files in the CLI', () => {
  it('eval --weights: a float16 file scores as its float32 original; half the size', async () => {
    const m = createConvit('convit_tiny', { imgSize: 28, patchSize: 4, inChans: 1, embedDim: 16, depth: 2, numHeads: 2, localUpToLayer: 1, numClasses: 10, seed: 3 });
    const f32 = join(dir, 'm32.safetensors');
    const f16 = join(dir, 'm16.safetensors');
    await m.saveWeights(f32);
    await m.saveWeights(f16, { dtype: 'float16' });
    m.dispose();
    expect(statSync(f16).size).toBeLessThan(statSync(f32).size * 0.55);
    const run = async (weights: string) => {
      const lines: string[] = [];
      await evalCmd({ data: 'fashion-mnist-embedded', weights, backend: 'wasm' }, (s) => lines.push(s));
      const line = lines.find((l) => l.startsWith(weights))!;
      const m1 = /top-1 ([\d.]+)%.* over (\d+) images/.exec(line)!;
      return { top1: Number(m1[1]), count: Number(m1[2]) };
    };
    const a = await run(f32);
    const b = await run(f16);
    expect(b.count).toBe(a.count);
    expect(Math.abs(a.top1 - b.top1)).toBeLessThanOrEqual(100 / a.count + 1e-9);
  });

  it('export: a bfloat16 ConViT file → ONNX that agrees with the reloaded model (1e-4·max(1, max|y|))', async () => {
    const m = createConvit('convit_tiny', { imgSize: 32, patchSize: 4, embedDim: 32, depth: 2, numHeads: 2, localUpToLayer: 1, numClasses: 5, seed: 4 });
    const st = join(dir, 'bf16.safetensors');
    await m.saveWeights(st, { dtype: 'bfloat16' });
    m.dispose();
    const onnx = join(dir, 'bf16.onnx');
    await exportCmd(parseExportArgs([st, onnx]), () => {});
    const back = await models.fromFile(st);
    const shape = [2, 32, 32, 3];
    const xd = Float32Array.from({ length: 2 * 32 * 32 * 3 }, (_, i) => Math.sin(i * 0.37));
    const sess = await ort.InferenceSession.create(onnx);
    const out = await sess.run({ input: new ort.Tensor('float32', xd, shape) });
    const y = back.forward(tf.tensor(xd, shape));
    const want = (await y.data()) as Float32Array;
    const got = out[sess.outputNames[0]!]!.data as Float32Array;
    let diff = 0;
    let max = 0;
    for (let i = 0; i < want.length; i++) {
      diff = Math.max(diff, Math.abs(want[i]! - got[i]!));
      max = Math.max(max, Math.abs(want[i]!));
    }
    expect(diff).toBeLessThanOrEqual(1e-4 * Math.max(1, max));
    tf.dispose(y);
    back.dispose();
    await sess.release();
  });
});
