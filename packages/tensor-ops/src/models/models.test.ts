/** ClassifierHead in a replaceable slot (Module.replaceModule) and the shared preprocess, on every backend. */
import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend } from '@softbias/test-utils';
import { LayerNorm, Linear, Module, Rng } from '@softbias/tensor-ops';
import { ClassifierHead, IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, imagenetConfig, preprocess } from '@softbias/tensor-ops/models';

class Net extends Module {
  head: ClassifierHead;
  constructor() {
    super();
    this.registerModule('norm', new LayerNorm(4));
    this.head = this.registerModule('head', new ClassifierHead(4, 3, { rng: new Rng(1) }));
    this.registerModule('after', new LayerNorm(2));
  }
}

describeBackend('model contract layers', () => {
  it('ClassifierHead initialises like Linear (same seed, same numbers), scales, and is the identity at 0 classes', async () => {
    const lin = new Linear(4, 3, { rng: new Rng(7) });
    const head = new ClassifierHead(4, 3, { rng: new Rng(7) });
    expect(Array.from(await head.weight.value.data())).toEqual(Array.from(await lin.weight.value.data()));
    expect(head.namedParameters().map(([k, p]) => [k, p.torchShape])).toEqual([['weight', [3, 4]], ['bias', [3]]]);
    const scaled = new ClassifierHead(4, 3, { rng: new Rng(7), scale: 0.5 });
    const a = await scaled.weight.value.data();
    const b = await lin.weight.value.data();
    for (let i = 0; i < a.length; i++) expect(a[i]).toBeCloseTo(b[i]! * 0.5, 7);
    const x = tf.ones([2, 4]);
    const y = head.forward(x);
    const z = lin.forward(x);
    expect(Array.from(await y.data())).toEqual(Array.from(await z.data()));
    const id = new ClassifierHead(4, 0);
    expect(id.isIdentity).toBe(true);
    expect(id.namedParameters()).toEqual([]);
    expect(id.forward(x)).toBe(x);
    expect(() => id.weight).toThrow(/identity/);
    expect(() => new ClassifierHead(4, -1)).toThrow(RangeError);
    tf.dispose([x, y, z]);
    for (const m of [lin, head, scaled, id]) m.dispose();
  });

  it('replaceModule keeps the slot in state-dict order, disposes the old child, takes the parent mode', () => {
    const before = tf.memory().numTensors;
    const net = new Net();
    const old = net.head;
    net.train();
    net.head = net.replaceModule('head', new ClassifierHead(4, 5));
    expect(old.isDisposed).toBe(true);
    expect(net.head.training).toBe(true);
    expect(net.namedParameters().map(([k]) => k)).toEqual(['norm.weight', 'norm.bias', 'head.weight', 'head.bias', 'after.weight', 'after.bias']);
    net.head = net.replaceModule('head', new ClassifierHead(4, 0));
    expect(net.namedParameters().map(([k]) => k)).toEqual(['norm.weight', 'norm.bias', 'after.weight', 'after.bias']);
    expect(() => net.replaceModule('nope', new ClassifierHead(4, 1))).toThrow(/no child module 'nope'; children: norm, head, after/);
    const kept = net.replaceModule('after', new LayerNorm(2), { dispose: false });
    expect(kept.isDisposed).toBe(false);
    net.dispose();
    // The leftover ClassifierHead(4, 1) of the refused call and the kept LayerNorm are not in the tree.
    expect(tf.memory().numTensors).toBeGreaterThanOrEqual(before);
  });

  it('preprocess: exact centre crop where no resize, constant stays constant, batches image by image', async () => {
    const cfg = imagenetConfig({ firstConv: 'x', classifier: 'y' });
    const H = 256;
    const W = 300;
    const px = new Uint8Array(H * W * 3);
    for (let i = 0; i < px.length; i++) px[i] = (i * 13 + (i >> 7)) % 256;
    const y = preprocess({ data: px, width: W, height: H }, cfg);
    expect(y.shape).toEqual([1, 224, 224, 3]);
    const yd = await y.data();
    const [top, left] = [16, 38];
    for (const [r, c, k] of [[0, 0, 0], [100, 17, 2], [223, 223, 1]] as const) {
      const want = (px[((r + top) * W + c + left) * 3 + k]! / 255 - IMAGENET_DEFAULT_MEAN[k]!) / IMAGENET_DEFAULT_STD[k]!;
      expect(yd[(r * 224 + c) * 3 + k]).toBeCloseTo(want, 5);
    }
    // The tensor route gives the same numbers as the host route.
    const t = tf.tensor3d(px, [H, W, 3], 'int32');
    const yt = preprocess(t, cfg);
    const ytd = await yt.data();
    let worst = 0;
    for (let i = 0; i < yd.length; i++) worst = Math.max(worst, Math.abs(yd[i]! - ytd[i]!));
    expect(worst).toBeLessThan(1e-4);
    // A batch [B, H, W, C] of float32 0–1 images, resized: each image alone; constants stay constant.
    const batch = tf.stack([tf.fill([50, 80, 3], 0.25), tf.fill([50, 80, 3], 0.75)]);
    const z = preprocess(batch, { pretrainedConfig: cfg }, { size: 32, cropPct: 1 });
    expect(z.shape).toEqual([2, 32, 32, 3]);
    const zd = await z.data();
    expect(zd[0]).toBeCloseTo((0.25 - 0.485) / 0.229, 5);
    expect(zd[32 * 32 * 3]).toBeCloseTo((0.75 - 0.485) / 0.229, 5);
    expect(() => preprocess(tf.zeros([10, 10]), cfg)).toThrow(/\[H, W, 1\|3\|4\]/);
    expect(() => preprocess({ data: px, width: W, height: H }, cfg, { cropPct: 0 })).toThrow(/cropPct/);
    expect(() => preprocess({ data: px, width: 10, height: 10 }, cfg)).toThrow(/expected 10×10×\(1, 3 or 4\) values/);
    tf.dispose([y, t, yt, batch, z]);
  });
});
