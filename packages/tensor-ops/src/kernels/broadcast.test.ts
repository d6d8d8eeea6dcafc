/**
 * The row-broadcast Add/Multiply (broadcast.ts, broadcast.c): which shapes it takes, bit-for-bit equality with
 * tfjs' own kernel (one IEEE operation per element) on wasm at 1 and 2 threads, gradients unchanged.
 */
import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { fileURLToPath } from 'node:url';
import { describeBackend, currentBackend } from '@softbias/test-utils';
import { runTsInChild } from '../../../../test-utils/child.js';
import { broadcastPlan, gatherRowsFused, rowBroadcastLength, originalWasmBinary, sumOfSquaresOverPositions } from './broadcast.js';

describeBackend('row-broadcast Add / Multiply', () => {
  it('takes only a last-axis row vector against a tensor of at least two rows', () => {
    expect(rowBroadcastLength([8, 196, 768], [768])).toBe(768);
    expect(rowBroadcastLength([8, 196, 768], [1, 1, 768])).toBe(768);
    expect(rowBroadcastLength([8, 196, 768], [196, 768])).toBe(0);
    expect(rowBroadcastLength([8, 196, 768], [8, 1, 768])).toBe(0);
    expect(rowBroadcastLength([1, 768], [768])).toBe(0);
    expect(rowBroadcastLength([3, 5], [1])).toBe(0);
    expect(rowBroadcastLength([3, 0], [0])).toBe(0);
    expect(rowBroadcastLength([], [])).toBe(0);
  });

  it.runIf(currentBackend === 'wasm')('equals tfjs’ own kernel bit for bit, either operand order, odd widths', () => {
    expect(originalWasmBinary('Add')).not.toBeNull();
    for (const [shape, vshape] of [
      [[5, 7], [7]],
      [[2, 3, 13], [1, 1, 13]],
      [[64, 192], [192]],
      [[9, 1], [1]],
    ] as const) {
      const x = tf.randomNormal([...shape], 0, 1, 'float32', 3);
      const v = tf.randomNormal([...vshape], 0, 1, 'float32', 4);
      for (const name of ['Add', 'Multiply'] as const) {
        for (const [a, b] of [[x, v], [v, x]] as const) {
          const got = tf.engine().runKernel(name, { a, b }) as tf.Tensor;
          const info = originalWasmBinary(name)!({ inputs: { a, b }, backend: tf.backend(), attrs: {} }) as tf.TensorInfo;
          const want = tf.engine().makeTensorFromTensorInfo(info);
          expect(got.shape).toEqual(want.shape);
          expect(Array.from(got.dataSync()), `${name} ${a.shape} ${b.shape}`).toEqual(Array.from(want.dataSync()));
          tf.dispose([got, want]);
        }
      }
      tf.dispose([x, v]);
    }
  });

  it('a bias gradient still sums over the rows', async () => {
    const x = tf.randomNormal([6, 5], 0, 1, 'float32', 1);
    const b = tf.randomNormal([5], 0, 1, 'float32', 2);
    const [gx, gb] = tf.grads((xx: tf.Tensor, bb: tf.Tensor) => tf.sum(tf.mul(tf.add(xx, bb), xx)))([x, b]);
    const want = tf.sum(x, 0);
    expect(Array.from(await gb!.data())).toEqual(Array.from(await want.data()));
    tf.dispose([x, b, gx!, gb!, want]);
  });

  it.runIf(currentBackend === 'wasm')('2 kernel threads give tfjs’ numbers exactly', () => {
    const r = runTsInChild<{ threads: number; results: { label: string; equal: boolean }[] }>(
      fileURLToPath(new URL('../../test/broadcast-threads.child.ts', import.meta.url)),
    );
    expect(r.status, r.how).toBe(0);
    expect(r.result!.threads).toBe(2);
    for (const c of r.result!.results) expect(c.equal, c.label).toBe(true);
  });
});

describeBackend('Sum over leading axes (bias gradients)', () => {
  it('equals tfjs (bit for bit on wasm, against its own kernel) and a float64 sum, with and without keepDims', async () => {
    const cases: [number[], number[]][] = [
      [[1568, 192], [0]],
      [[7, 13], [0]],
      [[2, 3, 5, 17], [0, 1, 2]],
      [[4, 9, 6], [1, 0]],
      [[3, 5], [1]], // not leading: tfjs' kernel
      [[6], [0]], // a full reduction: tfjs' kernel
    ];
    for (const [shape, axes] of cases) {
      const x = tf.randomNormal(shape, 0, 1, 'float32', shape.length);
      const xs = await x.data();
      for (const keepDims of [false, true]) {
        const got = tf.sum(x, axes, keepDims);
        const ref = originalWasmBinary('Sum');
        const want = ref ? tf.engine().makeTensorFromTensorInfo(ref({ inputs: { x }, backend: tf.backend(), attrs: { axis: axes, keepDims } }) as tf.TensorInfo) : null;
        const label = `sum [${shape}] over [${axes}] keepDims=${keepDims}`;
        const g = await got.data();
        if (want) {
          expect(got.shape, label).toEqual(want.shape);
          expect(Array.from(g), label).toEqual(Array.from(await want.data()));
        }
        // float64 reference for leading-axes cases
        const lead = [...axes].sort((p, q) => p - q);
        if (lead.every((a, i) => a === i) && lead.length < shape.length) {
          const rows = shape.slice(0, lead.length).reduce((p, q) => p * q, 1);
          const n = xs.length / rows;
          let err = 0;
          for (let c = 0; c < n; c++) {
            let s = 0;
            for (let r = 0; r < rows; r++) s += xs[r * n + c]!;
            err = Math.max(err, Math.abs(g[c]! - s));
          }
          expect(err, label).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.sqrt(rows)));
          expect(got.shape, label).toEqual(keepDims ? shape.map((d, i) => (i < lead.length ? 1 : d)) : shape.slice(lead.length));
        }
        tf.dispose([got, ...(want ? [want] : [])]);
      }
      x.dispose();
    }
  });
});

describeBackend('row gathers (the sparse encoder)', () => {
  it.runIf(currentBackend === 'wasm')('wasm: gatherRowsFused equals gatherND, zero rows for −1, refuses out-of-range rows', async () => {
    const x = tf.randomNormal([37, 13], 0, 1, 'float32', 4);
    const pick = Int32Array.from([5, -1, 0, 36, 17, -1, 2]);
    const got = gatherRowsFused(x, pick)!;
    const padded = tf.concat([x, tf.zeros([1, 13])], 0);
    const want = tf.gatherND(padded, tf.tensor2d(Array.from(pick, (p) => (p < 0 ? 37 : p)), [pick.length, 1], 'int32'));
    expect(got.shape).toEqual([7, 13]);
    expect(Array.from(await got.data())).toEqual(Array.from(await want.data()));
    expect(() => gatherRowsFused(x, Int32Array.from([37]))).toThrow(/out of range for 37 rows/);
    expect(gatherRowsFused(tf.zeros([3, 2], 'int32'), Int32Array.from([0]))).toBeNull();
    tf.dispose([x, got, padded, want]);
  });
});

describeBackend('per-image broadcasts and sums of squares (GRN)', () => {
  it('plans one group per image only against [B, 1, …, 1, C]', () => {
    expect(broadcastPlan([8, 56, 56, 40], [8, 1, 1, 40])).toEqual({ groups: 8, rows: 3136, n: 40 });
    expect(broadcastPlan([8, 56, 56, 40], [1, 1, 1, 40])).toEqual({ groups: 1, rows: 8 * 3136, n: 40 });
    expect(broadcastPlan([8, 56, 56, 40], [8, 56, 1, 40])).toBeNull();
    expect(broadcastPlan([8, 1, 1, 40], [8, 1, 1, 40])).toBeNull();
  });

  it('per-image Multiply/Add equal tfjs (bit for bit on wasm)', async () => {
    const x = tf.randomNormal([3, 5, 7, 13], 0, 1, 'float32', 5);
    const v = tf.randomNormal([3, 1, 1, 13], 0, 1, 'float32', 6);
    for (const name of ['Add', 'Multiply'] as const) {
      const got = tf.engine().runKernel(name, { a: v, b: x }) as tf.Tensor;
      const ref = originalWasmBinary(name);
      const want = ref
        ? tf.engine().makeTensorFromTensorInfo(ref({ inputs: { a: v, b: x }, backend: tf.backend(), attrs: {} }) as tf.TensorInfo)
        : tf.engine().runKernel(name, { a: v, b: x }) as tf.Tensor;
      expect(Array.from(await got.data()), name).toEqual(Array.from(await want.data()));
      tf.dispose([got, want]);
    }
    tf.dispose([x, v]);
  });

  it('sumOfSquaresOverPositions: value against float64, gradient 2·x·dy, odd widths, no leaks', async () => {
    for (const shape of [[2, 3, 4, 5], [3, 7, 16], [1, 9, 9, 40], [2, 1, 33]] as const) {
      const x = tf.randomNormal([...shape], 0, 1, 'float32', shape[2]);
      const xs = (await x.data()) as Float32Array;
      const [B, C] = [shape[0], shape[shape.length - 1]!];
      const P = xs.length / (B * C);
      const before = tf.memory().numTensors;
      const y = sumOfSquaresOverPositions(x);
      expect(y.shape).toEqual([B, ...shape.slice(1, -1).map(() => 1), C]);
      const ys = (await y.data()) as Float32Array;
      for (let b = 0; b < B; b++) {
        for (let c = 0; c < C; c++) {
          let s = 0;
          for (let p = 0; p < P; p++) s += xs[(b * P + p) * C + c]! ** 2;
          expect(Math.abs(ys[b * C + c]! - s), `${shape} b${b} c${c}`).toBeLessThanOrEqual(P * 2 ** -23 * s + 1e-30);
        }
      }
      const dy = tf.randomNormal(y.shape, 0, 1, 'float32', 9);
      const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(sumOfSquaresOverPositions(t), dy)))(x);
      const want = tf.tidy(() => tf.mul(tf.mul(x, 2), dy));
      expect(Array.from(await g.data())).toEqual(Array.from(await want.data()));
      tf.dispose([y, g, want, dy]);
      expect(tf.memory().numTensors).toBe(before);
      x.dispose();
    }
  });
});
