/**
 * tensor-ops replaces BatchMatMul's gradient with one made of explicit transposes and flag-free matmuls (the
 * wasm fast path). It must equal the definition for every flag combination, rank 2 and batched rank 3, and
 * broadcast batch dimensions (where tfjs' own gradient fails).
 */
import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend, expectClose, defaultAtol } from '@softbias/test-utils';
import { Rng } from '@softbias/tensor-ops';

/** float64 reference: y = op(A)·op(B), loss = Σ y ⊙ W; returns dA, dB. */
function reference(
  a: Float64Array, aShape: number[], b: Float64Array, bShape: number[], w: Float64Array, tA: boolean, tB: boolean,
): { dA: Float64Array; dB: Float64Array } {
  const batch = aShape.length === 3 ? aShape[0]! : 1;
  const [ar, ac] = aShape.slice(-2) as [number, number];
  const [br, bc] = bShape.slice(-2) as [number, number];
  const m = tA ? ac : ar;
  const k = tA ? ar : ac;
  const n = tB ? br : bc;
  const A = (bi: number, i: number, j: number) => (tA ? a[bi * ar * ac + j * ac + i]! : a[bi * ar * ac + i * ac + j]!);
  const B = (bi: number, i: number, j: number) => (tB ? b[bi * br * bc + j * bc + i]! : b[bi * br * bc + i * bc + j]!);
  const dA = new Float64Array(a.length);
  const dB = new Float64Array(b.length);
  for (let bi = 0; bi < batch; bi++)
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        const g = w[bi * m * n + i * n + j]!;
        for (let p = 0; p < k; p++) {
          // y[i,j] += A[i,p]·B[p,j]
          const ai = tA ? bi * ar * ac + p * ac + i : bi * ar * ac + i * ac + p;
          const bj = tB ? bi * br * bc + j * bc + p : bi * br * bc + p * bc + j;
          dA[ai] += g * B(bi, p, j);
          dB[bj] += g * A(bi, i, p);
        }
      }
  return { dA, dB };
}

describeBackend('BatchMatMul gradient (explicit transposes)', () => {
  const rng = new Rng(7);
  const rand = (n: number) => Float64Array.from({ length: n }, () => rng.normal());
  for (const batched of [false, true]) {
    for (const [tA, tB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      it(`${batched ? 'rank 3' : 'rank 2'}, transposeA=${tA}, transposeB=${tB}`, async () => {
        const [m, k, n, bs] = [13, 17, 11, 3];
        const aShape = [...(batched ? [bs] : []), ...(tA ? [k, m] : [m, k])];
        const bShape = [...(batched ? [bs] : []), ...(tB ? [n, k] : [k, n])];
        const a = rand(aShape.reduce((x, y) => x * y, 1));
        const b = rand(bShape.reduce((x, y) => x * y, 1));
        const w = rand((batched ? bs : 1) * m * n);
        const ref = reference(a, aShape, b, bShape, w, tA, tB);
        const wt = tf.tensor(Float32Array.from(w), [...(batched ? [bs] : []), m, n]);
        const [ga, gb] = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(tf.matMul(x, y, tA, tB), wt)))([
          tf.tensor(Float32Array.from(a), aShape),
          tf.tensor(Float32Array.from(b), bShape),
        ]);
        await expectClose(ga!, ref.dA, defaultAtol(ref.dA), 'matmul dA', aShape);
        await expectClose(gb!, ref.dB, defaultAtol(ref.dB), 'matmul dB', bShape);
        tf.dispose([ga!, gb!, wt]);
      });
    }
  }

  it('broadcast batch dimensions are summed back to each input shape', async () => {
    const a = rand(2 * 5 * 4);
    const b = rand(4 * 3);
    const [ga, gb] = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.matMul(x, y)))([
      tf.tensor(Float32Array.from(a), [2, 5, 4]),
      tf.tensor(Float32Array.from(b), [1, 4, 3]),
    ]);
    // d/dB Σ A·B = Σ_batch Aᵀ·1 ; d/dA = 1·Bᵀ
    const dB = new Float64Array(12);
    for (let bi = 0; bi < 2; bi++) for (let i = 0; i < 5; i++) for (let p = 0; p < 4; p++) for (let j = 0; j < 3; j++) dB[p * 3 + j] += a[bi * 20 + i * 4 + p]!;
    const dA = new Float64Array(40);
    for (let bi = 0; bi < 2; bi++) for (let i = 0; i < 5; i++) for (let p = 0; p < 4; p++) for (let j = 0; j < 3; j++) dA[bi * 20 + i * 4 + p] += b[p * 3 + j]!;
    await expectClose(ga!, dA, defaultAtol(dA), 'broadcast dA', [2, 5, 4]);
    await expectClose(gb!, dB, defaultAtol(dB), 'broadcast dB', [1, 4, 3]);
    tf.dispose([ga!, gb!]);
  });

  it('is the softbias gradient', () => {
    expect((tf.getGradient('BatchMatMul') as { softbias?: boolean }).softbias).toBe(true);
  });
});
