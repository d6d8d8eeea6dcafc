/** The FCMAE's 1×1 convolution (`proj`, `pred`). */
import * as tf from '@tensorflow/tfjs-core';
import { Module, zeros, type Parameter } from '@softbias/tensor-ops';

/** A 1×1 conv (PyTorch `Conv2d(in, out, 1)`, weight `(out, in, 1, 1)` held as `[1, 1, in, out]`) on NHWC maps. */
export class Conv1x1 extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter;
  constructor(
    readonly inChans: number,
    readonly outChans: number,
  ) {
    super();
    this.weight = this.registerParameter('weight', zeros([1, 1, inChans, outChans]), { layout: 'conv' });
    this.bias = this.registerParameter('bias', zeros([outChans]), { noWeightDecay: true });
  }
  /** `[B, H, W, in]` → `[B, H, W, out]` as one 2-D matmul. */
  forward(x: tf.Tensor): tf.Tensor {
    if (x.rank !== 4 || x.shape[3] !== this.inChans) {
      throw new Error(`Conv1x1: expected input of shape [B, H, W, ${this.inChans}], got [${x.shape}]`);
    }
    const [B, H, W] = x.shape as [number, number, number, number];
    return tf.tidy(() => {
      const y = tf.add(tf.matMul(tf.reshape(x, [B * H * W, this.inChans]), tf.reshape(this.weight.value, [this.inChans, this.outChans])), this.bias.value);
      return tf.reshape(y, [B, H, W, this.outChans]);
    });
  }
}

