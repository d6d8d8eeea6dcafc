/**
 * Plain-loop float64 definitions of every mixer, written from the papers' / timm's definitions (not from the
 * tfjs implementation), plus small test helpers (random parameters, finite differences).
 * Layouts: tokens [B, N, C] row-major; Linear weights PyTorch (out, in); depth-wise kernels [B, C, k, k].
 */
import * as tf from '@tensorflow/tfjs-core';
import { Rng, toTorch, type Module } from '@softbias/tensor-ops';

export type F64 = Float64Array;

/** erf in float64 (Taylor series for |x| < 3, continued fraction for erfc beyond): |error| < 1e-13. */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 3) {
    let term = ax;
    let sum = ax;
    const x2 = ax * ax;
    for (let n = 1; n < 200; n++) {
      term *= -x2 / n;
      const t = term / (2 * n + 1);
      sum += t;
      if (Math.abs(t) < 1e-17 * Math.abs(sum)) break;
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc(x) = exp(-x²)/√π · 1/(x + 1/2/(x + 1/(x + 3/2/(x + 2/(x + …))))) (Lentz-free backward evaluation).
  let f = ax;
  for (let n = 60; n >= 1; n--) f = ax + n / 2 / f;
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return Math.sign(x) * (1 - erfc);
}

export const gelu = (x: number): number => 0.5 * x * (1 + erf(x / Math.SQRT2));

/** y [rows, out] = x [rows, in] · Wᵀ + b, W PyTorch (out, in). */
export function linearRef(x: F64, rows: number, inF: number, W: F64, b: F64 | null, outF: number): F64 {
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

/**
 * Multi-head attention of M independent sequences of N tokens from qkv [M·N, 3C] ([q | k | v], head h in
 * channels h·hd:(h+1)·hd): out [M·N, C], attn [M, H, N, N].
 */
export function attentionRef(qkv: F64, M: number, N: number, C: number, H: number): { out: F64; attn: F64 } {
  const hd = C / H;
  const scale = 1 / Math.sqrt(hd);
  const out = new Float64Array(M * N * C);
  const attn = new Float64Array(M * H * N * N);
  const row = new Float64Array(N);
  for (let m = 0; m < M; m++) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < N; i++) {
        let mx = -Infinity;
        for (let j = 0; j < N; j++) {
          let s = 0;
          for (let d = 0; d < hd; d++) {
            s += qkv[(m * N + i) * 3 * C + h * hd + d]! * qkv[(m * N + j) * 3 * C + C + h * hd + d]!;
          }
          row[j] = s * scale;
          mx = Math.max(mx, row[j]!);
        }
        let z = 0;
        for (let j = 0; j < N; j++) z += (row[j] = Math.exp(row[j]! - mx));
        for (let j = 0; j < N; j++) attn[((m * H + h) * N + i) * N + j] = row[j]! / z;
        for (let d = 0; d < hd; d++) {
          let s = 0;
          for (let j = 0; j < N; j++) s += attn[((m * H + h) * N + i) * N + j]! * qkv[(m * N + j) * 3 * C + 2 * C + h * hd + d]!;
          out[(m * N + i) * C + h * hd + d] = s;
        }
      }
    }
  }
  return { out, attn };
}

export type Params = Map<string, F64>;
const P = (p: Params, k: string): F64 => {
  const v = p.get(k);
  if (!v) throw new Error(`reference: missing parameter ${k}`);
  return v;
};

/** timm ConViT MHSA over all N tokens: out [B, N, C], attn [B, H, N, N]. */
export function mhsaRef(x: F64, B: number, N: number, C: number, H: number, p: Params): { out: F64; attn: F64 } {
  const qkv = linearRef(x, B * N, C, P(p, 'qkv.weight'), p.get('qkv.bias') ?? null, 3 * C);
  const { out, attn } = attentionRef(qkv, B, N, C, H);
  return { out: linearRef(out, B * N, C, P(p, 'proj.weight'), P(p, 'proj.bias'), C), attn };
}

/** Window attention: windows gathered by explicit index arithmetic; prefix tokens copied. */
export function windowRef(
  x: F64,
  B: number,
  grid: readonly [number, number],
  prefix: number,
  C: number,
  H: number,
  s: number,
  p: Params,
): { out: F64; attn: F64 } {
  const [rows, cols] = grid;
  const N = prefix + rows * cols;
  const nW = (rows / s) * (cols / s);
  const M = B * nW;
  const seq = new Float64Array(M * s * s * C);
  const where: number[] = []; // token index in x for each gathered row
  for (let b = 0; b < B; b++) {
    for (let wr = 0; wr < rows / s; wr++) {
      for (let wc = 0; wc < cols / s; wc++) {
        for (let i = 0; i < s; i++) {
          for (let j = 0; j < s; j++) {
            const t = b * N + prefix + (wr * s + i) * cols + (wc * s + j);
            const rowIdx = where.length;
            where.push(t);
            for (let c = 0; c < C; c++) seq[rowIdx * C + c] = x[t * C + c]!;
          }
        }
      }
    }
  }
  const qkv = linearRef(seq, M * s * s, C, P(p, 'qkv.weight'), p.get('qkv.bias') ?? null, 3 * C);
  const a = attentionRef(qkv, M, s * s, C, H);
  const y = linearRef(a.out, M * s * s, C, P(p, 'proj.weight'), P(p, 'proj.bias'), C);
  const out = Float64Array.from(x); // prefix tokens unchanged
  where.forEach((t, r) => {
    for (let c = 0; c < C; c++) out[t * C + c] = y[r * C + c]!;
  });
  return { out, attn: a.attn };
}

/** Dynamic kernels [B, C, k, k] = fc2(relu(fc1(mean over the patch grid))). */
export function dynamicKernelsRef(
  x: F64,
  B: number,
  grid: readonly [number, number],
  prefix: number,
  C: number,
  k: number,
  p: Params,
): F64 {
  const Pn = grid[0] * grid[1];
  const N = prefix + Pn;
  const pooled = new Float64Array(B * C);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < Pn; t++) for (let c = 0; c < C; c++) pooled[b * C + c] += x[(b * N + prefix + t) * C + c]!;
    for (let c = 0; c < C; c++) pooled[b * C + c] /= Pn;
  }
  const W1 = P(p, 'conv.fc1.weight');
  const hidden = W1.length / C;
  const h = linearRef(pooled, B, C, W1, P(p, 'conv.fc1.bias'), hidden).map((v) => Math.max(0, v));
  return linearRef(h, B, hidden, P(p, 'conv.fc2.weight'), P(p, 'conv.fc2.bias'), C * k * k);
}

/** Depth-wise k×k convolution (zero 'same' padding) with per-sample kernels [B, C, k, k] + bias, then proj. */
export function dwconvRef(
  x: F64,
  B: number,
  grid: readonly [number, number],
  prefix: number,
  C: number,
  kernels: F64,
  k: number,
  p: Params,
): F64 {
  const [rows, cols] = grid;
  const N = prefix + rows * cols;
  const r = (k - 1) / 2;
  const bias = P(p, 'conv.bias');
  const conv = new Float64Array(B * rows * cols * C);
  for (let b = 0; b < B; b++) {
    for (let y = 0; y < rows; y++) {
      for (let xx = 0; xx < cols; xx++) {
        for (let c = 0; c < C; c++) {
          let s = bias[c]!;
          for (let i = 0; i < k; i++) {
            for (let j = 0; j < k; j++) {
              const yy = y + i - r;
              const xj = xx + j - r;
              if (yy < 0 || yy >= rows || xj < 0 || xj >= cols) continue;
              s += x[(b * N + prefix + yy * cols + xj) * C + c]! * kernels[((b * C + c) * k + i) * k + j]!;
            }
          }
          conv[((b * rows + y) * cols + xx) * C + c] = s;
        }
      }
    }
  }
  const y = p.has('proj.weight') ? linearRef(conv, B * rows * cols, C, P(p, 'proj.weight'), P(p, 'proj.bias'), C) : conv;
  const out = Float64Array.from(x);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < rows * cols; t++) {
      for (let c = 0; c < C; c++) out[(b * N + prefix + t) * C + c] = y[(b * rows * cols + t) * C + c]!;
    }
  }
  return out;
}

/** Static kernels (C, 1, k, k) broadcast to every sample. */
export function staticKernels(w: F64, B: number): F64 {
  const out = new Float64Array(B * w.length);
  for (let b = 0; b < B; b++) out.set(w, b * w.length);
  return out;
}

/** Feed-forward over patches: for each (b, c), the P patch values go through fc1 → GELU → fc2. */
export function ffPatchesRef(x: F64, B: number, Pn: number, prefix: number, C: number, p: Params): F64 {
  const N = prefix + Pn;
  const W1 = P(p, 'mlp.fc1.weight');
  const hidden = W1.length / Pn;
  const out = Float64Array.from(x);
  const v = new Float64Array(Pn);
  for (let b = 0; b < B; b++) {
    for (let c = 0; c < C; c++) {
      for (let t = 0; t < Pn; t++) v[t] = x[(b * N + prefix + t) * C + c]!;
      const h = linearRef(v, 1, Pn, W1, P(p, 'mlp.fc1.bias'), hidden).map(gelu);
      const y = linearRef(h, 1, hidden, P(p, 'mlp.fc2.weight'), P(p, 'mlp.fc2.bias'), Pn);
      for (let t = 0; t < Pn; t++) out[(b * N + prefix + t) * C + c] = y[t]!;
    }
  }
  return out;
}

/** Nonlocality per head from attn [B, H, N, N]: batch-mean, patch tokens only, (1/P) Σ dist · attn. */
export function nonlocalityRef(attn: ArrayLike<number>, B: number, H: number, grid: readonly [number, number], prefix: number): F64 {
  const [rows, cols] = grid;
  const Pn = rows * cols;
  const N = prefix + Pn;
  const d = new Float64Array(H);
  for (let h = 0; h < H; h++) {
    let s = 0;
    for (let q = 0; q < Pn; q++) {
      for (let k = 0; k < Pn; k++) {
        const dist = Math.hypot((k % cols) - (q % cols), Math.floor(k / cols) - Math.floor(q / cols));
        let a = 0;
        for (let b = 0; b < B; b++) a += attn[((b * H + h) * N + prefix + q) * N + prefix + k]!;
        s += (dist * a) / B;
      }
    }
    d[h] = s / Pn;
  }
  return d;
}

// ---------------------------------------------------------------------------------------------------------------

export function randomF32(n: number, rng: Rng, std = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = std * rng.normal();
  return a;
}

/**
 * Give every parameter of `m` random values (PyTorch layout, N(0, std) for weights, N(0, biasStd) for biases)
 * through `loadStateDict`, and return them as float64 (exactly the float32 values the module holds).
 */
export function randomizeParams(m: Module, rng: Rng, std = 0.5, biasStd = 0.1): Params {
  const sd = new Map<string, { data: Float32Array; shape: number[] }>();
  const out: Params = new Map();
  for (const [name, p] of m.namedParameters()) {
    const shape = p.torchShape;
    const n = shape.reduce((a, b) => a * b, 1);
    const data = randomF32(n, rng, name.endsWith('bias') ? biasStd : std);
    sd.set(name, { data, shape });
    out.set(name, Float64Array.from(data));
  }
  m.loadStateDict(sd);
  return out;
}

/** Gradients of `loss()` w.r.t. `x` and every parameter of `m`, parameters in PyTorch layout. */
export async function tfGrads(
  m: Module,
  x: tf.Variable,
  loss: () => tf.Scalar,
): Promise<{ x: Float32Array; params: Map<string, Float32Array> }> {
  const named = m.namedParameters();
  const vars = [x, ...named.map(([, p]) => p.variable)];
  const { value, grads } = tf.variableGrads(loss, vars);
  value.dispose();
  const params = new Map<string, Float32Array>();
  for (const [name, p] of named) {
    const g = grads[p.variable.name]!;
    const t = toTorch(p.layout, g);
    params.set(name, (await t.data()) as Float32Array);
    t.dispose();
  }
  const gx = (await grads[x.name]!.data()) as Float32Array;
  for (const k of Object.keys(grads)) grads[k]!.dispose();
  return { x: gx, params };
}

/** Central finite differences of a float64 function w.r.t. `arr[i]` for the given indices (arr restored). */
export function finiteDiff(f: () => number, arr: F64, indices: number[], eps = 1e-6): F64 {
  const g = new Float64Array(indices.length);
  indices.forEach((i, n) => {
    const v = arr[i]!;
    arr[i] = v + eps;
    const fp = f();
    arr[i] = v - eps;
    const fm = f();
    arr[i] = v;
    g[n] = (fp - fm) / (2 * eps);
  });
  return g;
}

/** All indices when `n ≤ max`, else `max` distinct indices drawn with `rng`. */
export function sampleIndices(n: number, max: number, rng: Rng): number[] {
  const all = Array.from({ length: n }, (_, i) => i);
  if (n <= max) return all;
  rng.shuffle(all);
  return all.slice(0, max).sort((a, b) => a - b);
}

export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}
