/**
 * The row-broadcast Add/Multiply (broadcast.ts, broadcast.c): which shapes it takes, bit-for-bit equality with
 * tfjs' own kernel (one IEEE operation per element) on wasm at 1 and 2 threads, gradients unchanged.
 */
import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { fileURLToPath } from 'node:url';
import { describeBackend, currentBackend } from '@softbias/test-utils';
import { runTsInChild } from '../../../../test-utils/child.js';
import { rowBroadcastLength, originalWasmBinary } from './broadcast.js';

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
    expect(r.status, r.stderr).toBe(0);
    expect(r.result!.threads).toBe(2);
    for (const c of r.result!.results) expect(c.equal, c.label).toBe(true);
  });
});
