/**
 * No tensor leaks, on every backend: each shared layer leaves exactly its output behind; a 2-block toy model
 * (one tf.tidy per block) runs its forward and a training step 20 times and tf.memory().numTensors returns to
 * its baseline every time, in eval and in train mode (dropout / drop-path masks included).
 */
import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend } from '@softbias/test-utils';
import {
  Module,
  ModuleList,
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
  Rng,
} from '@softbias/tensor-ops';

class ToyBlock extends Module {
  readonly norm1: LayerNorm;
  readonly mlp: Mlp;
  readonly dropPath: DropPath;
  constructor(dim: number, rng: Rng) {
    super();
    this.norm1 = this.registerModule('norm1', new LayerNorm(dim));
    this.mlp = this.registerModule('mlp', new Mlp(dim, { hiddenFeatures: 2 * dim, drop: 0.1, rng }));
    this.dropPath = this.registerModule('drop_path', new DropPath(0.2, rng.fork()));
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.add(x, this.dropPath.forward(this.mlp.forward(this.norm1.forward(x))));
  }
}

/**
 * patch_embed → 2 blocks → norm. Sizes keep every matmul (and its gradients) above 128 output elements: below
 * that, tfjs-webgpu picks its reduce program, which SwiftShader runs ~100× slower.
 */
class Toy extends Module {
  readonly patchEmbed: PatchEmbed;
  readonly blocks: ModuleList<ToyBlock>;
  readonly norm: LayerNorm;
  constructor(rng: Rng, dim = 16) {
    super();
    this.patchEmbed = this.registerModule('patch_embed', new PatchEmbed({ imgSize: 8, patchSize: 2, inChans: 3, embedDim: dim, rng }));
    this.blocks = this.registerModule('blocks', new ModuleList([new ToyBlock(dim, rng.fork()), new ToyBlock(dim, rng.fork())]));
    this.norm = this.registerModule('norm', new LayerNorm(dim));
  }
  /** One tf.tidy per block: only the residual stream survives between blocks. */
  forward(img: tf.Tensor): tf.Tensor {
    let x = tf.tidy(() => this.patchEmbed.forward(img));
    for (const block of this.blocks) {
      const next = tf.tidy(() => block.forward(x));
      x.dispose();
      x = next;
    }
    const out = tf.tidy(() => this.norm.forward(x));
    x.dispose();
    return out;
  }
}

describeBackend('memory: layers leave only their output', () => {
  it('every shared layer, in eval and train mode, called outside any tidy', async () => {
    const rng = new Rng(1);
    const x3 = tf.randomNormal([2, 4, 8], 0, 1, 'float32', 1);
    const img = tf.randomNormal([2, 9, 11, 3], 0, 1, 'float32', 2);
    const w = tf.randomNormal([3, 3, 3, 5], 0, 1, 'float32', 3);
    const lin = new Linear(8, 6, { rng });
    const ln = new LayerNorm(8);
    const mlp = new Mlp(8, { drop: 0.3, rng });
    const drop = new Dropout(0.3, rng.fork());
    const dp = new DropPath(0.3, rng.fork());
    const peTokens = new PatchEmbed({ imgSize: 8, patchSize: 4, inChans: 3, embedDim: 6, rng });
    const peNhwc = new PatchEmbed({ imgSize: 8, patchSize: 4, inChans: 3, embedDim: 6, output: 'nhwc', rng });
    const img8 = tf.slice(img, [0, 0, 0, 0], [2, 8, 8, 3]);
    const calls: [string, () => tf.Tensor][] = [
      ['Linear', () => lin.forward(x3)],
      ['linear()', () => linear(x3, lin.weight.value, lin.bias!.value)],
      ['LayerNorm', () => ln.forward(x3)],
      ['layerNorm()', () => layerNorm(x3, ln.weight.value, ln.bias.value)],
      ['gelu', () => gelu(x3)],
      ['Mlp', () => mlp.forward(x3)],
      ['Dropout', () => drop.forward(x3)],
      ['DropPath', () => dp.forward(x3)],
      ['PatchEmbed tokens', () => peTokens.forward(img8)],
      ['PatchEmbed nhwc', () => peNhwc.forward(img8)],
      ['nonOverlappingConv2d (floored)', () => nonOverlappingConv2d(img, w, null, 3)],
    ];
    const modules = [lin, ln, mlp, drop, dp, peTokens, peNhwc];
    for (const mode of ['eval', 'train'] as const) {
      for (const m of modules) m.train(mode === 'train');
      for (const [name, call] of calls) {
        const before = tf.memory().numTensors;
        const y = call();
        expect(tf.memory().numTensors - before, `${name} (${mode}): new tensors`).toBe(y === x3 ? 0 : 1);
        await y.data();
        if (y !== x3) y.dispose();
        expect(tf.memory().numTensors, `${name} (${mode}) after dispose`).toBe(before);
      }
    }
    for (const m of modules) m.dispose();
    tf.dispose([x3, img, w, img8]);
  });
});

describeBackend('memory: a 2-block model, 20 forwards and 20 training steps', () => {
  it('tf.memory().numTensors returns to its baseline after every forward and every step', async () => {
    const start = tf.memory().numTensors;
    const model = new Toy(new Rng(5));
    const img = tf.randomNormal([2, 8, 8, 3], 0, 1, 'float32', 7);
    const target = tf.randomNormal([2, 16, 16], 0, 1, 'float32', 8);
    const baseline = tf.memory().numTensors;
    const counts: number[] = [];

    for (const mode of ['eval', 'train'] as const) {
      model.train(mode === 'train');
      for (let i = 0; i < 20; i++) {
        const y = model.forward(img);
        expect(y.shape).toEqual([2, 16, 16]);
        await y.data();
        y.dispose();
        counts.push(tf.memory().numTensors - baseline);
      }
    }
    expect(counts.every((c) => c === 0), `leaked per forward: ${counts}`).toBe(true);

    model.train();
    const vars = model.parameters().map((p) => p.variable);
    const lossFn = () => tf.tidy(() => tf.mean(tf.square(tf.sub(model.forward(img), target)))) as tf.Scalar;
    const losses: number[] = [];
    counts.length = 0;
    for (let step = 0; step < 20; step++) {
      const { value, grads } = tf.variableGrads(lossFn, vars);
      losses.push((await value.data())[0]!);
      tf.tidy(() => {
        for (const v of vars) v.assign(tf.sub(v, tf.mul(grads[v.name]!, 0.05)));
      });
      value.dispose();
      tf.dispose(Object.values(grads));
      counts.push(tf.memory().numTensors - baseline);
    }
    expect(counts.every((c) => c === 0), `leaked per training step: ${counts}`).toBe(true);
    expect(losses.every(Number.isFinite)).toBe(true);
    model.dispose();
    tf.dispose([img, target]);
    expect(tf.memory().numTensors).toBe(start);
  });
});
