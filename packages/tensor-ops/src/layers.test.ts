/**
 * Shared layers on every backend, each against a float64 definition written here: Linear (2-D and [B, N, C]),
 * LayerNorm, exact GELU, Mlp, Dropout, DropPath, nonOverlappingConv2d / PatchEmbed (against a plain-loop conv,
 * odd sizes floored), and their gradients (analytic, or central finite differences of the float64 definition).
 * PatchEmbed also against the PyTorch fixture (convit_micro patch_embed_out, weights loaded by timm name).
 */
import * as tf from '@tensorflow/tfjs-core';
import { it, expect, afterEach } from 'vitest';
import { describeBackend, expectClose, defaultAtol, loadFixture, fixtureTensor } from '@softbias/test-utils';
import {
  Linear,
  linear,
  LayerNorm,
  layerNorm,
  gelu,
  Mlp,
  Dropout,
  DropPath,
  PatchEmbed,
  nonOverlappingConv2d,
  Module,
  Rng,
} from '@softbias/tensor-ops';

// ---------------------------------------------------------------- float64 definitions --------------------
type F64 = Float64Array;

function randn(rng: Rng, n: number, scale = 1, shift = 0): Float32Array {
  return Float32Array.from({ length: n }, () => shift + scale * rng.normal());
}

/** y[r, o] = Σ_i x[r, i]·W[o, i] + b[o]   (W in PyTorch layout [out, in]). */
function linearRef(x: ArrayLike<number>, rows: number, inF: number, W: ArrayLike<number>, b: ArrayLike<number> | null, outF: number): F64 {
  const y = new Float64Array(rows * outF);
  for (let r = 0; r < rows; r++)
    for (let o = 0; o < outF; o++) {
      let s = b ? b[o]! : 0;
      for (let i = 0; i < inF; i++) s += x[r * inF + i]! * W[o * inF + i]!;
      y[r * outF + o] = s;
    }
  return y;
}

function layerNormRef(x: ArrayLike<number>, rows: number, C: number, w: ArrayLike<number>, b: ArrayLike<number>, eps: number): F64 {
  const y = new Float64Array(rows * C);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let c = 0; c < C; c++) mean += x[r * C + c]!;
    mean /= C;
    let v = 0;
    for (let c = 0; c < C; c++) v += (x[r * C + c]! - mean) ** 2;
    v /= C;
    const inv = 1 / Math.sqrt(v + eps);
    for (let c = 0; c < C; c++) y[r * C + c] = (x[r * C + c]! - mean) * inv * w[c]! + b[c]!;
  }
  return y;
}

/** erf by composite Simpson integration of 2/√π·e^(−t²) (error < 1e-10 for |x| ≤ 8). */
function erf64(x: number): number {
  const n = 2000;
  const h = x / n;
  let s = 1 + Math.exp(-x * x);
  for (let i = 1; i < n; i++) s += (i % 2 ? 4 : 2) * Math.exp(-((i * h) ** 2));
  return ((s * h) / 3) * (2 / Math.sqrt(Math.PI));
}
const geluRef = (x: number) => 0.5 * x * (1 + erf64(x / Math.SQRT2));
/** d/dx GELU = Φ(x) + x·φ(x). */
const geluGradRef = (x: number) => 0.5 * (1 + erf64(x / Math.SQRT2)) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI);

/** Plain-loop conv, NHWC input, PyTorch OIHW weight, kernel = stride = k, no padding, sizes floored. */
function convRef(x: ArrayLike<number>, [B, H, W, C]: number[], w: ArrayLike<number>, bias: ArrayLike<number> | null, O: number, k: number): { y: F64; shape: number[] } {
  const Ho = Math.floor(H / k);
  const Wo = Math.floor(W / k);
  const y = new Float64Array(B * Ho * Wo * O);
  for (let b = 0; b < B; b++)
    for (let i = 0; i < Ho; i++)
      for (let j = 0; j < Wo; j++)
        for (let o = 0; o < O; o++) {
          let s = bias ? bias[o]! : 0;
          for (let c = 0; c < C; c++)
            for (let kh = 0; kh < k; kh++)
              for (let kw = 0; kw < k; kw++) {
                s += w[((o * C + c) * k + kh) * k + kw]! * x[((b * H + i * k + kh) * W + j * k + kw) * C + c]!;
              }
          y[((b * Ho + i) * Wo + j) * O + o] = s;
        }
  return { y, shape: [B, Ho, Wo, O] };
}

/** Central finite differences of L(p) = Σ f(p)·R in float64. */
function finiteDiff(f: (p: F64) => F64, p: ArrayLike<number>, R: ArrayLike<number>, h = 1e-5): F64 {
  const q = Float64Array.from(p);
  const g = new Float64Array(q.length);
  const loss = () => f(q).reduce((s, v, i) => s + v * R[i]!, 0);
  for (let i = 0; i < q.length; i++) {
    const x0 = q[i]!;
    q[i] = x0 + h;
    const up = loss();
    q[i] = x0 - h;
    const down = loss();
    q[i] = x0;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}

/** Gradients of Σ f()·R with respect to `vars`, as host arrays (the scalar loss value too). */
async function gradsOf(f: () => tf.Tensor, R: tf.Tensor, vars: tf.Variable[]): Promise<Float32Array[]> {
  const { grads, value } = tf.variableGrads(() => tf.sum(tf.mul(f(), R)) as tf.Scalar, vars);
  const out: Float32Array[] = [];
  for (const v of vars) out.push((await grads[v.name]!.data()) as Float32Array);
  value.dispose();
  tf.dispose(Object.values(grads));
  return out;
}

/** Transpose a row-major [a, b] array to [b, a]. */
function t2(x: ArrayLike<number>, a: number, b: number): F64 {
  const y = new Float64Array(a * b);
  for (let i = 0; i < a; i++) for (let j = 0; j < b; j++) y[j * a + i] = x[i * b + j]!;
  return y;
}

class Holder extends Module {
  constructor(name: string, child: Module) {
    super();
    this.registerModule(name, child);
  }
}

const live: { dispose(): void }[] = [];
function keep<T extends { dispose(): void }>(x: T): T {
  live.push(x);
  return x;
}
afterEach(() => {
  for (const x of live.splice(0)) x.dispose();
});

// ---------------------------------------------------------------------------------------------------------------
describeBackend('Linear', () => {
  const rng = new Rng(1);
  const inF = 7;
  const outF = 5;
  const W = randn(rng, outF * inF, 0.5); // PyTorch [out, in]
  const b = randn(rng, outF, 0.5);

  function make(bias = true): Linear {
    const l = keep(new Linear(inF, outF, { bias, rng: new Rng(9) }));
    l.loadStateDict(bias ? { weight: { data: W, shape: [outF, inF] }, bias: { data: b, shape: [outF] } } : { weight: { data: W, shape: [outF, inF] } });
    return l;
  }

  it('2-D input [rows, in] matches x·Wᵀ + b', async () => {
    const l = make();
    expect(l.weight.shape).toEqual([inF, outF]); // tfjs layout [in, out]
    const x = randn(rng, 6 * inF);
    const y = keep(l.forward(tf.tensor(x, [6, inF])));
    const ref = linearRef(x, 6, inF, W, b, outF);
    await expectClose(y, ref, defaultAtol(ref), 'Linear 2-D', [6, outF]);
  });

  it('[B, N, C] and rank-4 inputs are flattened for one matmul and reshaped back', async () => {
    const l = make();
    for (const shape of [[2, 3, inF], [2, 2, 3, inF], [inF]]) {
      const n = shape.reduce((a, c) => a * c, 1);
      const x = randn(rng, n);
      const xt = keep(tf.tensor(x, shape));
      const y = keep(l.forward(xt));
      const ref = linearRef(x, n / inF, inF, W, b, outF);
      await expectClose(y, ref, defaultAtol(ref), `Linear [${shape}]`, [...shape.slice(0, -1), outF]);
    }
  });

  it('without bias; functional linear() equals the module', async () => {
    const l = make(false);
    expect(l.bias).toBeNull();
    expect(l.namedParameters().map(([n]) => n)).toEqual(['weight']);
    const x = randn(rng, 4 * inF);
    const xt = keep(tf.tensor(x, [2, 2, inF]));
    const ref = linearRef(x, 4, inF, W, null, outF);
    await expectClose(keep(l.forward(xt)), ref, defaultAtol(ref), 'Linear no bias', [2, 2, outF]);
    await expectClose(keep(linear(xt, l.weight.value, null)), ref, defaultAtol(ref), 'linear()', [2, 2, outF]);
  });

  it('a wrong input size names the expected shape', () => {
    const l = make();
    const x = keep(tf.zeros([2, 3, inF + 1]));
    expect(() => l.forward(x)).toThrow(/expected an input of shape \[\.\.\., 7\], got \[2,3,8\]/);
    expect(() => linear(keep(tf.zeros([2, inF])), l.weight.value, keep(tf.zeros([3])))).toThrow(/bias of shape \[5\]/);
  });

  it('gradients: dx = R·W, dW = Rᵀ·x, db = Σ R (analytic)', async () => {
    const l = make();
    const rows = 6;
    const x = randn(rng, rows * inF);
    const R = randn(rng, rows * outF);
    const xv = keep(tf.variable(tf.tensor(x, [2, 3, inF])));
    const Rt = keep(tf.tensor(R, [2, 3, outF]));
    const [dx, dW, db] = await gradsOf(() => l.forward(xv), Rt, [xv, l.weight.variable, l.bias!.variable]);
    // dx[r, i] = Σ_o R[r, o]·W[o, i]
    const dxRef = linearRef(R, rows, outF, t2(W, outF, inF), null, inF);
    await expectClose(dx!, dxRef, defaultAtol(dxRef), 'Linear dx');
    // dW (tfjs layout [in, out]) [i, o] = Σ_r x[r, i]·R[r, o]
    const dWRef = linearRef(t2(x, rows, inF), inF, rows, t2(R, rows, outF), null, outF);
    await expectClose(dW!, dWRef, defaultAtol(dWRef), 'Linear dW');
    const dbRef = new Float64Array(outF);
    for (let r = 0; r < rows; r++) for (let o = 0; o < outF; o++) dbRef[o] += R[r * outF + o]!;
    await expectClose(db!, dbRef, defaultAtol(dbRef), 'Linear db');
  });
});

describeBackend('LayerNorm', () => {
  const rng = new Rng(2);
  const C = 16;
  const w = randn(rng, C, 0.3, 1);
  const b = randn(rng, C, 0.3);

  function make(eps?: number): LayerNorm {
    const ln = keep(eps === undefined ? new LayerNorm(C) : new LayerNorm(C, eps));
    ln.loadStateDict({ weight: { data: w, shape: [C] }, bias: { data: b, shape: [C] } });
    return ln;
  }

  it('normalises over the last axis with eps 1e-6 by default (biased variance, eps inside the sqrt)', async () => {
    const ln = make();
    expect(ln.eps).toBe(1e-6);
    // A large offset (mean 3) checks the centring; rows of [2, 5, C].
    const x = randn(rng, 10 * C, 2, 3);
    const ref = layerNormRef(x, 10, C, w, b, 1e-6);
    await expectClose(keep(ln.forward(keep(tf.tensor(x, [2, 5, C])))), ref, defaultAtol(ref), 'LayerNorm', [2, 5, C]);
  });

  it('honours a configurable eps (matters for small variance) and the functional form', async () => {
    const ln = make(1e-2);
    const x = randn(rng, 4 * C, 0.05, -1);
    const ref = layerNormRef(x, 4, C, w, b, 1e-2);
    const refDefault = layerNormRef(x, 4, C, w, b, 1e-6);
    // The eps must make a visible difference here for the check to mean something.
    expect(Math.max(...ref.map((v, i) => Math.abs(v - refDefault[i]!)))).toBeGreaterThan(0.1);
    const xt = keep(tf.tensor(x, [4, C]));
    await expectClose(keep(ln.forward(xt)), ref, defaultAtol(ref), 'LayerNorm eps 1e-2', [4, C]);
    const ones = Float32Array.from({ length: C }, () => 1);
    const plain = layerNormRef(x, 4, C, ones, new Float32Array(C), 1e-2);
    await expectClose(keep(layerNorm(xt, null, null, 1e-2)), plain, defaultAtol(plain), 'layerNorm() no affine', [4, C]);
  });

  it('a wrong last dimension names the expected shape', () => {
    const ln = make();
    expect(() => ln.forward(keep(tf.zeros([2, C + 1])))).toThrow(/expected last dimension 16, got input of shape \[2,17\]/);
  });

  it('gradients of x, weight and bias match finite differences of the float64 definition', async () => {
    const ln = make();
    const rows = 3;
    const x = randn(rng, rows * C, 1.5, 0.5);
    const R = randn(rng, rows * C);
    const xv = keep(tf.variable(tf.tensor(x, [rows, C])));
    const [dx, dw, db] = await gradsOf(() => ln.forward(xv), keep(tf.tensor(R, [rows, C])), [xv, ln.weight.variable, ln.bias.variable]);
    const fdX = finiteDiff((p) => layerNormRef(p, rows, C, w, b, 1e-6), x, R);
    const fdW = finiteDiff((p) => layerNormRef(x, rows, C, p, b, 1e-6), w, R);
    const fdB = finiteDiff((p) => layerNormRef(x, rows, C, w, p, 1e-6), b, R);
    await expectClose(dx!, fdX, defaultAtol(fdX), 'LayerNorm dx');
    await expectClose(dw!, fdW, defaultAtol(fdW), 'LayerNorm dweight');
    await expectClose(db!, fdB, defaultAtol(fdB), 'LayerNorm dbias');
  });
});

describeBackend('gelu (exact, erf)', () => {
  const xs = Float32Array.from({ length: 121 }, (_, i) => -6 + i * 0.1);

  // tfjs' erf is a polynomial approximation (|error| ≤ 1.5e-7, Abramowitz–Stegun 7.1.26); with float32 rounding
  // GELU stays within ~1e-6 of the exact value on [−6, 6]. The tanh form differs by up to 4.7e-4 there.
  const GELU_ATOL = 2e-6;
  const tanhGelu = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));

  it('equals 0.5·x·(1 + erf(x/√2)) to 2e-6, a bound the tanh approximation fails', async () => {
    const ref = Float64Array.from(xs, geluRef);
    const y = keep(gelu(keep(tf.tensor(xs, [11, 11]))));
    await expectClose(y, ref, GELU_ATOL, 'gelu', [11, 11]);
    // The same comparison rejects GELU(approximate='tanh'), by more than 100×.
    let tanhDiff = 0;
    for (let i = 0; i < xs.length; i++) tanhDiff = Math.max(tanhDiff, Math.abs(Math.fround(tanhGelu(xs[i]!)) - ref[i]!));
    expect(tanhDiff).toBeGreaterThan(100 * GELU_ATOL);
    const yTanh = keep(tf.tidy(() => {
      const x = tf.tensor(xs, [11, 11]);
      return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), Math.sqrt(2 / Math.PI))), 1));
    }));
    const d = await yTanh.data();
    let tfTanhDiff = 0;
    for (let i = 0; i < d.length; i++) tfTanhDiff = Math.max(tfTanhDiff, Math.abs(d[i]! - ref[i]!));
    expect(tfTanhDiff, 'tanh-form GELU on this backend vs the exact one').toBeGreaterThan(GELU_ATOL);
    // Sanity of the reference itself: erf(1) to 1e-9.
    expect(Math.abs(erf64(1) - 0.8427007929497149)).toBeLessThan(1e-9);
  });

  it('gradient is Φ(x) + x·φ(x)', async () => {
    const xv = keep(tf.variable(tf.tensor(xs)));
    const R = keep(tf.ones([xs.length]));
    const [dx] = await gradsOf(() => gelu(xv), R, [xv]);
    const ref = Float64Array.from(xs, geluGradRef);
    await expectClose(dx!, ref, 1e-6, 'gelu grad');
    // The tanh form's gradient differs by ~1e-3 from Φ(x) + x·φ(x): far outside 1e-6.
    const h = 1e-6;
    let tanhGrad = 0;
    for (const x of xs) tanhGrad = Math.max(tanhGrad, Math.abs((tanhGelu(x + h) - tanhGelu(x - h)) / (2 * h) - geluGradRef(x)));
    expect(tanhGrad).toBeGreaterThan(1e-4);
  });
});

describeBackend('Mlp', () => {
  const rng = new Rng(3);
  const C = 6;
  const Hd = 10;
  const O = 4;

  function setup() {
    const m = keep(new Mlp(C, { hiddenFeatures: Hd, outFeatures: O, rng: new Rng(5) }));
    const sd = {
      'fc1.weight': { data: randn(rng, Hd * C, 0.5), shape: [Hd, C] },
      'fc1.bias': { data: randn(rng, Hd, 0.2), shape: [Hd] },
      'fc2.weight': { data: randn(rng, O * Hd, 0.5), shape: [O, Hd] },
      'fc2.bias': { data: randn(rng, O, 0.2), shape: [O] },
    };
    m.loadStateDict(sd);
    const ref = (x: ArrayLike<number>, rows: number, w1 = sd['fc1.weight'].data as ArrayLike<number>) =>
      linearRef(linearRef(x, rows, C, w1, sd['fc1.bias'].data, Hd).map(geluRef), rows, Hd, sd['fc2.weight'].data, sd['fc2.bias'].data, O);
    return { m, sd, ref };
  }

  it('names fc1/fc2 (timm), and computes fc2(gelu(fc1(x)))', async () => {
    const { m, ref } = setup();
    expect(m.namedParameters().map(([n]) => n)).toEqual(['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias']);
    const x = randn(rng, 2 * 3 * C);
    const want = ref(x, 6);
    await expectClose(keep(m.forward(keep(tf.tensor(x, [2, 3, C])))), want, defaultAtol(want), 'Mlp', [2, 3, O]);
    const dflt = keep(new Mlp(8));
    expect(dflt.fc1.outFeatures).toBe(32);
    expect(dflt.fc2.outFeatures).toBe(8);
  });

  it('gradients of x and fc1.weight match finite differences of the float64 definition', async () => {
    const { m, sd, ref } = setup();
    const rows = 4;
    const x = randn(rng, rows * C);
    const R = randn(rng, rows * O);
    const xv = keep(tf.variable(tf.tensor(x, [2, 2, C])));
    const [dx, dw1] = await gradsOf(() => m.forward(xv), keep(tf.tensor(R, [2, 2, O])), [xv, m.fc1.weight.variable]);
    const fdX = finiteDiff((p) => ref(p, rows), x, R);
    await expectClose(dx!, fdX, defaultAtol(fdX), 'Mlp dx');
    const fdW = finiteDiff((p) => ref(x, rows, p), sd['fc1.weight'].data, R); // PyTorch layout [Hd, C]
    const fdWtf = t2(fdW, Hd, C); // → tfjs layout [C, Hd]
    await expectClose(dw1!, fdWtf, defaultAtol(fdWtf), 'Mlp dfc1.weight');
  });
});

describeBackend('Dropout', () => {
  it('is the identity in eval mode and at p = 0', async () => {
    const x = keep(tf.tensor([1, 2, 3, 4], [2, 2]));
    const d = keep(new Dropout(0.5, new Rng(1)));
    expect(d.training).toBe(false);
    expect(d.forward(x)).toBe(x);
    const d0 = keep(new Dropout(0, new Rng(1)).train());
    expect(d0.forward(x)).toBe(x);
    expect(() => new Dropout(1)).toThrow(/p must be in \[0, 1\)/);
    expect(() => new Dropout(-0.1)).toThrow(/p must be in \[0, 1\)/);
  });

  it('in train mode zeroes elements with probability p and scales the rest by 1/(1−p); seeded', async () => {
    const p = 0.3;
    const n = 20000;
    const xs = Float32Array.from({ length: n }, (_, i) => 1 + (i % 7));
    const d = keep(new Dropout(p, new Rng(42)).train());
    const y = (await keep(d.forward(keep(tf.tensor(xs, [100, 200])))).data()) as Float32Array;
    let kept = 0;
    let worst = 0;
    for (let i = 0; i < n; i++) {
      if (y[i] === 0) continue;
      kept++;
      worst = Math.max(worst, Math.abs(y[i]! - xs[i]! / (1 - p)) / xs[i]!);
    }
    expect(worst, 'kept elements are scaled by 1/(1-p)').toBeLessThanOrEqual(1e-5);
    // Binomial(n, 1 − p): within 5 standard deviations.
    expect(Math.abs(kept - n * (1 - p))).toBeLessThan(5 * Math.sqrt(n * p * (1 - p)));
    const again = keep(new Dropout(p, new Rng(42)).train());
    const y2 = (await keep(again.forward(keep(tf.tensor(xs, [100, 200])))).data()) as Float32Array;
    expect(y2.every((v, i) => v === y[i]), 'same seed, same mask').toBe(true);
  });

  it('gradient is the same mask (0 or 1/(1−p)) as the forward', async () => {
    const p = 0.25;
    const shape = [5, 8];
    const mask = (await keep(keep(new Dropout(p, new Rng(7)).train()).forward(keep(tf.ones(shape)))).data()) as Float32Array;
    const d = keep(new Dropout(p, new Rng(7)).train());
    const xv = keep(tf.variable(tf.randomNormal(shape, 0, 1, 'float32', 3)));
    const R = Float32Array.from({ length: 40 }, (_, i) => (i % 5) - 2);
    const [dx] = await gradsOf(() => d.forward(xv), keep(tf.tensor(R, shape)), [xv]);
    const ref = Float64Array.from(R, (r, i) => r * mask[i]!);
    await expectClose(dx!, ref, 1e-6, 'Dropout grad');
    expect(mask.some((v) => v === 0) && mask.some((v) => v > 1)).toBe(true);
  });
});

describeBackend('DropPath', () => {
  it('is the identity in eval mode and at p = 0', () => {
    const x = keep(tf.ones([4, 3, 2]));
    expect(keep(new DropPath(0.5)).forward(x)).toBe(x);
    expect(keep(new DropPath(0).train()).forward(x)).toBe(x);
    expect(() => new DropPath(1)).toThrow(/p must be in \[0, 1\)/);
  });

  it('in train mode keeps or drops each sample whole (kept ones × 1/(1−p)), for any rank', async () => {
    const p = 0.4;
    const B = 400;
    for (const rest of [[3], [2, 3], [2, 2, 2]]) {
      const per = rest.reduce((a, c) => a * c, 1);
      const xs = Float32Array.from({ length: B * per }, (_, i) => 0.5 + (i % 11));
      const dp = keep(new DropPath(p, new Rng(11)).train());
      const y = (await keep(dp.forward(keep(tf.tensor(xs, [B, ...rest])))).data()) as Float32Array;
      let kept = 0;
      let worst = 0;
      const partial: number[] = [];
      for (let s = 0; s < B; s++) {
        let zeros = 0;
        for (let j = 0; j < per; j++) if (y[s * per + j] === 0) zeros++;
        if (zeros !== 0 && zeros !== per) partial.push(s);
        if (zeros === 0) {
          kept++;
          for (let j = 0; j < per; j++) {
            const i = s * per + j;
            worst = Math.max(worst, Math.abs(y[i]! - xs[i]! / (1 - p)) / xs[i]!);
          }
        }
      }
      expect(partial, 'samples partly dropped').toEqual([]);
      expect(worst, 'kept samples are scaled by 1/(1-p)').toBeLessThanOrEqual(1e-5);
      expect(Math.abs(kept - B * (1 - p))).toBeLessThan(5 * Math.sqrt(B * p * (1 - p)));
    }
  });

  it('gradient is the per-sample mask', async () => {
    const p = 0.5;
    const shape = [8, 3, 2];
    const mask = (await keep(keep(new DropPath(p, new Rng(5)).train()).forward(keep(tf.ones(shape)))).data()) as Float32Array;
    const dp = keep(new DropPath(p, new Rng(5)).train());
    const xv = keep(tf.variable(tf.randomNormal(shape, 0, 1, 'float32', 4)));
    const R = Float32Array.from({ length: 48 }, (_, i) => ((i * 7) % 5) - 2);
    const [dx] = await gradsOf(() => dp.forward(xv), keep(tf.tensor(R, shape)), [xv]);
    await expectClose(dx!, Float64Array.from(R, (r, i) => r * mask[i]!), 1e-6, 'DropPath grad');
  });
});

describeBackend('nonOverlappingConv2d / PatchEmbed', () => {
  const rng = new Rng(4);

  /** PyTorch OIHW weight data → tfjs HWIO tensor. */
  function hwio(w: Float32Array, O: number, C: number, k: number): tf.Tensor {
    const out = new Float32Array(w.length);
    for (let o = 0; o < O; o++)
      for (let c = 0; c < C; c++)
        for (let kh = 0; kh < k; kh++)
          for (let kw = 0; kw < k; kw++) out[((kh * k + kw) * C + c) * O + o] = w[((o * C + c) * k + kh) * k + kw]!;
    return tf.tensor(out, [k, k, C, O]);
  }

  it('matches a plain-loop conv (kernel = stride), odd sizes floored', async () => {
    const C = 3;
    const O = 5;
    for (const [H, W, k] of [[9, 11, 2], [9, 11, 3], [8, 8, 4], [9, 11, 4], [5, 7, 1]] as const) {
      const x = randn(rng, 2 * H * W * C);
      const w = randn(rng, O * C * k * k, 0.3);
      const bias = randn(rng, O, 0.1);
      const { y: ref, shape } = convRef(x, [2, H, W, C], w, bias, O, k);
      const y = keep(nonOverlappingConv2d(keep(tf.tensor(x, [2, H, W, C])), keep(hwio(w, O, C, k)), keep(tf.tensor(bias)), k));
      await expectClose(y, ref, defaultAtol(ref), `conv ${H}x${W} k${k}`, shape);
    }
  });

  it('gradients of x (zero on the floored remainder) and of the weight match the analytic ones', async () => {
    const [B, H, W, C, O, k] = [2, 5, 7, 2, 3, 2];
    const Ho = 2;
    const Wo = 3;
    const x = randn(rng, B * H * W * C);
    const w = randn(rng, O * C * k * k, 0.3);
    const R = randn(rng, B * Ho * Wo * O);
    const xv = keep(tf.variable(tf.tensor(x, [B, H, W, C])));
    const wv = keep(tf.variable(hwio(w, O, C, k)));
    const [dx, dw] = await gradsOf(() => nonOverlappingConv2d(xv, wv, null, k), keep(tf.tensor(R, [B, Ho, Wo, O])), [xv, wv]);
    const dxRef = new Float64Array(x.length);
    const dwRef = new Float64Array(w.length); // HWIO
    for (let b = 0; b < B; b++)
      for (let i = 0; i < Ho; i++)
        for (let j = 0; j < Wo; j++)
          for (let o = 0; o < O; o++) {
            const r = R[((b * Ho + i) * Wo + j) * O + o]!;
            for (let kh = 0; kh < k; kh++)
              for (let kw = 0; kw < k; kw++)
                for (let c = 0; c < C; c++) {
                  const xi = ((b * H + i * k + kh) * W + j * k + kw) * C + c;
                  dxRef[xi] += r * w[((o * C + c) * k + kh) * k + kw]!;
                  dwRef[((kh * k + kw) * C + c) * O + o] += r * x[xi]!;
                }
          }
    await expectClose(dx!, dxRef, defaultAtol(dxRef), 'conv dx');
    await expectClose(dw!, dwRef, defaultAtol(dwRef), 'conv dw');
    // The last row and column (H = 5, W = 7 with k = 2) get no gradient.
    for (let b = 0; b < B; b++) for (let c = 0; c < C; c++) expect(dx![((b * H + 4) * W + 0) * C + c]).toBe(0);
  });

  it('rejects bad inputs with the expected shape in the message', () => {
    const w = keep(tf.zeros([2, 2, 3, 4]));
    expect(() => nonOverlappingConv2d(keep(tf.zeros([4, 4, 3])), w, null, 2)).toThrow(/expected a \[B, H, W, C\] input, got shape \[4,4,3\]/);
    expect(() => nonOverlappingConv2d(keep(tf.zeros([1, 4, 4, 2])), w, null, 2)).toThrow(/expected a weight of shape \[2, 2, 2, O\] \(HWIO\), got \[2,2,3,4\]/);
    expect(() => nonOverlappingConv2d(keep(tf.zeros([1, 1, 4, 3])), w, null, 2)).toThrow(/smaller than the 2×2 kernel/);
    expect(() => nonOverlappingConv2d(keep(tf.zeros([1, 4, 4, 3])), w, keep(tf.zeros([5])), 2)).toThrow(/bias of shape \[4\]/);
  });

  it('PatchEmbed loads PyTorch OIHW weights by name and outputs tokens [B, N, D] (row-major) or NHWC', async () => {
    const [B, Hs, Ws, C, D, p] = [2, 8, 12, 3, 5, 4];
    const pe = keep(new PatchEmbed({ imgSize: [Hs, Ws], patchSize: p, inChans: C, embedDim: D, output: 'tokens' }));
    const peNhwc = keep(new PatchEmbed({ imgSize: [Hs, Ws], patchSize: p, inChans: C, embedDim: D, output: 'nhwc' }));
    expect(pe.namedParameters().map(([n, q]) => [n, q.torchShape])).toEqual([
      ['proj.weight', [D, C, p, p]],
      ['proj.bias', [D]],
    ]);
    expect(pe.gridSize).toEqual([2, 3]);
    expect(pe.numPatches).toBe(6);
    const w = randn(rng, D * C * p * p, 0.2);
    const bias = randn(rng, D, 0.1);
    const sd = { 'proj.weight': { data: w, shape: [D, C, p, p] }, 'proj.bias': { data: bias, shape: [D] } };
    pe.loadStateDict(sd);
    peNhwc.loadStateDict(sd);
    const x = randn(rng, B * Hs * Ws * C);
    const xt = keep(tf.tensor(x, [B, Hs, Ws, C]));
    const { y: ref } = convRef(x, [B, Hs, Ws, C], w, bias, D, p);
    await expectClose(keep(pe.forward(xt)), ref, defaultAtol(ref), 'PatchEmbed tokens', [B, 6, D]);
    await expectClose(keep(peNhwc.forward(xt)), ref, defaultAtol(ref), 'PatchEmbed nhwc', [B, 2, 3, D]);
    expect(() => pe.forward(keep(tf.zeros([B, Hs, Ws + 1, C])))).toThrow(/expected input of shape \[B, 8, 12, 3\] \(NHWC float32\), got \[2,8,13,3\]/);
    expect(() => new PatchEmbed({ imgSize: 10, patchSize: 4, embedDim: 2 })).toThrow(/must be a multiple of the patch size 4/);
  });

  it('PatchEmbed reproduces the PyTorch fixture (convit_micro patch_embed_out, timm weights)', async () => {
    const f = loadFixture('convit_micro');
    const cfg = f.config;
    const stem = keep(
      new Holder('patch_embed', new PatchEmbed({ imgSize: cfg.img_size, patchSize: cfg.patch_size, inChans: cfg.in_chans, embedDim: cfg.embed_dim })),
    );
    const names = stem.namedParameters().map(([n]) => n);
    expect(names).toEqual(['patch_embed.proj.weight', 'patch_embed.proj.bias']);
    const r = stem.loadStateDict(new Map(names.map((n) => [n, f.weights.get(n)!])));
    expect(r.loaded).toEqual(names);
    const x = keep(fixtureTensor(f.get('input_nhwc')));
    const want = f.get('patch_embed_out');
    await expectClose(keep((stem.children()[0]![1] as PatchEmbed).forward(x)), want.data, f.atol('patch_embed_out'), 'convit_micro patch_embed_out', want.shape);
  });
});
