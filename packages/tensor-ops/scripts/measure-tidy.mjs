#!/usr/bin/env node
// Peak tensor memory of a ViT-like forward: one tf.tidy per block vs one tf.tidy around the whole forward.
//
//   npm run build -w @softbias/tensor-ops && node packages/tensor-ops/scripts/measure-tidy.mjs [--backend wasm]
//     [--batch 8] [--depth 6] [--dim 192] [--heads 3] [--img 224] [--patch 16]
//
// The peak is tfjs' own accounting (tf.profile → peakBytes: the high-water mark of the bytes held by live
// tensors while the function runs), minus what was live before (weights and input). A measurement, not a test.
import * as tf from '@tensorflow/tfjs-core';
import { setupBackend, Module, ModuleList, Linear, LayerNorm, Mlp, PatchEmbed, Rng } from '@softbias/tensor-ops';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const cfg = {
  backend: args.backend ?? 'wasm',
  batch: Number(args.batch ?? 8),
  depth: Number(args.depth ?? 6),
  dim: Number(args.dim ?? 192),
  heads: Number(args.heads ?? 3),
  img: Number(args.img ?? 224),
  patch: Number(args.patch ?? 16),
};

/** Plain multi-head self-attention from the shared Linear (per-head 2-D matmuls, as on the wasm fast path). */
class Attention extends Module {
  constructor(dim, heads, rng) {
    super();
    this.heads = heads;
    this.qkv = this.registerModule('qkv', new Linear(dim, 3 * dim, { bias: false, rng }));
    this.proj = this.registerModule('proj', new Linear(dim, dim, { rng }));
  }
  forward(x) {
    const [B, N, C] = x.shape;
    const hd = C / this.heads;
    const qkv = tf.reshape(this.qkv.forward(x), [B * N, 3 * C]);
    const outs = [];
    for (let b = 0; b < B; b++) {
      const rows = tf.slice(qkv, [b * N, 0], [N, 3 * C]);
      const perHead = [];
      for (let h = 0; h < this.heads; h++) {
        const q = tf.slice(rows, [0, h * hd], [N, hd]);
        const k = tf.slice(rows, [0, C + h * hd], [N, hd]);
        const v = tf.slice(rows, [0, 2 * C + h * hd], [N, hd]);
        const attn = tf.softmax(tf.mul(tf.matMul(q, tf.transpose(k)), 1 / Math.sqrt(hd)));
        perHead.push(tf.matMul(attn, v));
      }
      outs.push(tf.concat(perHead, 1));
    }
    return this.proj.forward(tf.reshape(tf.concat(outs, 0), [B, N, C]));
  }
}

class Block extends Module {
  constructor(dim, heads, rng) {
    super();
    this.norm1 = this.registerModule('norm1', new LayerNorm(dim));
    this.attn = this.registerModule('attn', new Attention(dim, heads, rng));
    this.norm2 = this.registerModule('norm2', new LayerNorm(dim));
    this.mlp = this.registerModule('mlp', new Mlp(dim, { rng }));
  }
  forward(x) {
    const y = tf.add(x, this.attn.forward(this.norm1.forward(x)));
    return tf.add(y, this.mlp.forward(this.norm2.forward(y)));
  }
}

class Vit extends Module {
  constructor(c) {
    super();
    const rng = new Rng(0);
    this.patchEmbed = this.registerModule(
      'patch_embed',
      new PatchEmbed({ imgSize: c.img, patchSize: c.patch, inChans: 3, embedDim: c.dim, rng }),
    );
    this.blocks = this.registerModule('blocks', new ModuleList(Array.from({ length: c.depth }, () => new Block(c.dim, c.heads, rng.fork()))));
    this.norm = this.registerModule('norm', new LayerNorm(c.dim));
  }
  /** One tf.tidy per block: between blocks only the residual stream is alive. */
  forwardPerBlock(img) {
    let x = tf.tidy(() => this.patchEmbed.forward(img));
    for (const blk of this.blocks) {
      const next = tf.tidy(() => blk.forward(x));
      x.dispose();
      x = next;
    }
    const out = tf.tidy(() => this.norm.forward(x));
    x.dispose();
    return out;
  }
  /** One tf.tidy around everything: every intermediate lives until the end. */
  forwardOneTidy(img) {
    return tf.tidy(() => {
      let x = this.patchEmbed.forward(img);
      for (const blk of this.blocks) x = blk.forward(x);
      return this.norm.forward(x);
    });
  }
}

const info = await setupBackend(cfg.backend);
const model = new Vit(cfg);
const img = tf.randomNormal([cfg.batch, cfg.img, cfg.img, 3], 0, 1, 'float32', 1);
const MiB = 2 ** 20;

async function measure(name, fn) {
  // Warm up (kernel set-up, wasm heap growth), then measure.
  const w = fn();
  await w.data();
  w.dispose();
  const before = tf.memory();
  let out;
  const t0 = performance.now();
  const prof = await tf.profile(() => {
    out = fn();
    return out;
  });
  await out.data();
  const ms = performance.now() - t0;
  const peak = prof.peakBytes - before.numBytes;
  out.dispose();
  const after = tf.memory();
  if (after.numTensors !== before.numTensors) throw new Error(`${name}: leaked ${after.numTensors - before.numTensors} tensors`);
  return { name, peakMiB: peak / MiB, ms };
}

const per = await measure('tf.tidy per block', () => model.forwardPerBlock(img));
const one = await measure('one tf.tidy around the forward', () => model.forwardOneTidy(img));
const weightsMiB = model.numParameters() * 4 / MiB;
console.log(
  `backend ${info.backend}; ViT-like: batch ${cfg.batch}, ${cfg.img}×${cfg.img} / ${cfg.patch} → ` +
    `${(cfg.img / cfg.patch) ** 2} tokens, dim ${cfg.dim}, depth ${cfg.depth}, heads ${cfg.heads}; weights ${weightsMiB.toFixed(1)} MiB`,
);
for (const r of [per, one]) console.log(`  ${r.name.padEnd(32)} peak ${r.peakMiB.toFixed(1).padStart(8)} MiB above weights+input  (${r.ms.toFixed(0)} ms)`);
console.log(`  ratio one-tidy / per-block: ${(one.peakMiB / per.peakMiB).toFixed(2)}×`);
model.dispose();
img.dispose();
