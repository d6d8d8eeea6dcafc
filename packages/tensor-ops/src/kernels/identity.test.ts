/**
 * Identity (tf.clone, and the copies tfjs makes of every tensor a gradient saves): values unchanged on every
 * backend; on wasm a clone shares the input's memory (no new buffer) and outlives the disposed original.
 */
import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend, currentBackend } from '@softbias/test-utils';

describeBackend('Identity', () => {
  it('a clone holds the same values and outlives its disposed original', async () => {
    const a = tf.tensor([1.5, -2, 3, 4], [2, 2]);
    const b = tf.clone(a);
    const i = tf.clone(tf.tensor([7, 8], [2], 'int32'));
    a.dispose();
    expect(Array.from(await b.data())).toEqual([1.5, -2, 3, 4]);
    expect(b.shape).toEqual([2, 2]);
    expect(Array.from(await i.data())).toEqual([7, 8]);
    expect(i.dtype).toBe('int32');
    tf.dispose([b, i]);
  });
  it.runIf(currentBackend === 'wasm')('wasm: a clone allocates no buffer; the memory goes with the last holder', () => {
    const be = tf.engine().backend as unknown as { numDataIds(): number };
    const a = tf.randomNormal([64, 64]);
    const ids = be.numDataIds();
    const b = tf.clone(a);
    expect(be.numDataIds(), 'no new backend buffer').toBe(ids);
    a.dispose();
    expect(be.numDataIds(), 'still held by the clone').toBe(ids);
    b.dispose();
    expect(be.numDataIds()).toBe(ids - 1);
    const s = tf.clone(tf.tensor(['x', 'y']));
    expect(s.dataSync()).toEqual(['x', 'y']);
    s.dispose();
  });
});
