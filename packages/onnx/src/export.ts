/**
 * ONNX export of softbias models: ConViT and its DeiT twins, ConvNeXt V2, and the FCMAE encoder's dense-masked
 * form. Every graph takes NHWC float32 images as softbias does and computes what the model's eval-mode
 * `forward` computes, op for op (same op order where float rounding could differ): reshape + MatMul for the
 * non-overlapping convolutions, LayerNormalization (opset 17), Erf-based GELU, Conv with `group` for the
 * depth-wise convolutions (between two Transposes), GRN from ReduceSum/Sqrt/ReduceMean/Div. GPSA's positional
 * attention and gates do not depend on the input in eval mode: they are computed here with tfjs and stored as
 * initializers (`gated` = σ(λ)·softmax(pos_proj(rel)) [heads, N, N], `keep` = 1 − σ(λ) [heads, 1, 1]).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Parameter } from '@softbias/tensor-ops';
import { ConViT } from '@softbias/models-convit';
import { ConvNeXtV2, Fcmae, type ConvNeXtV2Block } from '@softbias/models-convnextv2';
import { type Dim, GraphBuilder, type SerializedModel, serializeModel } from './graph.js';

export interface ExportOnnxOptions {
  /** ONNX opset, 17 (default) to 22. */
  opset?: number;
  /** A symbolic batch dimension `batch` (default true); false fixes it at `batchSize`. */
  dynamicBatch?: boolean;
  /** The batch of a static-batch export (default 1). */
  batchSize?: number;
  /**
   * Store the weights outside the graph (ONNX external data): `true` names the data file `model.onnx.data`, a
   * string names it. Needed above protobuf's 2 GiB limit (ConvNeXt V2 large and huge); without it such a
   * model throws an `OnnxSizeError` instead of writing a broken file.
   */
  externalData?: boolean | string;
  /** Name of the image input (default `input`). */
  inputName?: string;
  /** Name of the output (default `logits`; `features` for the FCMAE encoder). */
  outputName?: string;
  /**
   * Input [H, W] (or one side) for ConvNeXt V2 and the FCMAE encoder, which take any size: default the
   * pretrained config's (224) or the FCMAE config's. ConViT's size is fixed when the model is built.
   */
  imgSize?: number | readonly [number, number];
  /** FCMAE encoder: GRN statistics over the whole batch's visible sites (`batch`) or per image. Default the model's. */
  grnStats?: 'batch' | 'sample';
  /** Extra `metadata_props`. */
  metadata?: Record<string, string>;
}

/** An export with external data: the graph and its weights file (named `location`, beside the graph). */
export interface OnnxWithExternalData {
  model: Uint8Array;
  data: Uint8Array;
  location: string;
}

/** The models `exportOnnx` takes. */
export type ExportableModel = ConViT | ConvNeXtV2 | Fcmae;

/** What an export produced: its graph's input and output, for callers that feed it. */
export interface ExportInfo {
  kind: 'convit' | 'convnextv2' | 'fcmae-encoder';
  inputs: { name: string; dims: Dim[] }[];
  output: { name: string; dims: Dim[] };
  opset: number;
  /** Bytes of the initializers. */
  weightBytes: number;
}

// ------------------------------------------------------------------------------------------------ weights

/** Float32 host copy of a tensor (computed with tfjs inside `fn`, then disposed). */
function host(fn: () => tf.Tensor): Float32Array {
  const t = tf.tidy(fn);
  try {
    // Serialised right away: the backend's array (a copy on wasm/webgpu) is read before anything can change it.
    return t.dataSync() as Float32Array;
  } finally {
    t.dispose();
  }
}

class Weights {
  constructor(
    readonly g: GraphBuilder,
    readonly params: Map<string, Parameter>,
  ) {}

  get(name: string): Parameter {
    const p = this.params.get(name);
    if (!p) throw new Error(`ONNX export: the model has no parameter '${name}'`);
    return p;
  }

  has(name: string): boolean {
    return this.params.has(name);
  }

  /** A parameter as an initializer in its tfjs layout (optionally reshaped), named after it. */
  plain(name: string, dims?: number[], onnxName = name): string {
    const p = this.get(name);
    return this.g.weight(onnxName, host(() => tf.clone(p.value)), dims ?? p.shape);
  }

  /** An initializer computed from tensors (weight slices, transposes), named `onnxName`. */
  derived(onnxName: string, fn: () => tf.Tensor): string {
    const t = tf.tidy(fn);
    try {
      return this.g.weight(onnxName, t.dataSync() as Float32Array, t.shape);
    } finally {
      t.dispose();
    }
  }
}

// ------------------------------------------------------------------------------------------------ shared ops

/**
 * A convolution with kernel = stride = k (no padding) on NHWC [B, H, W, C] as softbias computes it: floor the
 * size, [B, Ho, k, Wo, k·C] → [B, Ho, Wo, k, k·C] → [B, Ho, Wo, k·k·C] · W[k·k·C, O] + b.
 */
function patchConv(g: GraphBuilder, x: string, [H, W, C]: [number, number, number], k: number, w: string, b: string | null): { y: string; hw: [number, number] } {
  const Ho = Math.floor(H / k);
  const Wo = Math.floor(W / k);
  if (Ho < 1 || Wo < 1) throw new Error(`ONNX export: a ${H}×${W} map is smaller than the ${k}×${k} kernel`);
  let xc = x;
  if (Ho * k !== H || Wo * k !== W) xc = g.slice(x, [0, 0], [Ho * k, Wo * k], [1, 2]);
  const r = g.reshape(xc, [0, Ho, k, Wo, k * C]);
  const t = g.transpose(r, [0, 1, 3, 2, 4]);
  const rows = g.reshape(t, [0, Ho, Wo, k * k * C]);
  return { y: g.linear(rows, w, b), hw: [Ho, Wo] };
}

function layerNormParams(wts: Weights, prefix: string, module: { eps: number }, x: string): string {
  return wts.g.layerNorm(x, wts.plain(`${prefix}.weight`), wts.plain(`${prefix}.bias`), module.eps);
}

function linearParams(wts: Weights, prefix: string, x: string): string {
  const b = wts.has(`${prefix}.bias`) ? wts.plain(`${prefix}.bias`) : null;
  return wts.g.linear(x, wts.plain(`${prefix}.weight`), b);
}

// ------------------------------------------------------------------------------------------------ ConViT

/** What the exporter reads off a GPSA layer (public members of @softbias/gpsa's `Gpsa`). */
interface GpsaLike {
  kind: 'gpsa';
  numHeads: number;
  headDim: number;
  scale: number;
  dim: number;
  positionalAttention(grid: readonly [number, number]): tf.Tensor;
  gates(): tf.Tensor;
}

interface MhsaLike {
  kind: 'mhsa';
  numHeads: number;
  headDim: number;
  scale: number;
  dim: number;
}

function exportConvit(g: GraphBuilder, model: ConViT, o: Required<Pick<ExportOnnxOptions, 'inputName' | 'outputName'>> & { batch: Dim }): ExportInfo {
  const cfg = model.config;
  const wts = new Weights(g, new Map(model.namedParameters()));
  const [H, W] = cfg.imgSize;
  const p = cfg.patchSize;
  const C = model.embedDim;
  const Cin = cfg.inChans;
  const grid = model.gridSize;
  const N = model.numPatches;
  const input = g.input(o.inputName, [o.batch, H, W, Cin]);

  // patch_embed.proj: HWIO [p, p, Cin, C] = [p·p·Cin, C] rows.
  const pw = wts.plain('patch_embed.proj.weight', [p * p * Cin, C]);
  const pb = wts.has('patch_embed.proj.bias') ? wts.plain('patch_embed.proj.bias') : null;
  let t = g.reshape(patchConv(g, input, [H, W, Cin], p, pw, pb).y, [0, N, C]);
  if (model.pos_embed) t = g.add(t, wts.plain('pos_embed'));

  for (let i = 0; i < cfg.depth; i++) {
    if (i === cfg.localUpToLayer) {
      // The class token at index 0: cls_token [1, 1, C] expanded to [B, 1, C].
      const b = g.op('Shape', [t], { start: { i: 0 }, end: { i: 1 } });
      const shape = g.concat([b, g.constI64([1, C])], 0);
      const cls = g.op('Expand', [wts.plain('cls_token'), shape]);
      t = g.concat([cls, t], 1);
    }
    const P = model.prefixAt(i);
    const block = model.blocks.at(i);
    const pre = `blocks.${i}`;
    const n1 = layerNormParams(wts, `${pre}.norm1`, block.norm1, t);
    const mixer = block.attn as unknown as { kind: string };
    let a: string;
    if (mixer.kind === 'gpsa') a = gpsaGraph(g, wts, `${pre}.attn`, mixer as GpsaLike, n1, N, P, grid);
    else if (mixer.kind === 'mhsa') a = mhsaGraph(g, wts, `${pre}.attn`, mixer as MhsaLike, n1, N + P);
    else {
      throw new Error(
        `ONNX export: block ${i}'s token mixer '${mixer.kind}' is not exported (GPSA and MHSA are: every registered ConViT and DeiT twin)`,
      );
    }
    const h = g.add(t, a);
    const n2 = layerNormParams(wts, `${pre}.norm2`, block.norm2, h);
    const m = linearParams(wts, `${pre}.mlp.fc2`, g.gelu(linearParams(wts, `${pre}.mlp.fc1`, n2)));
    t = g.add(h, m);
  }
  t = layerNormParams(wts, 'norm', model.norm, t);
  const T = N + (cfg.localUpToLayer < cfg.depth ? 1 : 0);
  let outDims: Dim[];
  if (cfg.globalPool === 'token') {
    t = g.op('Gather', [t, g.constI64([0], [])], { axis: { i: 1 } });
    outDims = [o.batch];
  } else if (cfg.globalPool === 'avg') {
    t = g.reduceMean(g.slice(t, [1], [T], [1]), [1], false);
    outDims = [o.batch];
  } else outDims = [o.batch, T];
  if (model.numClasses > 0) {
    t = linearParams(wts, 'head', t);
    outDims.push(model.numClasses);
  } else outDims.push(C);
  g.output(t, o.outputName, outDims);
  return {
    kind: 'convit',
    inputs: [{ name: o.inputName, dims: [o.batch, H, W, Cin] }],
    output: { name: o.outputName, dims: outDims },
    opset: g.opset,
    weightBytes: g.weightBytes(),
  };
}

/** [B, n, C] → [B, heads, n, hd] */
function toHeads(g: GraphBuilder, x: string, n: number, heads: number, hd: number, perm: number[] = [0, 2, 1, 3]): string {
  return g.transpose(g.reshape(x, [0, n, heads, hd]), perm);
}

/** [B, heads, n, hd] → [B, n, C] */
function fromHeads(g: GraphBuilder, o: string, n: number, C: number): string {
  return g.reshape(g.transpose(o, [0, 2, 1, 3]), [0, n, C]);
}

/** GPSA on the patch tokens (prefix tokens pass through), as `Gpsa.mixPatches` (batched, eval mode). */
function gpsaGraph(g: GraphBuilder, wts: Weights, pre: string, m: GpsaLike, x: string, N: number, P: number, grid: readonly [number, number]): string {
  const C = m.dim;
  const Hh = m.numHeads;
  const hd = m.headDim;
  const qkw = wts.get(`${pre}.qk.weight`).value;
  const qkb = wts.has(`${pre}.qk.bias`) ? wts.get(`${pre}.qk.bias`).value : null;
  const wq = wts.derived(`${pre}.qk.weight.q`, () => tf.slice(qkw, [0, 0], [C, C]));
  const wk = wts.derived(`${pre}.qk.weight.k`, () => tf.slice(qkw, [0, C], [C, C]));
  const bq = qkb ? wts.derived(`${pre}.qk.bias.q`, () => tf.slice(qkb, [0], [C])) : null;
  const bk = qkb ? wts.derived(`${pre}.qk.bias.k`, () => tf.slice(qkb, [C], [C])) : null;
  // Input-independent in eval mode: computed once here (the same ops as Gpsa's positional cache).
  const gated = wts.derived(`${pre}.positional.gated`, () => {
    const attn = m.positionalAttention(grid);
    return tf.mul(tf.reshape(m.gates(), [Hh, 1, 1]), attn);
  });
  const keep = wts.derived(`${pre}.positional.keep`, () => tf.sub(1, tf.reshape(m.gates(), [Hh, 1, 1])));

  const patches = P ? g.slice(x, [P], [P + N], [1]) : x;
  const v = linearParams(wts, `${pre}.v`, patches);
  const q = toHeads(g, g.linear(patches, wq, bq), N, Hh, hd);
  const kT = toHeads(g, g.linear(patches, wk, bk), N, Hh, hd, [0, 2, 3, 1]);
  const content = g.softmax(g.mul(g.matmul(q, kT), g.constF([m.scale])));
  const mixed = g.add(g.mul(content, keep), gated);
  const attn = g.div(mixed, g.reduceSum(mixed, [-1], true));
  const o = fromHeads(g, g.matmul(attn, toHeads(g, v, N, Hh, hd)), N, C);
  const y = linearParams(wts, `${pre}.proj`, o);
  return P ? g.concat([g.slice(x, [0], [P], [1]), y], 1) : y;
}

/** Multi-head self-attention over all n tokens, as @softbias/attention's `attentionFromQkv` (q scaled first). */
function mhsaGraph(g: GraphBuilder, wts: Weights, pre: string, m: MhsaLike, x: string, n: number): string {
  const C = m.dim;
  const Hh = m.numHeads;
  const hd = m.headDim;
  const w = wts.get(`${pre}.qkv.weight`).value;
  const b = wts.has(`${pre}.qkv.bias`) ? wts.get(`${pre}.qkv.bias`).value : null;
  const third = (i: number, what: string) => {
    const wi = wts.derived(`${pre}.qkv.weight.${what}`, () => tf.slice(w, [0, i * C], [w.shape[0]!, C]));
    const bi = b ? wts.derived(`${pre}.qkv.bias.${what}`, () => tf.slice(b, [i * C], [C])) : null;
    return g.linear(x, wi, bi);
  };
  const q = toHeads(g, g.mul(third(0, 'q'), g.constF([m.scale])), n, Hh, hd);
  const kT = toHeads(g, third(1, 'k'), n, Hh, hd, [0, 2, 3, 1]);
  const v = toHeads(g, third(2, 'v'), n, Hh, hd);
  const attn = g.softmax(g.matmul(q, kT));
  return linearParams(wts, `${pre}.proj`, fromHeads(g, g.matmul(attn, v), n, C));
}

// ------------------------------------------------------------------------------------------------ ConvNeXt V2

function sideOf(s: number | readonly [number, number]): [number, number] {
  const [h, w] = typeof s === 'number' ? [s, s] : s;
  if (!Number.isInteger(h) || !Number.isInteger(w) || h < 1 || w < 1) throw new RangeError(`ONNX export: imgSize must be positive integers, got [${h}, ${w}]`);
  return [h, w];
}

/** 7×7 depth-wise conv (same padding, bias) on NHWC: Transpose → Conv(group = C) → Transpose. */
function depthwise(g: GraphBuilder, wts: Weights, pre: string, x: string, C: number, k: number): string {
  const wv = wts.get(`${pre}.weight`).value; // [k, k, C, 1]
  const w = wts.derived(`${pre}.weight`, () => tf.transpose(wv, [2, 3, 0, 1])); // [C, 1, k, k]
  const b = wts.plain(`${pre}.bias`);
  const pad = (k - 1) / 2;
  const y = g.op('Conv', [g.transpose(x, [0, 3, 1, 2]), w, b], {
    group: { i: C },
    kernel_shape: { ints: [k, k] },
    pads: { ints: [pad, pad, pad, pad] },
    strides: { ints: [1, 1] },
    dilations: { ints: [1, 1] },
  });
  return g.transpose(y, [0, 2, 3, 1]);
}

/** GRN as @softbias/grn computes it: x·(γ·Nx + 1) + β, Nx = Gx / (mean_c Gx + eps), Gx = √Σ x² over `axes`. */
function grnGraph(g: GraphBuilder, wts: Weights, pre: string, x: string, eps: number, axes: number[]): string {
  const gx = g.op('Sqrt', [g.reduceSum(g.mul(x, x), axes, true)]);
  const nx = g.div(gx, g.add(g.reduceMean(gx, [3], true), g.constF([eps])));
  const factor = g.add(g.mul(wts.plain(`${pre}.weight`), nx), g.constF([1]));
  return g.add(g.mul(x, factor), wts.plain(`${pre}.bias`));
}

interface StageShapes {
  hw: [number, number];
}

function blockGraph(g: GraphBuilder, wts: Weights, pre: string, block: ConvNeXtV2Block, x: string): string {
  const C = block.dim;
  const k = block.convDw.kernel;
  let y = depthwise(g, wts, `${pre}.conv_dw`, x, C, k);
  y = layerNormParams(wts, `${pre}.norm`, block.norm, y);
  y = g.gelu(linearParams(wts, `${pre}.mlp.fc1`, y));
  y = grnGraph(g, wts, `${pre}.mlp.grn`, y, block.mlp.grn.eps, [1, 2]);
  y = linearParams(wts, `${pre}.mlp.fc2`, y);
  return g.add(x, y);
}

function exportConvnext(g: GraphBuilder, model: ConvNeXtV2, o: Required<Pick<ExportOnnxOptions, 'inputName' | 'outputName'>> & { batch: Dim; imgSize?: number | readonly [number, number] }): ExportInfo {
  const cfg = model.config;
  const wts = new Weights(g, new Map(model.namedParameters()));
  const [H, W] = sideOf(o.imgSize ?? model.pretrained?.inputSize ?? 224);
  if (H < 32 || W < 32) throw new RangeError(`ONNX export: ConvNeXt V2 needs H, W ≥ 32, got ${H}×${W}`);
  const Cin = cfg.inChans;
  const input = g.input(o.inputName, [o.batch, H, W, Cin]);
  const k0 = model.stem.patchSize;
  const stem = patchConv(g, input, [H, W, Cin], k0, wts.plain('stem.0.weight', [k0 * k0 * Cin, cfg.dims[0]]), wts.plain('stem.0.bias'));
  let x = layerNormParams(wts, 'stem.1', model.stem.norm, stem.y);
  const s: StageShapes = { hw: stem.hw };
  for (let i = 0; i < 4; i++) {
    const stage = model.stages.at(i);
    if (stage.downsample) {
      const ds = stage.downsample;
      const n = layerNormParams(wts, `stages.${i}.downsample.0`, ds.norm, x);
      const r = patchConv(g, n, [s.hw[0], s.hw[1], ds.inDim], 2, wts.plain(`stages.${i}.downsample.1.weight`, [4 * ds.inDim, ds.outDim]), wts.plain(`stages.${i}.downsample.1.bias`));
      x = r.y;
      s.hw = r.hw;
    }
    stage.blocks.items.forEach((b, j) => {
      x = blockGraph(g, wts, `stages.${i}.blocks.${j}`, b, x);
    });
  }
  x = layerNormParams(wts, 'head.norm', model.head.norm, g.reduceMean(x, [1, 2], false));
  const outDims: Dim[] = [o.batch, cfg.dims[3]];
  if (model.head.fc) {
    x = linearParams(wts, 'head.fc', x);
    outDims[1] = model.numClasses;
  }
  g.output(x, o.outputName, outDims);
  return {
    kind: 'convnextv2',
    inputs: [{ name: o.inputName, dims: [o.batch, H, W, Cin] }],
    output: { name: o.outputName, dims: outDims },
    opset: g.opset,
    weightBytes: g.weightBytes(),
  };
}

// ------------------------------------------------------------------------------------------------ FCMAE encoder

/**
 * The FCMAE encoder's dense-masked form (`@softbias/sparse-conv` maskedDenseEncoder, the reference's dense
 * equivalent of its sparse encoder): inputs the images and the patch mask [B, L] (1 = removed, L = gh·gw on
 * the 32-pixel grid), output the last stage [B, gh, gw, C] (0 on removed cells).
 */
function exportFcmaeEncoder(
  g: GraphBuilder,
  fcmae: Fcmae,
  o: Required<Pick<ExportOnnxOptions, 'inputName' | 'outputName'>> & { batch: Dim; imgSize?: number | readonly [number, number]; grnStats: 'batch' | 'sample' },
): ExportInfo {
  const enc = fcmae.encoder;
  const wts = new Weights(g, new Map(enc.namedParameters().map(([k, v]) => [k, v] as [string, Parameter])));
  const [H, W] = sideOf(o.imgSize ?? fcmae.config.imgSize);
  const stride = fcmae.config.patchSize;
  if (H % stride !== 0 || W % stride !== 0) throw new RangeError(`ONNX export: FCMAE image sides must be multiples of ${stride}, got ${H}×${W}`);
  const gh = H / stride;
  const gw = W / stride;
  const Cin = enc.inChans;
  const input = g.input(o.inputName, [o.batch, H, W, Cin]);
  const mask = g.input('mask', [o.batch, gh * gw]);
  // visible at stage i: 1 − mask, each cell repeated s×s (s = 2^(3−i)), as [B, gh·s, gw·s, 1].
  const m6 = g.sub(g.constF([1]), g.reshape(mask, [0, gh, 1, gw, 1, 1]));
  const vis = [3, 2, 1, 0].map((e) => {
    const s = 2 ** e;
    if (s === 1) return g.reshape(m6, [0, gh, gw, 1]);
    return g.reshape(g.mul(m6, g.constF(new Array(s * s).fill(1), [1, 1, s, 1, s, 1])), [0, gh * s, gw * s, 1]);
  });
  const grnAxes = o.grnStats === 'batch' ? [0, 1, 2] : [1, 2];
  const k0 = enc.stem.patchSize;
  const stem = patchConv(g, input, [H, W, Cin], k0, wts.plain('stem.0.weight', [k0 * k0 * Cin, enc.dims[0]!]), wts.plain('stem.0.bias'));
  let x = g.mul(layerNormParams(wts, 'stem.1', enc.stem.norm, stem.y), vis[0]!);
  let hw = stem.hw;
  for (let i = 0; i < 4; i++) {
    const stage = enc.stages.at(i);
    if (stage.downsample) {
      const ds = stage.downsample;
      const n = g.mul(layerNormParams(wts, `stages.${i}.downsample.0`, ds.norm, x), vis[i - 1]!);
      const r = patchConv(g, n, [hw[0], hw[1], ds.inDim], 2, wts.plain(`stages.${i}.downsample.1.weight`, [4 * ds.inDim, ds.outDim]), wts.plain(`stages.${i}.downsample.1.bias`));
      x = g.mul(r.y, vis[i]!);
      hw = r.hw;
    }
    stage.blocks.items.forEach((b, j) => {
      const pre = `stages.${i}.blocks.${j}`;
      const v = vis[i]!;
      let y = g.mul(depthwise(g, wts, `${pre}.conv_dw`, x, b.dim, b.convDw.kernel), v);
      y = g.mul(layerNormParams(wts, `${pre}.norm`, b.norm, y), v);
      y = g.mul(linearParams(wts, `${pre}.mlp.fc1`, y), v);
      y = g.gelu(y);
      // grnMasked: statistics of the masked input, output masked again.
      y = g.mul(grnGraph(g, wts, `${pre}.mlp.grn`, g.mul(y, v), b.mlp.grn.eps, grnAxes), v);
      y = g.mul(linearParams(wts, `${pre}.mlp.fc2`, y), v);
      x = g.add(x, y);
    });
  }
  const outDims: Dim[] = [o.batch, gh, gw, enc.dims[3]!];
  g.output(x, o.outputName, outDims);
  return {
    kind: 'fcmae-encoder',
    inputs: [
      { name: o.inputName, dims: [o.batch, H, W, Cin] },
      { name: 'mask', dims: [o.batch, gh * gw] },
    ],
    output: { name: o.outputName, dims: outDims },
    opset: g.opset,
    weightBytes: g.weightBytes(),
  };
}

// ------------------------------------------------------------------------------------------------ entry points

function metadataOf(model: ExportableModel, info: ExportInfo): Record<string, string> {
  const md: Record<string, string> = { 'softbias.kind': info.kind, layout: 'NHWC' };
  if (model instanceof ConViT) {
    md['softbias.arch'] = model.name;
    md['softbias.config'] = JSON.stringify(model.config);
    md.mean = JSON.stringify(model.pretrainedConfig.mean);
    md.std = JSON.stringify(model.pretrainedConfig.std);
  } else if (model instanceof ConvNeXtV2) {
    md['softbias.arch'] = model.config.name;
    md['softbias.config'] = JSON.stringify(model.config);
    if (model.pretrained) {
      md.mean = JSON.stringify(model.pretrained.mean);
      md.std = JSON.stringify(model.pretrained.std);
    }
  } else {
    md['softbias.arch'] = 'fcmae_encoder';
    md['softbias.config'] = JSON.stringify(model.config);
    md.mask = 'input "mask" [batch, L] float32: 1 = removed patch, 0 = visible (row-major over the 32-pixel grid)';
  }
  return md;
}

/**
 * Build and serialise the graph, returning the chunked form (`model` bytes plus, with external data, the
 * data file's chunks) and what the graph takes and returns. `exportOnnx` and `writeOnnx` are built on it.
 */
export function exportOnnxParts(model: ExportableModel, opts: ExportOnnxOptions = {}): SerializedModel & { info: ExportInfo } {
  const g = new GraphBuilder(opts.opset ?? 17);
  const dynamicBatch = opts.dynamicBatch ?? true;
  const batchSize = opts.batchSize ?? 1;
  if (!dynamicBatch && (!Number.isInteger(batchSize) || batchSize < 1)) {
    throw new RangeError(`ONNX export: batchSize must be a positive integer, got ${batchSize}`);
  }
  const batch: Dim = dynamicBatch ? 'batch' : batchSize;
  const inputName = opts.inputName ?? 'input';
  let info: ExportInfo;
  if (model instanceof ConViT) {
    if (opts.imgSize !== undefined) {
      const [h, w] = sideOf(opts.imgSize);
      if (h !== model.config.imgSize[0] || w !== model.config.imgSize[1]) {
        throw new Error(
          `ONNX export: this ConViT is built for ${model.config.imgSize.join('×')} inputs; build it with createModel(name, { imgSize: [${h}, ${w}] }) for ${h}×${w}`,
        );
      }
    }
    info = exportConvit(g, model, { batch, inputName, outputName: opts.outputName ?? 'logits' });
  }
  else if (model instanceof ConvNeXtV2) {
    info = exportConvnext(g, model, { batch, inputName, outputName: opts.outputName ?? 'logits', ...(opts.imgSize !== undefined ? { imgSize: opts.imgSize } : {}) });
  } else if (model instanceof Fcmae) {
    const grnStats = opts.grnStats ?? ((model as unknown as { defaultGrnStats?: 'batch' | 'sample' }).defaultGrnStats ?? 'batch');
    info = exportFcmaeEncoder(g, model, {
      batch,
      inputName,
      outputName: opts.outputName ?? 'features',
      grnStats,
      ...(opts.imgSize !== undefined ? { imgSize: opts.imgSize } : {}),
    });
  } else {
    throw new TypeError('exportOnnx: expected a ConViT (@softbias/models-convit), a ConvNeXt V2 or an FCMAE model (@softbias/models-convnextv2)');
  }
  const location = typeof opts.externalData === 'string' ? opts.externalData : 'model.onnx.data';
  if (opts.externalData !== undefined && opts.externalData !== false && !/^[^/\\]+$/.test(location)) {
    throw new Error(`ONNX export: the external data location must be a file name beside the model, got '${location}'`);
  }
  const s = serializeModel(g, {
    graphName: info.kind,
    metadata: { ...metadataOf(model, info), ...(opts.metadata ?? {}) },
    ...(opts.externalData ? { external: { location } } : {}),
  });
  return { ...s, info };
}

/**
 * Export a model to ONNX: NHWC float32 input `input` [batch, H, W, C], output `logits` (the model's eval-mode
 * `forward`). Returns the model bytes, or with `externalData` the graph and its weights file.
 */
export function exportOnnx(model: ExportableModel, opts?: ExportOnnxOptions & { externalData?: false | undefined }): Uint8Array;
export function exportOnnx(model: ExportableModel, opts: ExportOnnxOptions & { externalData: true | string }): OnnxWithExternalData;
export function exportOnnx(model: ExportableModel, opts?: ExportOnnxOptions): Uint8Array | OnnxWithExternalData;
export function exportOnnx(model: ExportableModel, opts: ExportOnnxOptions = {}): Uint8Array | OnnxWithExternalData {
  // The weights are read synchronously; tfjs-backend-webgpu does that through OffscreenCanvas (pages and Workers
  // have it, Node does not): say so instead of failing deep inside tfjs.
  if (tf.getBackend() === 'webgpu' && typeof (globalThis as { OffscreenCanvas?: unknown }).OffscreenCanvas === 'undefined') {
    throw new Error(
      "exportOnnx: on the webgpu backend without OffscreenCanvas (Node) tfjs cannot read the weights synchronously: export on 'cpu' or 'wasm' (load the weights there)",
    );
  }
  const s = exportOnnxParts(model, opts);
  if (!s.external) return s.model;
  const data = new Uint8Array(s.external.size);
  let o = 0;
  for (const c of s.external.chunks) {
    data.set(c, o);
    o += c.byteLength;
  }
  return { model: s.model, data, location: s.external.location };
}
