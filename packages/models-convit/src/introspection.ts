/**
 * ConViT introspection: per-layer attention maps, a query's attention, nonlocality and GPSA gates. Built on
 * the trunk's one block loop (`ConViT.forwardBlocks` and its hooks) and on what each mixer owns
 * (`attentionMaps`, `gates`): no second loop over the blocks, no dispatch on mixer classes.
 */
import * as tf from '@tensorflow/tfjs-core';
import { nonlocality } from '@softbias/attention';
import type { ConViT } from './model.js';

/** Which input the introspection feeds each layer. */
export type IntrospectionInput = 'block' | 'patch-embedding';

export interface IntrospectionOptions {
  /**
   * `block` (default): each layer's real input, norm1(block input), class token included after
   * localUpToLayer. `patch-embedding`: the raw patch embeddings (no pos_embed, no norm, no class token) fed
   * to every layer's attention, as the official ConViT code and the paper's figures measure nonlocality.
   */
  input?: IntrospectionInput;
}

/** One layer's attention maps (new tensors the caller disposes). */
export interface LayerAttention {
  layer: number;
  kind: string;
  /** Prefix tokens at the front of both the query and key axes of these maps (1 = class token). */
  numPrefixTokens: number;
  /** The attention the layer uses [B, heads, T, T]. */
  mixed: tf.Tensor;
  /** GPSA only: content softmax [B, heads, N, N]. */
  content: tf.Tensor | null;
  /** GPSA only: positional softmax [heads, N, N]. */
  positional: tf.Tensor | null;
}

export interface AttentionMapOptions extends IntrospectionOptions {
  /** Query patch row/column; with both, returns that query's attention over the key patches. */
  row?: number;
  col?: number;
  /** `mixed` (default), or for GPSA layers `content` / `positional`. */
  which?: 'mixed' | 'content' | 'positional';
}

function checkLayer(model: ConViT, layer: number): void {
  const depth = model.config.depth;
  if (!Number.isInteger(layer) || layer < 0 || layer >= depth) {
    throw new RangeError(`${model.name}: layer must be an integer in [0, ${depth - 1}], got ${layer}`);
  }
}

/** sigmoid(gating_param) per head for each layer (null for mixers without gates). */
export async function gatesOf(model: ConViT): Promise<(Float32Array | null)[]> {
  const out: (Float32Array | null)[] = [];
  for (const blk of model.blocks) {
    const g = blk.attn.gates?.();
    if (g) {
      out.push((await g.data()) as Float32Array);
      g.dispose();
    } else out.push(null);
  }
  return out;
}

/** Layer i's maps for the tokens it sees, as its mixer reports them (inside a tidy), or null without maps. */
function layerMaps(model: ConViT, i: number, tokens: tf.Tensor, numPrefixTokens: number): LayerAttention | null {
  const mixer = model.blocks.at(i).attn;
  const m = mixer.attentionMaps?.({ tokens, grid: model.gridSize, numPrefixTokens });
  if (!m) return null;
  const extra = m as { gates?: tf.Tensor };
  extra.gates?.dispose();
  return {
    layer: i,
    kind: mixer.kind,
    numPrefixTokens: m.numPrefixTokens,
    mixed: m.mixed,
    content: m.content ?? null,
    positional: m.positional ?? null,
  };
}

const tidyMaps = (f: () => LayerAttention | null) =>
  tf.tidy(() => f() as unknown as tf.TensorContainer) as unknown as LayerAttention | null;

export function attentionMapsOf(
  model: ConViT,
  x: tf.Tensor,
  opts: IntrospectionOptions & { layers?: readonly number[] } = {},
): LayerAttention[] {
  const layers = [...(opts.layers ?? Array.from({ length: model.config.depth }, (_, i) => i))];
  for (const l of layers) checkLayer(model, l);
  const results = new Map<number, LayerAttention>();
  if ((opts.input ?? 'block') === 'patch-embedding') {
    model.checkInput(x);
    const e = tf.tidy(() => model.patch_embed.forward(x));
    for (const l of layers) {
      const r = tidyMaps(() => layerMaps(model, l, e, 0));
      if (r) results.set(l, r);
    }
    e.dispose();
  } else {
    const last = Math.max(...layers, -1);
    if (last >= 0) {
      const before = (i: number, input: tf.Tensor) => {
        if (!layers.includes(i)) return;
        const r = tidyMaps(() => layerMaps(model, i, model.blocks.at(i).norm1.forward(input), model.prefixAt(i)));
        if (r) results.set(i, r);
      };
      model.forwardBlocks(x, last, { before }, false).dispose();
    }
  }
  return layers.filter((l) => results.has(l)).map((l) => results.get(l)!);
}

export function attentionMapOf(model: ConViT, x: tf.Tensor, layer: number, opts: AttentionMapOptions = {}): tf.Tensor {
  checkLayer(model, layer);
  const kind = model.blocks.at(layer).attn.kind;
  const which = opts.which ?? 'mixed';
  const [rows, cols] = model.gridSize;
  const hasQuery = opts.row !== undefined || opts.col !== undefined;
  if (hasQuery) {
    const { row, col } = opts;
    if (!Number.isInteger(row) || !Number.isInteger(col) || row! < 0 || col! < 0 || row! >= rows || col! >= cols) {
      throw new RangeError(`${model.name}: row/col must address a patch of the ${rows}×${cols} grid, got (${row}, ${col})`);
    }
  }
  const maps = attentionMapsOf(model, x, { input: opts.input, layers: [layer] });
  const gpsaOnly = () => new Error(`${model.name}: layer ${layer} is '${kind}', which has no '${which}' attention (GPSA only)`);
  if (maps.length === 0) {
    throw which === 'mixed' ? new Error(`${model.name}: layer ${layer} ('${kind}') has no attention map`) : gpsaOnly();
  }
  const m = maps[0]!;
  try {
    const part = which === 'content' ? m.content : which === 'positional' ? m.positional : m.mixed;
    if (!part) throw gpsaOnly();
    return tf.tidy(() => {
      const chosen = which === 'positional' ? tf.expandDims(part, 0) : part;
      if (!hasQuery) return tf.clone(chosen);
      const P = which === 'mixed' ? m.numPrefixTokens : 0;
      const [B, heads] = chosen.shape as [number, number, number, number];
      const q = P + opts.row! * cols + opts.col!;
      return tf.reshape(tf.slice(chosen, [0, 0, q, P], [B, heads, 1, rows * cols]), [B, heads, rows, cols]);
    });
  } finally {
    tf.dispose([m.mixed, m.content, m.positional].filter((t): t is tf.Tensor => t !== null));
  }
}

export async function nonlocalityOf(model: ConViT, x: tf.Tensor, opts: IntrospectionOptions = {}): Promise<(Float32Array | null)[]> {
  const maps = attentionMapsOf(model, x, opts);
  const out: (Float32Array | null)[] = Array.from({ length: model.config.depth }, () => null);
  for (const m of maps) {
    const d = nonlocality(m.mixed, model.gridSize, m.numPrefixTokens);
    out[m.layer] = (await d.data()) as Float32Array;
    tf.dispose([d, m.mixed, m.content, m.positional].filter((t): t is tf.Tensor => t !== null));
  }
  return out;
}
