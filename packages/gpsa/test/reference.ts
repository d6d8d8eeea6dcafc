/**
 * A plain-loop float64 GPSA written from the ConViT paper / fixtures README §5.1 (not from the tfjs code),
 * with helpers to read a module's parameters, make random ones, and take central finite differences.
 * Layouts: tokens [B, N, C] row-major; Linear weights PyTorch (out, in).
 */
import * as tf from '@tensorflow/tfjs-core';
import { Rng, type Module } from '@softbias/tensor-ops';

export type F64 = Float64Array;

export interface GpsaParams {
  qk: F64; // [2C, C]
  v: F64; // [C, C]
  proj: F64; // [C, C]
  projBias: F64; // [C]
  posW: F64; // [H, 3]
  posB: F64; // [H]
  gating: F64; // [H]
  qkBias?: F64;
  vBias?: F64;
}

export interface GpsaRefOut {
  out: F64; // [B, N, C]
  content: F64; // [B, H, N, N]
  positional: F64; // [H, N, N]
  mixed: F64; // [B, H, N, N]
  gates: F64; // [H]
}

function softmaxRows(a: F64, rows: number, n: number): void {
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let j = 0; j < n; j++) m = Math.max(m, a[r * n + j]!);
    let s = 0;
    for (let j = 0; j < n; j++) {
      const e = Math.exp(a[r * n + j]! - m);
      a[r * n + j] = e;
      s += e;
    }
    for (let j = 0; j < n; j++) a[r * n + j] = a[r * n + j]! / s;
  }
}

/** y[r, o] = Σ_i x[r, i] · W[o, i] + b[o]. */
function linear(x: F64, rows: number, inF: number, W: F64, outF: number, b?: F64): F64 {
  const y = new Float64Array(rows * outF);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < outF; o++) {
      let s = b ? b[o]! : 0;
      for (let i = 0; i < inF; i++) s += x[r * inF + i]! * W[o * inF + i]!;
      y[r * outF + o] = s;
    }
  }
  return y;
}

/** GPSA on patch tokens x [B, N, C] over a rows × cols grid (N = rows·cols), H heads. */
export function gpsaReference(
  x: F64,
  [B, N, C]: readonly [number, number, number],
  [rows, cols]: readonly [number, number],
  H: number,
  p: GpsaParams,
): GpsaRefOut {
  if (rows * cols !== N) throw new Error('reference: grid does not match N');
  const hd = C / H;
  const scale = 1 / Math.sqrt(hd);
  const qk = linear(x, B * N, C, p.qk, 2 * C, p.qkBias);
  const v = linear(x, B * N, C, p.v, C, p.vBias);
  const positional = new Float64Array(H * N * N);
  for (let h = 0; h < H; h++) {
    for (let q = 0; q < N; q++) {
      const qy = Math.floor(q / cols);
      const qx = q % cols;
      for (let k = 0; k < N; k++) {
        const dx = (k % cols) - qx;
        const dy = Math.floor(k / cols) - qy;
        positional[(h * N + q) * N + k] =
          p.posW[h * 3]! * dx + p.posW[h * 3 + 1]! * dy + p.posW[h * 3 + 2]! * (dx * dx + dy * dy) + p.posB[h]!;
      }
    }
  }
  softmaxRows(positional, H * N, N);
  const gates = new Float64Array(H);
  for (let h = 0; h < H; h++) gates[h] = 1 / (1 + Math.exp(-p.gating[h]!));
  const content = new Float64Array(B * H * N * N);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let q = 0; q < N; q++) {
        for (let k = 0; k < N; k++) {
          let s = 0;
          for (let d = 0; d < hd; d++) {
            s += qk[(b * N + q) * 2 * C + h * hd + d]! * qk[(b * N + k) * 2 * C + C + h * hd + d]!;
          }
          content[((b * H + h) * N + q) * N + k] = s * scale;
        }
      }
    }
  }
  softmaxRows(content, B * H * N, N);
  const mixed = new Float64Array(B * H * N * N);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const g = gates[h]!;
      for (let q = 0; q < N; q++) {
        let s = 0;
        const row = ((b * H + h) * N + q) * N;
        for (let k = 0; k < N; k++) {
          const a = (1 - g) * content[row + k]! + g * positional[(h * N + q) * N + k]!;
          mixed[row + k] = a;
          s += a;
        }
        for (let k = 0; k < N; k++) mixed[row + k] = mixed[row + k]! / s;
      }
    }
  }
  const o = new Float64Array(B * N * C);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let q = 0; q < N; q++) {
        for (let d = 0; d < hd; d++) {
          let s = 0;
          for (let k = 0; k < N; k++) s += mixed[((b * H + h) * N + q) * N + k]! * v[(b * N + k) * C + h * hd + d]!;
          o[(b * N + q) * C + h * hd + d] = s;
        }
      }
    }
  }
  return { out: linear(o, B * N, C, p.proj, C, p.projBias), content, positional, mixed, gates };
}

/** A module's parameters in PyTorch layout, as float64, keyed by state_dict name. */
export async function torchParams(m: Module): Promise<Map<string, F64>> {
  const sd = m.stateDict();
  const out = new Map<string, F64>();
  for (const [k, t] of sd) {
    out.set(k, Float64Array.from((await t.data()) as Float32Array));
    t.dispose();
  }
  return out;
}

export function gpsaParams(sd: Map<string, F64>, prefix = ''): GpsaParams {
  const g = (k: string) => {
    const v = sd.get(prefix + k);
    if (!v) throw new Error(`missing ${prefix + k}`);
    return v;
  };
  const p: GpsaParams = {
    qk: g('qk.weight'),
    v: g('v.weight'),
    proj: g('proj.weight'),
    projBias: g('proj.bias'),
    posW: g('pos_proj.weight'),
    posB: g('pos_proj.bias'),
    gating: g('gating_param'),
  };
  if (sd.has(prefix + 'qk.bias')) p.qkBias = g('qk.bias');
  if (sd.has(prefix + 'v.bias')) p.vBias = g('v.bias');
  return p;
}

/** Random parameters (float32-representable) for a module, in PyTorch layout, as a state dict. */
export function randomStateDict(m: Module, rng: Rng, std = 0.5): Map<string, { data: Float32Array; shape: number[] }> {
  const out = new Map<string, { data: Float32Array; shape: number[] }>();
  for (const [k, p] of m.namedParameters()) {
    const shape = p.torchShape;
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = std * rng.normal();
    out.set(k, { data, shape });
  }
  return out;
}

export function randomF32(n: number, rng: Rng, std = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = std * rng.normal();
  return a;
}

export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/** Central differences of `loss` w.r.t. arr[i] for each i (arr is modified and restored). */
export function finiteDiff(loss: () => number, arr: F64, idx: readonly number[]): number[] {
  return idx.map((i) => {
    const v = arr[i]!;
    const h = 1e-6 * Math.max(1, Math.abs(v));
    arr[i] = v + h;
    const up = loss();
    arr[i] = v - h;
    const down = loss();
    arr[i] = v;
    return (up - down) / (2 * h);
  });
}

export function sampleIndices(n: number, max: number, rng: Rng): number[] {
  if (n <= max) return Array.from({ length: n }, (_, i) => i);
  const all = Array.from({ length: n }, (_, i) => i);
  rng.shuffle(all);
  return all.slice(0, max).sort((a, b) => a - b);
}

export async function toF64(t: tf.Tensor): Promise<F64> {
  return Float64Array.from((await t.data()) as Float32Array);
}
