/**
 * Writes the weights and inputs every backend loads, so all of them compute on the same numbers:
 * - convit_tiny, convnextv2_atto: the repository's PyTorch fixture weights (int8 tensors dequantised) and,
 *   as image 0, the fixture's input, whose PyTorch logits are kept for a cpu-vs-reference check;
 * - convit_tiny_deit: the convit_tiny fixture with each GPSA block turned into plain attention
 *   (qkv = [qk; v], no positional projection or gate), so the twins share everything they can;
 * - any other model: its own seeded initialisation, saved once.
 * Images 1…7 are seeded standard-normal noise.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { Rng, parseSafetensors, serializeSafetensors, setupBackend, type WriteTensor } from '@softbias/tensor-ops';
import { createBenchModel } from './models.js';

export interface PreparedModel {
  name: string;
  weightsFrom: string;
  /** PyTorch logits of image 0, when the weights and image 0 come from a fixture. */
  referenceLogits?: number[];
}

type Tensors = Map<string, { data: Float32Array; shape: number[] }>;

function readFixture(fixturesDir: string, name: string): { weights: Tensors; io: ReturnType<typeof parseSafetensors> } | undefined {
  const w = join(fixturesDir, `${name}.weights.safetensors`);
  const io = join(fixturesDir, `${name}.io.safetensors`);
  if (!existsSync(w) || !existsSync(io)) return undefined;
  const file = parseSafetensors(readFileSync(w));
  const exps = file.metadata['int8_pow2_exponents']
    ? (JSON.parse(file.metadata['int8_pow2_exponents']) as Record<string, number>)
    : {};
  const weights: Tensors = new Map();
  for (const k of file.names()) {
    const t = file.get(k);
    if (t.dtype === 'I8') {
      const e = exps[k];
      if (e === undefined) throw new Error(`fixture ${name}: int8 tensor ${k} has no exponent`);
      const data = new Float32Array(t.data.length);
      for (let i = 0; i < data.length; i++) data[i] = (t.data[i] as number) * 2 ** e;
      weights.set(k, { data, shape: t.shape });
    } else weights.set(k, file.getFloat32(k));
  }
  return { weights, io: parseSafetensors(readFileSync(io)) };
}

/** ConViT weights → its DeiT twin: GPSA blocks become MHSA with qkv = concat(qk, v) along the output axis. */
function toDeitTwin(w: Tensors): Tensors {
  const out: Tensors = new Map();
  for (const [k, t] of w) {
    const m = /^blocks\.(\d+)\.attn\.(qk|v|pos_proj\.weight|pos_proj\.bias|gating_param)(\.weight)?$/.exec(k);
    if (!m) {
      out.set(k, t);
      continue;
    }
    if (m[2] !== 'qk') continue;
    const v = w.get(`blocks.${m[1]}.attn.v.weight`);
    if (!v) throw new Error(`toDeitTwin: blocks.${m[1]}.attn.v.weight missing`);
    const data = new Float32Array(t.data.length + v.data.length);
    data.set(t.data, 0);
    data.set(v.data, t.data.length);
    out.set(`blocks.${m[1]}.attn.qkv.weight`, { data, shape: [t.shape[0]! + v.shape[0]!, t.shape[1]!] });
  }
  return out;
}

function inputBatch(first: Float32Array | undefined, batch: number, size: number, seed: number): WriteTensor {
  const per = size * size * 3;
  const data = new Float32Array(batch * per);
  const rng = new Rng(seed);
  for (let i = 0; i < data.length; i++) data[i] = rng.normal();
  if (first) {
    if (first.length !== per) throw new Error(`fixture input has ${first.length} values, expected ${per}`);
    data.set(first, 0);
  }
  return { data, shape: [batch, size, size, 3] };
}

/** Another run may be reading the same file: write beside it, then rename. */
function writeAtomic(path: string, bytes: Uint8Array): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, bytes);
  renameSync(tmp, path);
}

export async function prepareAssets(opts: {
  models: string[];
  fixturesDir: string;
  assetsDir: string;
  batch: number;
  imgSize: number;
}): Promise<PreparedModel[]> {
  mkdirSync(opts.assetsDir, { recursive: true });
  const out: PreparedModel[] = [];
  for (const name of opts.models) {
    const fixtureName = name === 'convit_tiny_deit' ? 'convit_tiny' : name;
    const fx = readFixture(opts.fixturesDir, fixtureName);
    let weights: Uint8Array;
    let first: Float32Array | undefined;
    const prepared: PreparedModel = { name, weightsFrom: '' };
    if (fx) {
      const w = name === 'convit_tiny_deit' ? toDeitTwin(fx.weights) : fx.weights;
      weights = serializeSafetensors([...w], { metadata: { format: 'pt', source: `fixtures/${fixtureName}` } });
      first = fx.io.getFloat32('input_nhwc').data;
      prepared.weightsFrom =
        name === fixtureName ? `fixtures/${fixtureName} (PyTorch reference weights)` : `fixtures/${fixtureName} with qkv = [qk; v] (DeiT twin)`;
      if (name === fixtureName && fx.io.has('logits')) prepared.referenceLogits = Array.from(fx.io.getFloat32('logits').data);
    } else {
      if (tf.getBackend() !== 'cpu') await setupBackend('cpu');
      const model = createBenchModel(name);
      weights = await model.saveWeights(); // the one writer (timm names, the metadata rule)
      model.dispose();
      prepared.weightsFrom = 'createModel initialisation';
    }
    writeAtomic(join(opts.assetsDir, `${name}.safetensors`), weights);
    const x = inputBatch(first, opts.batch, opts.imgSize, 1234);
    writeAtomic(join(opts.assetsDir, `${name}.input.safetensors`), serializeSafetensors([['x', x]]));
    out.push(prepared);
  }
  return out;
}
