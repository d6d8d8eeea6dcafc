/** Test helpers for @softbias/models-convit: fixture models, temp files, float64 resampling definition. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serializeSafetensors } from '@softbias/tensor-ops';
import type { Fixture } from '@softbias/test-utils';
import type { ConvitOverrides } from '@softbias/models-convit';

let dir: string | undefined;
export function tempPath(name: string): string {
  dir ??= mkdtempSync(join(tmpdir(), 'softbias-convit-'));
  return join(dir, name);
}

/** The fixture's (dequantised) weights written as a plain F32 safetensors file; returns its path. */
export function writeFixtureWeights(f: Fixture, metadata?: Record<string, string>): string {
  const path = tempPath(`${f.name}.f32.safetensors`);
  const bytes = serializeSafetensors([...f.weights.entries()], metadata ? { metadata } : {});
  writeFileSync(path, bytes);
  return path;
}

/** createModel overrides equivalent to a fixture config (embed_dim there is the total width). */
export function overridesFor(f: Fixture): ConvitOverrides {
  const c = f.config;
  return {
    imgSize: c.img_size,
    patchSize: c.patch_size,
    inChans: c.in_chans,
    embedDim: c.embed_dim,
    depth: c.depth,
    numHeads: c.num_heads,
    localUpToLayer: c.local_up_to_layer,
    localityStrength: c.locality_strength,
    numClasses: c.num_classes,
    usePosEmbed: c.use_pos_embed,
    ...(c.mlp_ratio !== undefined ? { mlpRatio: c.mlp_ratio } : {}),
    ...(c.qkv_bias !== undefined ? { qkvBias: c.qkv_bias } : {}),
  };
}

/**
 * Antialiased bicubic resampling (PyTorch `interpolate(mode='bicubic', antialias=True)` / PIL BICUBIC) of an
 * [H, W, C] array, written as a direct 2-D sum in float64: out[i, j] = Σ_{y,x} wy(i, y)·wx(j, x)·in[y, x],
 * each 1-D weight the a = −0.5 cubic at (src − centre)/max(scale, 1) over the clipped window, normalised.
 */
export function resample2d(
  data: ArrayLike<number>,
  [H, W, C]: readonly [number, number, number],
  [oh, ow]: readonly [number, number],
): Float64Array {
  const cubic = (x: number) => {
    const a = -0.5;
    const t = Math.abs(x);
    if (t < 1) return (a + 2) * t ** 3 - (a + 3) * t ** 2 + 1;
    if (t < 2) return a * t ** 3 - 5 * a * t ** 2 + 8 * a * t - 4 * a;
    return 0;
  };
  const weights = (inSize: number, outSize: number, i: number): Float64Array => {
    const scale = inSize / outSize;
    const support = scale >= 1 ? 2 * scale : 2;
    const centre = scale * (i + 0.5);
    const lo = Math.max(Math.trunc(centre - support + 0.5), 0);
    const hi = Math.min(Math.trunc(centre + support + 0.5), inSize);
    const w = new Float64Array(inSize);
    let total = 0;
    for (let s = lo; s < hi; s++) {
      w[s] = cubic((s - centre + 0.5) / Math.max(scale, 1));
      total += w[s]!;
    }
    for (let s = 0; s < inSize; s++) w[s] = w[s]! / total;
    return w;
  };
  const out = new Float64Array(oh * ow * C);
  for (let i = 0; i < oh; i++) {
    const wy = weights(H, oh, i);
    for (let j = 0; j < ow; j++) {
      const wx = weights(W, ow, j);
      for (let c = 0; c < C; c++) {
        let s = 0;
        for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) s += wy[y]! * wx[x]! * data[(y * W + x) * C + c]!;
        out[(i * ow + j) * C + c] = s;
      }
    }
  }
  return out;
}
