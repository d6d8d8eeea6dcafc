/**
 * ConViT's checkpoint filter (timm's `checkpoint_filter_fn`): refusing timm's VisionTransformer/DeiT state
 * dicts, resampling `pos_embed` to another patch grid, and reading the architecture back from a file.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { StateDictEntry } from '@softbias/tensor-ops';
import { type WeightsFile, resampleBicubic } from '@softbias/tensor-ops/models';
import { type ConvitConfig, type ConvitOverrides, resolveConfig } from './config.js';

/** Tensor names and (PyTorch) shapes, all the refusal and the architecture inference read. */
export type RawStateDict = ReadonlyMap<string, { readonly shape: readonly number[] }>;

function isSquare(n: number): boolean {
  const r = Math.round(Math.sqrt(n));
  return r * r === n;
}

/**
 * Throws when `sd` is a timm VisionTransformer / DeiT state dict (`deit_*`), whose module tree differs from
 * ConViT's even for ConViT's DeiT twins. `modelPatches`: the patch count of the model it is loaded into, when
 * known; `fromSoftbias`: the file carries a softbias ConViT config (then it is ours whatever its shapes).
 */
export function refuseTimmDeit(sd: RawStateDict, modelPatches?: number, fromSoftbias = false): void {
  if (fromSoftbias) return;
  const keys = [...sd.keys()];
  const hasGating = keys.some((k) => k.endsWith('.attn.gating_param'));
  let reason: string | null = null;
  if (sd.has('dist_token') || keys.some((k) => k.startsWith('head_dist.'))) {
    reason = 'it has a distillation token (`dist_token` / `head_dist.*`), as timm deit_*_distilled models do';
  } else if (!hasGating && sd.has('blocks.0.attn.qkv.weight') && sd.has('cls_token')) {
    const pe = sd.get('pos_embed');
    const rows = pe?.shape[1];
    if (rows !== undefined) {
      // rows = the model's patch count: ConViT's own layout. rows = patches + 1: the class token's position is
      // embedded (ViT/DeiT). Otherwise (another grid): 1 + a square that is not itself a square.
      const plusOne =
        rows !== modelPatches &&
        ((modelPatches !== undefined && rows === modelPatches + 1) || (isSquare(rows - 1) && !isSquare(rows)));
      if (plusOne) {
        reason =
          `its pos_embed has ${rows} rows = 1 + ${rows - 1} patches (the class token's position is embedded, the ` +
          'class token enters at block 0) and no block has a GPSA gating_param';
      }
    }
  }
  if (reason) {
    throw new Error(
      `This is a timm VisionTransformer/DeiT checkpoint (deit_*), not a ConViT one: ${reason}. timm's deit_* ` +
        "models are a different module tree from ConViT's (ConViT's pos_embed covers the patches only and the " +
        'class token is concatenated before block localUpToLayer), so their weights do not load into ' +
        'convit_* models, including the DeiT twins convit_*_deit. Use a ViT implementation for deit_* weights.',
    );
  }
}

/** The patch grid a checkpoint's `pos_embed` was trained on. */
export function checkpointGrid(file: WeightsFile | null, rows: number): [number, number] {
  const cfg = file ? safeConfig(file) : undefined;
  if (cfg && Array.isArray(cfg.imgSize) && typeof cfg.patchSize === 'number') {
    const g: [number, number] = [cfg.imgSize[0] / cfg.patchSize, cfg.imgSize[1] / cfg.patchSize];
    if (g[0] * g[1] === rows) return g;
  }
  if (isSquare(rows)) {
    const s = Math.round(Math.sqrt(rows));
    return [s, s];
  }
  throw new Error(
    `pos_embed has ${rows} rows, not a square grid, and the file stores no config saying its grid; ` +
      'cannot resample it to this model',
  );
}

/** Resample a [1, gh·gw, C] position embedding to [1, rows·cols, C] (antialiased bicubic, as timm). */
export function resamplePosEmbed(
  data: Float32Array,
  from: readonly [number, number],
  to: readonly [number, number],
  channels: number,
): Float32Array {
  return resampleBicubic(data, [from[0], from[1], channels], to);
}

function safeConfig(file: WeightsFile): (Partial<ConvitConfig> & Record<string, unknown>) | undefined {
  return file.config as (Partial<ConvitConfig> & Record<string, unknown>) | undefined;
}

/** True when the file was written by `saveWeights` (it stores a ConViT config). */
export function hasSoftbiasConfig(file: WeightsFile): boolean {
  const c = safeConfig(file);
  return !!c && typeof c.embedDim === 'number' && typeof c.depth === 'number' && Array.isArray(c.mixers);
}

/** The architecture of a file: its stored config, else what timm key names and shapes imply. */
export function configFromCheckpoint(file: WeightsFile, sd: RawStateDict, overrides: ConvitOverrides = {}): ConvitConfig {
  if (hasSoftbiasConfig(file)) {
    const stored = safeConfig(file)!;
    const known: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(stored)) known[k] = v;
    return resolveConfig(known as ConvitOverrides, overrides);
  }
  const pw = sd.get('patch_embed.proj.weight');
  if (!pw || pw.shape.length !== 4) {
    throw new Error('loadModel: the file has no patch_embed.proj.weight (C, inChans, p, p); is it a ConViT checkpoint?');
  }
  const [C, inChans, p] = pw.shape as [number, number, number, number];
  let depth = 0;
  while ([...sd.keys()].some((k) => k.startsWith(`blocks.${depth}.`))) depth++;
  let localUpToLayer = 0;
  while (localUpToLayer < depth && sd.has(`blocks.${localUpToLayer}.attn.gating_param`)) localUpToLayer++;
  const inferred: ConvitOverrides = { embedDim: C, inChans, patchSize: p, depth, localUpToLayer };
  const gating = sd.get('blocks.0.attn.gating_param');
  if (gating) inferred.numHeads = gating.shape[0]!;
  else if (overrides.numHeads === undefined) {
    throw new Error(
      'loadModel: the file has no GPSA block (gating_param) and no stored config, so the number of heads is ' +
        'unknown; pass it: loadModel(source, { numHeads })',
    );
  }
  const pe = sd.get('pos_embed');
  inferred.usePosEmbed = !!pe;
  if (pe) {
    const g = checkpointGrid(file, pe.shape[1]!);
    inferred.imgSize = [g[0] * p, g[1] * p];
  } else if (overrides.imgSize === undefined) {
    throw new Error('loadModel: the file has no pos_embed and no stored config; pass imgSize: loadModel(source, { imgSize })');
  }
  const fc1 = sd.get('blocks.0.mlp.fc1.weight');
  if (fc1) inferred.mlpRatio = fc1.shape[0]! / C;
  inferred.qkvBias = [...sd.keys()].some((k) => /^blocks\.\d+\.attn\.(qk|qkv|v)\.bias$/.test(k));
  const head = sd.get('head.weight');
  inferred.numClasses = head ? head.shape[0]! : 0;
  return resolveConfig(inferred, overrides);
}

/** Name → shape of a weights file's tensors (no data decoded). */
export function shapesOf(w: WeightsFile): RawStateDict {
  return new Map([...w.shapes()].map(([k, shape]) => [k, { shape }]));
}

/** The model a checkpoint is filtered for. */
export interface CheckpointTarget {
  readonly numPatches: number;
  readonly gridSize: readonly [number, number];
  readonly embedDim: number;
  readonly pos_embed: unknown;
}

/**
 * timm's `checkpoint_filter_fn` for ConViT: the file's tensors ready for `loadStateDict` — timm deit_*
 * checkpoints refused, a `pos_embed` for another patch grid resampled (antialiased bicubic, as timm) with a
 * notice saying so.
 */
export async function filterCheckpoint(
  w: WeightsFile,
  model: CheckpointTarget,
): Promise<{ sd: Map<string, StateDictEntry>; notices: string[] }> {
  refuseTimmDeit(shapesOf(w), model.numPatches, hasSoftbiasConfig(w));
  const sd = w.stateDict();
  const notices: string[] = [];
  const pe = sd.get('pos_embed');
  const C = model.embedDim;
  if (pe && model.pos_embed && pe.shape.length === 3 && pe.shape[2] === C && pe.shape[1] !== model.numPatches) {
    const from = checkpointGrid(w, pe.shape[1]!);
    const src = pe instanceof tf.Tensor ? ((await pe.data()) as Float32Array) : pe.data;
    const data = resamplePosEmbed(src, from, model.gridSize, C);
    sd.set('pos_embed', { data, shape: [1, model.numPatches, C] });
    notices.push(
      `pos_embed resampled (bicubic, antialiased) from the checkpoint's ${from[0]}×${from[1]} patch grid to ` +
        `this model's ${model.gridSize[0]}×${model.gridSize[1]}`,
    );
  }
  return { sd, notices };
}
