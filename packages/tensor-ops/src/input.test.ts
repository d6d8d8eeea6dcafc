/** assertImageBatch: one InputError per wrong input, before any kernel runs, the same on every backend. */
import { it, expect } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { assertImageBatch, InputError } from '@softbias/tensor-ops';
import { describeBackend } from '@softbias/test-utils';

describeBackend('assertImageBatch', () => {
  it('accepts a live float32 batch; refuses each wrong input with its own message', () => {
    const ok = tf.zeros([2, 4, 4, 3]);
    expect(() => assertImageBatch(ok, { name: 'm.forward', channels: 3 })).not.toThrow();
    const cases: [unknown, RegExp, { channels?: number; model?: { isDisposed: boolean } }?][] = [
      [ok, /m\.forward: the model has been disposed/, { model: { isDisposed: true } }],
      [null, /m\.forward: expected a float32 tf\.Tensor of shape \[B, H, W, C\], got null$/],
      [[1, 2], /got a plain array \(length 2\); wrap it with tf\.tensor4d/],
      [{ shape: [1] }, /got an object that is not a tf\.Tensor \(Object\)/],
      [42, /got a number/],
      [tf.zeros([0, 4, 4, 3]), /the batch is empty \(shape \[0,4,4,3\]\)/],
      [tf.zeros([1, 0, 4, 3]), /the images are empty \(shape \[1,0,4,3\]\)/],
      [tf.zeros([1, 4, 4, 3], 'int32'), /expected float32 input, got int32 \[1,4,4,3\]/],
      [tf.zeros([1, 4, 4, 3], 'bool'), /expected float32 input, got bool/],
      [tf.zeros([4, 4, 3]), /expected NHWC images \[B, H, W, 3\], got a rank-3 tensor/, { channels: 3 }],
      [ok, /the model takes 1-channel images, got 3 channels/, { channels: 1 }],
    ];
    const gone = tf.zeros([1, 4, 4, 3]);
    gone.dispose();
    cases.push([gone, /the input tensor has been disposed/]);
    for (const [x, msg, extra] of cases) {
      let err: unknown;
      try {
        assertImageBatch(x, { name: 'm.forward', ...extra });
      } catch (e) {
        err = e;
      }
      expect(err, String(msg)).toBeInstanceOf(InputError);
      expect(err).toBeInstanceOf(TypeError);
      expect((err as Error).message).toMatch(msg);
    }
    tf.dispose(cases.map(([x]) => x).filter((x): x is tf.Tensor => x instanceof tf.Tensor && !x.isDisposed));
  });
});
