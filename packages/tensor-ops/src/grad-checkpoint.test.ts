/**
 * gradCheckpoint: the same loss, gradients and random stream as without it (bit for bit), less peak memory for a
 * stack of blocks, no leaked tensors, and a plain call outside gradient recording.
 */
import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend, expectNoLeak } from '@softbias/test-utils';
import { Module, ModuleList } from './module.js';
import { Linear } from './layers/linear.js';
import { gelu } from './layers/activation.js';
import { DropPath, Dropout } from './layers/dropout.js';
import { Rng } from './rng.js';
import { gradCheckpoint } from './grad-checkpoint.js';

class Block extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  readonly drop: Dropout;
  readonly path: DropPath;
  constructor(c: number, rng: Rng) {
    super();
    this.fc1 = this.registerModule('fc1', new Linear(c, 2 * c, { rng: rng.fork(), init: { kind: 'torch' } }));
    this.fc2 = this.registerModule('fc2', new Linear(2 * c, c, { rng: rng.fork(), init: { kind: 'torch' } }));
    this.drop = this.registerModule('drop', new Dropout(0.25, rng.fork()));
    this.path = this.registerModule('path', new DropPath(0.5, rng.fork()));
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => tf.add(x, this.path.forward(this.fc2.forward(this.drop.forward(gelu(this.fc1.forward(x)))))));
  }
}

class Stack extends Module {
  readonly blocks: ModuleList<Block>;
  checkpointing = false;
  constructor(depth: number, c: number) {
    super();
    const rng = new Rng(3);
    this.blocks = this.registerModule('blocks', new ModuleList(Array.from({ length: depth }, () => new Block(c, rng))));
  }
  forward(x: tf.Tensor): tf.Tensor {
    let h = x;
    for (let i = 0; i < this.blocks.length; i++) {
      const b = this.blocks.at(i);
      const prev = h;
      h = this.checkpointing ? gradCheckpoint(b, h, (t) => b.forward(t)) : b.forward(h);
      if (prev !== x) prev.dispose();
    }
    return h;
  }
}

async function step(model: Stack, x: tf.Tensor, checkpointing: boolean) {
  model.checkpointing = checkpointing;
  const vars = model.parameters().map((p) => p.variable);
  let peak = 0;
  let result: { loss: number; grads: Float32Array[] } | null = null;
  const prof = await tf.profile(async () => {
    const { value, grads } = tf.variableGrads(() => tf.mean(tf.square(model.forward(x))) as tf.Scalar, vars);
    result = { loss: (await value.data())[0]!, grads: await Promise.all(vars.map(async (v) => (await grads[v.name]!.data()) as Float32Array)) };
    tf.dispose([value, ...Object.values(grads)]);
  });
  peak = prof.peakBytes;
  const next = model.blocks.at(0).path.rng.random();
  return { ...result!, peak, next };
}

describeBackend('gradCheckpoint (per-block recomputation)', () => {
  it('same loss, gradients and random stream as without it; less peak memory; no leaks', async () => {
    const x = tf.randomNormal([64, 48], 0, 1, 'float32', 1);
    const a = new Stack(6, 48).train();
    const b = new Stack(6, 48).train();
    const plain = await step(a, x, false);
    let ck: Awaited<ReturnType<typeof step>> | null = null;
    await expectNoLeak(async () => {
      ck = await step(b, x, true);
    }, 'checkpointed step');
    expect(ck!.loss).toBe(plain.loss);
    for (let i = 0; i < plain.grads.length; i++) expect(ck!.grads[i], `gradient ${i}`).toEqual(plain.grads[i]);
    expect(ck!.next, 'the random stream continues as without recomputation').toBe(plain.next);
    expect(ck!.peak, `peak bytes ${ck!.peak} vs ${plain.peak}`).toBeLessThan(0.75 * plain.peak);
    // Outside a gradient it is the plain forward.
    b.eval();
    const y1 = await tf.tidy(() => b.forward(x)).data();
    b.checkpointing = false;
    const y0 = await tf.tidy(() => b.forward(x)).data();
    expect(y1).toEqual(y0);
    tf.dispose(x);
    a.dispose();
    b.dispose();
  });
});
