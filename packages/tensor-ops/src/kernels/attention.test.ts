/**
 * The fused attention forward (attention.c, `SoftbiasAttention`, `fusedAttentionForward`): its vectorised exp
 * against Math.exp, and o, c, z against a float64 definition written here (per-element bounds from float32
 * rounding) and against the op-by-op tfjs version, for N = 1, 5, 9, 16, 196, 197, head dims 3, 8, 48, 1–8
 * (batch, head) blocks, plain and GPSA's mix with the broadcast layouts callers pass; fallbacks; no leaks; 2
 * threads in a child process (bit-identical to 1). On cpu and webgpu the kernel does not exist: the helper
 * returns null (the op graph runs).
 */
import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend, currentBackend } from '@softbias/test-utils';
import { fileURLToPath } from 'node:url';
import { runTsInChild } from '../../../../test-utils/child.js';
import { Rng } from '../rng.js';
import { ATTENTION_KERNEL, fusedAttentionActive, fusedAttentionForward, setFusedAttention } from './attention.js';
import { heapAddress, parallelFor } from './runtime.js';

const U = 2 ** -24;
const onWasm = currentBackend === 'wasm';

function randn(rng: Rng, shape: number[], s = 1): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const d = new Float32Array(n);
  for (let i = 0; i < n; i++) d[i] = rng.normal() * s;
  return tf.tensor(d, shape, 'float32');
}

/** The op-by-op version (what scaledDotAttention computes off wasm). */
function opByOp(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, scale: number, keep?: tf.Tensor, gated?: tf.Tensor) {
  return tf.tidy(() => {
    let s = tf.matMul(q, k, false, true);
    if (scale !== 1) s = tf.mul(s, scale);
    const c = tf.softmax(s);
    if (!keep || !gated) return { o: tf.matMul(c, v), c };
    const a = tf.add(tf.mul(c, keep), gated);
    const z = tf.sum(a, -1, true);
    return { o: tf.matMul(tf.div(a, z), v), c, z };
  });
}

/** Index into a row-major array of `shape` broadcast against `full` (NumPy rules), for flat index `i` of full. */
function bcastIndex(i: number, full: number[], shape: number[]): number {
  let idx = 0;
  let stride = 1;
  for (let d = full.length - 1, s = shape.length - 1; d >= 0; d--, s--) {
    const coord = i % full[d]!;
    i = Math.floor(i / full[d]!);
    if (s >= 0) {
      if (shape[s] !== 1) idx += coord * stride;
      stride *= shape[s]!;
    }
  }
  return idx;
}

interface Ref {
  o: Float64Array;
  c: Float64Array;
  z: Float64Array | null;
  oTol: Float64Array;
  cTol: Float64Array;
  zTol: Float64Array | null;
}

/**
 * The definition in float64 on the float32 inputs, with per-element bounds for a float32 computation: εS (per
 * row) = (D + 2)·u·|scale|·max_j Σ_d |q k| bounds the error of each score; the softmax's relative error is then
 * ≤ 4εS + 2u·max|s − m| + (N/4 + 8)u (exp ≤ 1.37u, 4-lane sums, the division), z's ≤ that + (N/4 + 4)u, p's ≤
 * c's + z's + 3u, and o's error ≤ (rel_p + (N + 2)u)·Σ_j p|v| (+ a subnormal floor).
 */
function reference(qa: Float32Array, ka: Float32Array, va: Float32Array, shape: number[], E: number, N: number, scale: number, keep?: { d: Float32Array; shape: number[] }, gated?: { d: Float32Array; shape: number[] }): Ref {
  const M = shape[shape.length - 2]!;
  const D = shape[shape.length - 1]!;
  const batch = shape.slice(0, -2);
  const nblk = batch.reduce((a, b) => a * b, 1);
  const sc = Math.fround(scale);
  const full = [...batch, M, N];
  const o = new Float64Array(nblk * M * E);
  const oTol = new Float64Array(o.length);
  const c = new Float64Array(nblk * M * N);
  const cTol = new Float64Array(c.length);
  const z = keep ? new Float64Array(nblk * M) : null;
  const zTol = keep ? new Float64Array(nblk * M) : null;
  const s = new Float64Array(N);
  const p = new Float64Array(N);
  for (let b = 0; b < nblk; b++) {
    for (let i = 0; i < M; i++) {
      const qi = (b * M + i) * D;
      let m = -Infinity;
      let absMax = 0;
      for (let j = 0; j < N; j++) {
        const kj = (b * N + j) * D;
        let acc = 0;
        let abs = 0;
        for (let d = 0; d < D; d++) {
          acc += qa[qi + d]! * ka[kj + d]!;
          abs += Math.abs(qa[qi + d]! * ka[kj + d]!);
        }
        s[j] = acc * sc;
        absMax = Math.max(absMax, abs);
        m = Math.max(m, s[j]!);
      }
      const epsS = (D + 2) * U * Math.abs(sc) * absMax;
      let sum = 0;
      let spread = 0;
      for (let j = 0; j < N; j++) {
        spread = Math.max(spread, m - s[j]!);
        p[j] = Math.exp(s[j]! - m);
        sum += p[j]!;
      }
      const relC = 4 * epsS + 2 * U * spread + (N / 4 + 8) * U;
      const row = b * M + i;
      for (let j = 0; j < N; j++) {
        c[row * N + j] = p[j]! / sum;
        cTol[row * N + j] = c[row * N + j]! * relC + 2 ** -140;
      }
      let relP = relC;
      if (keep && gated) {
        let zz = 0;
        for (let j = 0; j < N; j++) {
          const f = row * N + j;
          p[j] = c[f]! * keep.d[bcastIndex(f, full, keep.shape)]! + gated.d[bcastIndex(f, full, gated.shape)]!;
          zz += p[j]!;
        }
        const relZ = relC + (N / 4 + 4) * U;
        z![row] = zz;
        zTol![row] = zz * relZ + 2 ** -140;
        for (let j = 0; j < N; j++) p[j] = p[j]! / zz;
        relP = relC + relZ + 3 * U;
      } else for (let j = 0; j < N; j++) p[j] = c[row * N + j]!;
      for (let e = 0; e < E; e++) {
        let acc = 0;
        let abs = 0;
        for (let j = 0; j < N; j++) {
          acc += p[j]! * va[(b * N + j) * E + e]!;
          abs += Math.abs(p[j]! * va[(b * N + j) * E + e]!);
        }
        o[row * E + e] = acc;
        oTol[row * E + e] = (relP + (N + 2) * U) * abs + 2 ** -140;
      }
    }
  }
  return { o, c, z, oTol, cTol, zTol };
}

/** max |x − ref| / tol (≤ 1 passes). */
function worstRatio(x: ArrayLike<number>, ref: Float64Array, tol: Float64Array): number {
  expect(x.length).toBe(ref.length);
  let w = 0;
  for (let i = 0; i < ref.length; i++) {
    const r = Math.abs(x[i]! - ref[i]!) / tol[i]!;
    w = Number.isNaN(r) ? Infinity : Math.max(w, r);
  }
  return w;
}

const BH: [number, number][] = [[1, 1], [1, 2], [3, 1], [1, 4], [5, 1], [2, 3], [7, 1], [2, 4]];
/** keep / gated layouts, as callers pass them (GPSA: [H, 1, 1] and [H, N, N]). */
const MIX_LAYOUTS = [
  (_B: number, H: number, N: number) => [[H, 1, 1], [H, N, N]],
  (_B: number, H: number, N: number) => [[1, H, 1, 1], [1, H, N, N]],
  (B: number, H: number, N: number) => [[B, H, 1, 1], [B, H, N, N]],
  (_B: number, _H: number, N: number) => [[1], [N, N]],
  (B: number, _H: number, N: number) => [[B, 1, 1, 1], [B, 1, N, N]],
] as const;

describeBackend('fused attention forward (SoftbiasAttention)', () => {
  it.runIf(!onWasm)(`not on ${currentBackend}: fusedAttentionForward is null (the op graph runs)`, () => {
    const q = tf.ones([1, 1, 3, 2]);
    expect(fusedAttentionActive()).toBe(false);
    expect(fusedAttentionForward(q, q, q, 1)).toBeNull();
    expect(tf.getKernel(ATTENTION_KERNEL, currentBackend)).toBeUndefined();
    q.dispose();
  });

  it.runIf(onWasm)('exp: max relative error ≤ 1.37·2⁻²⁴ vs Math.exp (dense grid, every float32 in several intervals), specials', () => {
    const be = tf.backend();
    const run = (xs: Float32Array): Float32Array => {
      const n = Math.ceil(xs.length / 4) * 4;
      const xp = new Float32Array(n);
      xp.set(xs);
      const x = tf.tensor1d(xp);
      const y = tf.zeros([n]);
      parallelFor(be, 'attention.attn_exp', 1, [heapAddress(be, x), heapAddress(be, y), n]);
      const out = (y.dataSync() as Float32Array).slice(0, xs.length);
      tf.dispose([x, y]);
      return out;
    };
    let worst = 0;
    let worstSub = 0;
    const check = (xs: Float32Array) => {
      const y = run(xs);
      for (let i = 0; i < xs.length; i++) {
        const ref = Math.exp(xs[i]!);
        if (ref >= 2 ** 128) expect(y[i]).toBe(Infinity);
        else if (ref < 2 ** -126) worstSub = Math.max(worstSub, Math.abs(y[i]! - ref) / 2 ** -149);
        else worst = Math.max(worst, Math.abs(y[i]! - ref) / ref);
      }
    };
    // Every float32 in a few intervals (around 0, the reduction's first steps, the ends of the range).
    const bits = new Uint32Array(1);
    const fl = new Float32Array(bits.buffer);
    for (const [lo, hi] of [[-0.36, -0.33], [0.33, 0.36], [-1.01e-4, -1e-4], [-1.05, -1.03], [-87.4, -87.3], [-103.5, -103.4], [88.6, 88.75], [-17.33, -17.32]]) {
      fl[0] = Math.abs(lo!) < Math.abs(hi!) ? lo! : hi!;
      const b0 = bits[0]!;
      fl[0] = Math.abs(lo!) < Math.abs(hi!) ? hi! : lo!;
      const b1 = bits[0]!;
      const xs = new Float32Array(b1 - b0 + 1);
      for (let b = b0; b <= b1; b++) {
        bits[0] = b;
        xs[b - b0] = fl[0]!;
      }
      check(xs);
    }
    const grid = new Float32Array(1 << 21);
    for (let i = 0; i < grid.length; i++) grid[i] = -110 + (200 * i) / grid.length;
    check(grid);
    expect(worst).toBeGreaterThan(0);
    expect(worst, 'max relative error, normal results').toBeLessThanOrEqual(1.37 * U);
    expect(worstSub, 'subnormal results: within one subnormal step').toBeLessThanOrEqual(1);
    const sp = run(new Float32Array([Number.NaN, -Infinity, Infinity, 0, -0, -104, -200, 89, 1e30]));
    expect(Array.from(sp)).toEqual([Number.NaN, 0, Infinity, 1, 1, 0, 0, Infinity, Infinity]);
  });

  let caseNo = 0;
  let mixNo = 0;
  for (const N of [1, 5, 9, 16, 196, 197]) {
    for (const hd of [3, 8, 48]) {
      for (const mixed of [false, true]) {
        const [B, H] = BH[caseNo % BH.length]!;
        const layout = MIX_LAYOUTS[(mixed ? mixNo++ : 0) % MIX_LAYOUTS.length]!(B, H, N);
        const seed = 1000 + 17 * caseNo++;
        const label = `${mixed ? `mixed keep [${layout[0]}] gated [${layout[1]}]` : 'plain'}, B${B} H${H} N${N} hd${hd}`;
        it.runIf(onWasm)(`o, c, z vs float64 (per-element float32 bounds) and vs the op graph: ${label}`, async () => {
          const rng = new Rng(seed);
          const shape = [B, H, N, hd];
          const q = randn(rng, shape);
          const k = randn(rng, shape);
          const v = randn(rng, shape);
          const g = tf.sigmoid(randn(rng, layout[0] as number[], 2));
          const keep = tf.sub(1, g);
          const gated = tf.mul(g, tf.softmax(randn(rng, layout[1] as number[], 3)));
          const scale = hd ** -0.5;
          const f = fusedAttentionForward(q, k, v, scale, mixed ? keep : undefined, mixed ? gated : undefined);
          expect(f, 'the kernel takes this layout').not.toBeNull();
          const r = opByOp(q, k, v, scale, mixed ? keep : undefined, mixed ? gated : undefined);
          const ref = reference(
            q.dataSync() as Float32Array,
            k.dataSync() as Float32Array,
            v.dataSync() as Float32Array,
            shape,
            hd,
            N,
            scale,
            mixed ? { d: keep.dataSync() as Float32Array, shape: keep.shape } : undefined,
            mixed ? { d: gated.dataSync() as Float32Array, shape: gated.shape } : undefined,
          );
          expect(f!.o.shape).toEqual([B, H, N, hd]);
          expect(f!.c.shape).toEqual([B, H, N, N]);
          const parts: [string, tf.Tensor, tf.Tensor, Float64Array, Float64Array][] = [
            ['o', f!.o, r.o, ref.o, ref.oTol],
            ['c', f!.c, r.c, ref.c, ref.cTol],
          ];
          if (mixed) {
            expect(f!.z!.shape).toEqual([B, H, N, 1]);
            parts.push(['z', f!.z!, r.z!, ref.z!, ref.zTol!]);
          } else expect(f!.z).toBeUndefined();
          for (const [name, fused, graph, rv, tol] of parts) {
            const fd = (await fused.data()) as Float32Array;
            const gd = (await graph.data()) as Float32Array;
            // The kernel within the float32 bound of the definition; the op graph (tfjs' softmax) as a cross-check
            // within twice that of the kernel (both are float32 computations of the same definition).
            expect(worstRatio(fd, rv, tol), `${name} vs float64`).toBeLessThanOrEqual(1);
            const twice = tol.map((t) => 2 * t);
            expect(worstRatio(fd, Float64Array.from(gd), twice), `${name} vs op graph`).toBeLessThanOrEqual(1);
          }
          // Token-major layout ([B, N, H·hd], as the linears write it): the same numbers bit for bit, o token-major.
          const tok = (t: tf.Tensor) => tf.reshape(tf.transpose(t, [0, 2, 1, 3]), [B, N, H * hd]);
          const [qt, kt, vt] = [tok(q), tok(k), tok(v)];
          const ft = fusedAttentionForward(qt, kt, vt, scale, mixed ? keep : undefined, mixed ? gated : undefined, { tokenMajorHeads: H });
          expect(ft, 'the kernel takes the token-major layout').not.toBeNull();
          expect(ft!.o.shape).toEqual([B, N, H * hd]);
          const oBack = tok(f!.o);
          expect(Array.from(await ft!.o.data()), 'token-major o').toEqual(Array.from(await oBack.data()));
          expect(Array.from(await ft!.c.data()), 'token-major c').toEqual(Array.from(await f!.c.data()));
          if (mixed) expect(Array.from(await ft!.z!.data()), 'token-major z').toEqual(Array.from(await f!.z!.data()));
          tf.dispose([qt, kt, vt, oBack, ft!.o, ft!.c, ft!.z ?? []]);
          tf.dispose([q, k, v, g, keep, gated, f!.o, f!.c, f!.z ?? [], r.o, r.c, r.z ?? []]);
        });
      }
    }
  }

  it.runIf(onWasm)('peaked scores (exp underflows to 0 and subnormals), q ≠ k rows, E ≠ D, rank 3 and rank 5 batches', async () => {
    const rng = new Rng(5);
    for (const [qs, ks, vs, scale] of [
      [[2, 197, 48], [2, 197, 48], [2, 197, 48], 3],
      [[3, 7, 5], [3, 11, 5], [3, 11, 13], 0.7],
      [[1, 2, 2, 33, 6], [1, 2, 2, 20, 6], [1, 2, 2, 20, 9], 1],
    ] as [number[], number[], number[], number][]) {
      const q = randn(rng, qs);
      const k = randn(rng, ks);
      const v = randn(rng, vs);
      const f = fusedAttentionForward(q, k, v, scale)!;
      expect(f).not.toBeNull();
      const N = ks[ks.length - 2]!;
      const E = vs[vs.length - 1]!;
      const ref = reference(q.dataSync() as Float32Array, k.dataSync() as Float32Array, v.dataSync() as Float32Array, qs, E, N, scale);
      expect(f.o.shape).toEqual([...qs.slice(0, -1), E]);
      expect(worstRatio(await f.o.data(), ref.o, ref.oTol), `o [${qs}]`).toBeLessThanOrEqual(1);
      expect(worstRatio(await f.c.data(), ref.c, ref.cTol), `c [${qs}]`).toBeLessThanOrEqual(1);
      tf.dispose([q, k, v, f.o, f.c]);
    }
  });

  it.runIf(onWasm)('layouts the kernel does not read return null; setFusedAttention(false) turns it off', () => {
    tf.tidy(() => {
      const q = tf.ones([2, 3, 4, 5]);
      const keep = tf.ones([3, 1, 1]);
      expect(fusedAttentionForward(q, q, q, 1, keep, tf.ones([3, 1, 4]))).toBeNull(); // gated broadcast over rows
      expect(fusedAttentionForward(q, q, q, 1, tf.ones([3, 4, 1]), tf.ones([3, 4, 4]))).toBeNull(); // keep per row
      const q5 = tf.ones([2, 2, 3, 4, 5]);
      expect(fusedAttentionForward(q5, q5, q5, 1, keep, tf.ones([2, 1, 3, 4, 4]))).toBeNull(); // some batch dims broadcast
      expect(fusedAttentionForward(q, q, q, 1, keep, tf.ones([2, 1, 4, 4]))).not.toBeNull(); // per sample, not per head
      expect(fusedAttentionForward(q, q, q, 1, keep, tf.ones([1, 1, 3, 4, 4]))).toBeNull(); // higher rank
      expect(fusedAttentionForward(q, q, q, 1, keep)).toBeNull(); // keep without gated
      expect(fusedAttentionForward(q, tf.ones([2, 3, 4, 6]), q, 1)).toBeNull(); // head dims differ
      expect(fusedAttentionForward(q, tf.ones([1, 3, 4, 5]), q, 1)).toBeNull(); // broadcast batch
      expect(fusedAttentionForward(tf.ones([2, 3, 0, 5]), q, q, 1)).toBeNull(); // empty
      expect(fusedAttentionForward(q, q, q, 1, keep, tf.ones([3, 4, 4]))).not.toBeNull();
      setFusedAttention(false);
      try {
        expect(fusedAttentionActive()).toBe(false);
        expect(fusedAttentionForward(q, q, q, 1)).toBeNull();
      } finally {
        setFusedAttention(true);
      }
    });
  });

  it.runIf(onWasm)('leaves no backend data behind (kernel, and forward + gradients through it)', () => {
    const backend = tf.backend() as unknown as { numDataIds(): number };
    const rng = new Rng(9);
    const q = randn(rng, [2, 3, 17, 8]);
    const keep = tf.fill([3, 1, 1], 0.3);
    const gated = tf.fill([3, 17, 17], 0.7 / 17);
    const run = () => {
      const f = fusedAttentionForward(q, q, q, 0.5, keep, gated)!;
      tf.dispose([f.o, f.c, f.z!]);
      const p = fusedAttentionForward(q, q, q, 0.5)!;
      tf.dispose([p.o, p.c]);
    };
    run();
    const before = backend.numDataIds();
    for (let i = 0; i < 3; i++) run();
    expect(backend.numDataIds()).toBe(before);
    tf.dispose([q, keep, gated]);
  });

  it.runIf(onWasm)('wasm, 2 threads (child process): bit-identical to 1 thread, close to the op graph', () => {
    const entry = fileURLToPath(new URL('../../test/attention-threads.child.ts', import.meta.url));
    const r = runTsInChild<{ threads: number; checks: { label: string; sameAs1: boolean; vsGraph: number; scale: number }[] }>(entry, { timeoutMs: 120_000 });
    expect(r.result, r.how).toBeDefined();
    const res = r.result!;
    expect(res.threads).toBe(2);
    for (const c of res.checks) {
      expect(c.sameAs1, `${c.label}: 2 threads = 1 thread`).toBe(true);
      expect(c.vsGraph, `${c.label}: vs op graph`).toBeLessThanOrEqual(1e-5 * Math.max(1, c.scale));
    }
    expect(res.checks.length).toBe(12); // o, c (, z) of 5 shapes, 2 mixed
  });
});
