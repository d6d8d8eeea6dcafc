/**
 * FCMAE checkpoint names: timm-style (`encoder.stem.0.weight`, `decoder.0.mlp.fc1.weight`, …, what the fixtures
 * and `Fcmae.saveWeights` use), the official dense FCMAE names (`encoder.downsample_layers.…`,
 * `decoder.0.dwconv.…`, GRN `gamma/beta (1, 1, 1, C)`), and the official *sparse* checkpoint layout
 * (MinkowskiEngine: `…dwconv.kernel (k², C)`, `downsample_layers.i.1.kernel (4, in, out)`, `.ln.` / `.linear.`
 * infixes, `(1, C)` biases and GRN parameters) — all normalised to the timm-style names and PyTorch shapes.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { StateDictEntry } from '@softbias/tensor-ops';
import { officialToTimmKey } from '../checkpoint.js';

export type FcmaeKeyNaming = 'timm' | 'official' | 'official-sparse';

/** Which naming a set of FCMAE keys uses. */
export function detectFcmaeKeyNaming(keys: Iterable<string>): FcmaeKeyNaming {
  let official = false;
  for (const k of keys) {
    if (/^encoder\..*\.kernel$/.test(k) || /^encoder\..*\.(ln|linear)\./.test(k)) return 'official-sparse';
    if (/^encoder\.downsample_layers\./.test(k) || /^encoder\.stages\.\d+\.\d+\./.test(k) || /^decoder\.\d+\.(dwconv|pwconv[12]|grn)\./.test(k)) {
      official = true;
    }
  }
  return official ? 'official' : 'timm';
}

/** One official (dense or sparse) FCMAE key → its timm-style key. */
export function officialToTimmFcmaeKey(key: string): string {
  if (key.startsWith('encoder.')) {
    const rest = key
      .slice('encoder.'.length)
      .replace(/\.ln\./, '.')
      .replace(/\.linear\./, '.')
      .replace(/\.kernel$/, '.weight');
    return `encoder.${officialToTimmKey(rest)}`;
  }
  const m = key.match(/^decoder\.(\d+)\.(.+)$/);
  if (m) {
    const rest = m[2]!
      .replace(/^dwconv\./, 'conv_dw.')
      .replace(/^pwconv1\./, 'mlp.fc1.')
      .replace(/^pwconv2\./, 'mlp.fc2.')
      .replace(/^grn\.gamma$/, 'mlp.grn.weight')
      .replace(/^grn\.beta$/, 'mlp.grn.bias');
    return `decoder.${m[1]}.${rest}`;
  }
  return key;
}

function shapeOf(e: StateDictEntry): number[] {
  return e instanceof tf.Tensor ? e.shape : e.shape;
}

function squeeze(shape: readonly number[]): number[] {
  return shape.filter((d) => d !== 1);
}

/** A sparse depth-wise kernel `(k², C)` with `kernel[x·k + y, c] = weight[c, 0, y, x]` → `(C, 1, k, k)`. */
function depthwiseFromKernel(e: StateDictEntry, key: string): tf.Tensor {
  const [kk, C] = shapeOf(e) as [number, number];
  const k = Math.round(Math.sqrt(kk));
  if (k * k !== kk) throw new Error(`FCMAE checkpoint: '${key}' (${kk}, ${C}) is not a square depth-wise kernel`);
  return tf.tidy(() => {
    const t = e instanceof tf.Tensor ? e : tf.tensor(e.data, e.shape, 'float32');
    // [x, y, c] → [c, y, x]
    return tf.reshape(tf.transpose(tf.reshape(t, [k, k, C]), [2, 1, 0]), [C, 1, k, k]);
  });
}

/** A sparse conv kernel `(k², in, out)` with `kernel[x·k + y, i, o] = weight[o, i, y, x]` → `(out, in, k, k)`. */
function convFromKernel(e: StateDictEntry, key: string): tf.Tensor {
  const [kk, I, O] = shapeOf(e) as [number, number, number];
  const k = Math.round(Math.sqrt(kk));
  if (k * k !== kk) throw new Error(`FCMAE checkpoint: '${key}' (${kk}, ${I}, ${O}) is not a square conv kernel`);
  return tf.tidy(() => {
    const t = e instanceof tf.Tensor ? e : tf.tensor(e.data, e.shape, 'float32');
    // [x, y, i, o] → [o, i, y, x]
    return tf.transpose(tf.reshape(t, [k, k, I, O]), [3, 2, 1, 0]);
  });
}

/**
 * Normalise an FCMAE state dict to timm-style names and the PyTorch shapes `expected` lists: official names
 * are renamed, sparse kernels are re-laid out, and unit-dimension variants (`(1, C)` biases, `(1, 1, 1, C)` /
 * `(1, C)` GRN parameters, `(out, in, 1, 1)` MLP weights) are reshaped. Returns the new dict and the tensors it
 * created (dispose them after loading).
 */
export function toTimmFcmaeStateDict(
  sd: Map<string, StateDictEntry>,
  expected: Map<string, number[]>,
): { sd: Map<string, StateDictEntry>; naming: FcmaeKeyNaming; created: tf.Tensor[] } {
  const naming = detectFcmaeKeyNaming(sd.keys());
  const out = new Map<string, StateDictEntry>();
  const created: tf.Tensor[] = [];
  for (const [k, e0] of sd) {
    const key = naming === 'timm' ? k : officialToTimmFcmaeKey(k);
    let e = e0;
    if (naming === 'official-sparse' && k.endsWith('.kernel')) {
      const t = shapeOf(e0).length === 2 ? depthwiseFromKernel(e0, k) : convFromKernel(e0, k);
      created.push(t);
      e = t;
    }
    const want = expected.get(key);
    const got = shapeOf(e);
    if (want && !tf.util.arraysEqual(want, got) && tf.util.arraysEqual(squeeze(want), squeeze(got))) {
      if (e instanceof tf.Tensor) {
        const t = tf.reshape(e, want);
        created.push(t);
        e = t;
      } else {
        e = { data: e.data, shape: [...want] };
      }
    }
    out.set(key, e);
  }
  return { sd: out, naming, created };
}
