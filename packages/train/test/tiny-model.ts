/**
 * A tiny ViT built only from @softbias/tensor-ops layers, for the training tests (the real models live in
 * @softbias/models-convit / models-convnextv2): patch embedding, a position embedding (no weight decay),
 * pre-norm blocks of multi-head self-attention and MLP with drop path, mean pooling, norm, head.
 */
import * as tf from '@tensorflow/tfjs-core';
import { DropPath, LayerNorm, Linear, Mlp, Module, ModuleList, PatchEmbed, Rng, truncNormal, type Parameter } from '@softbias/tensor-ops';

export interface TinyViTOptions {
  imgSize: number;
  patchSize: number;
  inChans: number;
  dim: number;
  depth: number;
  heads: number;
  numClasses: number;
  dropPath?: number;
  seed?: number;
}

class Attention extends Module {
  readonly qkv: Linear;
  readonly proj: Linear;
  constructor(
    readonly dim: number,
    readonly heads: number,
    rng: Rng,
  ) {
    super();
    this.qkv = this.registerModule('qkv', new Linear(dim, 3 * dim, { rng }));
    this.proj = this.registerModule('proj', new Linear(dim, dim, { rng }));
  }
  forward(x: tf.Tensor): tf.Tensor {
    const [B, N, C] = x.shape as [number, number, number];
    const H = this.heads;
    const d = C / H;
    return tf.tidy(() => {
      const qkv = this.qkv.forward(x); // [B, N, 3C]
      const split = (i: number) => tf.transpose(tf.reshape(tf.slice(qkv, [0, 0, i * C], [B, N, C]), [B, N, H, d]), [0, 2, 1, 3]);
      const q = tf.mul(split(0), 1 / Math.sqrt(d));
      const k = split(1);
      const v = split(2);
      const attn = tf.softmax(tf.matMul(q, k, false, true));
      const o = tf.reshape(tf.transpose(tf.matMul(attn, v), [0, 2, 1, 3]), [B, N, C]);
      return this.proj.forward(o);
    });
  }
}

class Block extends Module {
  readonly norm1: LayerNorm;
  readonly attn: Attention;
  readonly norm2: LayerNorm;
  readonly mlp: Mlp;
  readonly dropPath: DropPath;
  constructor(dim: number, heads: number, dropPath: number, rng: Rng) {
    super();
    this.norm1 = this.registerModule('norm1', new LayerNorm(dim));
    this.attn = this.registerModule('attn', new Attention(dim, heads, rng));
    this.norm2 = this.registerModule('norm2', new LayerNorm(dim));
    this.mlp = this.registerModule('mlp', new Mlp(dim, { hiddenFeatures: 2 * dim, rng }));
    this.dropPath = this.registerModule('drop_path', new DropPath(dropPath, rng.fork()));
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const a = tf.add(x, this.dropPath.forward(this.attn.forward(this.norm1.forward(x))));
      return tf.add(a, this.dropPath.forward(this.mlp.forward(this.norm2.forward(a))));
    });
  }
}

export class TinyViT extends Module {
  readonly patchEmbed: PatchEmbed;
  readonly posEmbed: Parameter;
  readonly blocks: ModuleList<Block>;
  readonly norm: LayerNorm;
  readonly head: Linear;
  constructor(readonly opts: TinyViTOptions) {
    super();
    const rng = new Rng(opts.seed ?? 0);
    this.patchEmbed = this.registerModule(
      'patch_embed',
      new PatchEmbed({ imgSize: opts.imgSize, patchSize: opts.patchSize, inChans: opts.inChans, embedDim: opts.dim, rng }),
    );
    this.posEmbed = this.registerParameter('pos_embed', truncNormal([1, this.patchEmbed.numPatches, opts.dim], rng, 0.02), { noWeightDecay: true });
    const blocks = new ModuleList<Block>();
    for (let i = 0; i < opts.depth; i++) blocks.push(new Block(opts.dim, opts.heads, ((opts.dropPath ?? 0) * i) / Math.max(1, opts.depth - 1), rng));
    this.blocks = this.registerModule('blocks', blocks);
    this.norm = this.registerModule('norm', new LayerNorm(opts.dim));
    this.head = this.registerModule('head', new Linear(opts.dim, opts.numClasses, { rng }));
  }
  forward(x: tf.Tensor): tf.Tensor {
    let t = tf.tidy(() => tf.add(this.patchEmbed.forward(x), this.posEmbed.value));
    for (const b of this.blocks) {
      const n = b.forward(t);
      t.dispose();
      t = n;
    }
    return tf.tidy(() => {
      const y = this.head.forward(this.norm.forward(tf.mean(t, 1)));
      t.dispose();
      return y;
    });
  }
}
