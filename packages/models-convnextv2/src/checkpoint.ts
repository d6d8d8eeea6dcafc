/**
 * Checkpoint key naming: the official ConvNeXt-V2 repo's names → timm's (the inverse of what timm's
 * `checkpoint_filter_fn` undoes), the shape variants both use, and the architecture a state dict implies.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { StateDictEntry } from '@softbias/tensor-ops';
import { MODELS, type ConvNeXtV2Config } from './config.js';

export type KeyNaming = 'timm' | 'official';

/** Which naming a set of keys uses ('timm' when nothing official is recognised). */
export function detectKeyNaming(keys: Iterable<string>): KeyNaming {
  for (const k of keys) {
    if (k.startsWith('downsample_layers.') || /^stages\.\d+\.\d+\./.test(k)) return 'official';
  }
  return 'timm';
}

/** One official key → its timm key (keys that are already timm-style are returned unchanged). */
export function officialToTimmKey(key: string): string {
  let m: RegExpMatchArray | null;
  m = key.match(/^downsample_layers\.0\.([01])\.(.+)$/);
  if (m) return `stem.${m[1]}.${m[2]}`;
  m = key.match(/^downsample_layers\.(\d+)\.([01])\.(.+)$/);
  if (m) return `stages.${m[1]}.downsample.${m[2]}.${m[3]}`;
  m = key.match(/^stages\.(\d+)\.(\d+)\.(.+)$/);
  if (m) {
    const [, i, j, rest] = m as unknown as [string, string, string, string];
    const renamed = rest
      .replace(/^dwconv\./, 'conv_dw.')
      .replace(/^pwconv1\./, 'mlp.fc1.')
      .replace(/^pwconv2\./, 'mlp.fc2.')
      .replace(/^grn\.gamma$/, 'mlp.grn.weight')
      .replace(/^grn\.beta$/, 'mlp.grn.bias');
    return `stages.${i}.blocks.${j}.${renamed}`;
  }
  m = key.match(/^norm\.(weight|bias)$/);
  if (m) return `head.norm.${m[1]}`;
  m = key.match(/^head\.(weight|bias)$/);
  if (m) return `head.fc.${m[1]}`;
  return key;
}

/** Keys whose stored shape varies between timm and the official code by unit dimensions only. */
const SHAPE_VARIANT_KEY = /\.mlp\.(fc1\.weight|fc2\.weight|grn\.weight|grn\.bias)$/;

function squeeze(shape: readonly number[]): number[] {
  return shape.filter((d) => d !== 1);
}

function shapeOf(e: StateDictEntry): number[] {
  return e instanceof tf.Tensor ? e.shape : e.shape;
}

/**
 * Normalise a state dict to timm names and to the shapes `expected` asks for: official keys are renamed,
 * and MLP weights `(out, in)` ⇄ `(out, in, 1, 1)` and GRN parameters `(C)` ⇄ `(1, 1, 1, C)` are reshaped
 * (row-major data is unchanged by such a reshape). Returns the new dict and the tensors it created (the
 * caller disposes them after loading).
 */
export function toTimmStateDict(
  sd: Map<string, StateDictEntry>,
  expected: Map<string, number[]>,
): { sd: Map<string, StateDictEntry>; naming: KeyNaming; created: tf.Tensor[] } {
  const naming = detectKeyNaming(sd.keys());
  const out = new Map<string, StateDictEntry>();
  const created: tf.Tensor[] = [];
  for (const [k, e] of sd) {
    const key = naming === 'official' ? officialToTimmKey(k) : k;
    const want = expected.get(key);
    const got = shapeOf(e);
    if (want && SHAPE_VARIANT_KEY.test(key) && !tf.util.arraysEqual(want, got) && tf.util.arraysEqual(squeeze(want), squeeze(got))) {
      if (e instanceof tf.Tensor) {
        const t = tf.reshape(e, want);
        created.push(t);
        out.set(key, t);
      } else {
        out.set(key, { data: e.data, shape: [...want] });
      }
    } else {
      out.set(key, e);
    }
  }
  return { sd: out, naming, created };
}

/**
 * The architecture a timm-named state dict implies: depths (blocks per stage), dims, input channels,
 * classes and MLP storage; the registered name when depths and dims match one.
 */
export function inferConfig(sd: Map<string, StateDictEntry>): Omit<ConvNeXtV2Config, 'dropPathRate' | 'headInitScale'> {
  const shape = (k: string) => {
    const e = sd.get(k);
    if (!e) throw new Error(`cannot infer the ConvNeXt V2 architecture: the checkpoint has no '${k}'`);
    return shapeOf(e);
  };
  const depths = [0, 0, 0, 0] as [number, number, number, number];
  for (const k of sd.keys()) {
    const m = k.match(/^stages\.(\d)\.blocks\.(\d+)\.conv_dw\.weight$/);
    if (m) depths[Number(m[1])] = Math.max(depths[Number(m[1])]!, Number(m[2]) + 1);
  }
  if (depths.some((d) => d === 0)) throw new Error(`cannot infer the ConvNeXt V2 architecture: blocks per stage [${depths}]`);
  const dims = depths.map((_, i) => shape(`stages.${i}.blocks.0.conv_dw.weight`)[0]!) as [number, number, number, number];
  const inChans = shape('stem.0.weight')[1]!;
  const numClasses = sd.has('head.fc.weight') ? shape('head.fc.weight')[0]! : 0;
  const convMlp = shape('stages.0.blocks.0.mlp.fc1.weight').length === 4;
  const known = MODELS.find((m) => m.depths.every((d, i) => d === depths[i]) && m.dims.every((d, i) => d === dims[i]));
  return { name: known?.name ?? 'convnextv2_custom', depths, dims, inChans, numClasses, convMlp };
}
