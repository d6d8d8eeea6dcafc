import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend, expectClose, defaultAtol, expectNoLeak, loadFixture, fixtureTensor } from '@softbias/test-utils';
import { LayerNorm, Mlp, Rng } from '@softbias/tensor-ops';
import { Mhsa, nonlocality, type AttentionStrategy } from './index.js';
import { mhsaRef, nonlocalityRef, randomF32, randomizeParams } from '../test/reference.js';
import { checkMixerGradients } from '../test/grad-check.js';

const strategies: AttentionStrategy[] = ['per-head', 'batched', 'auto'];

describeBackend('Mhsa', () => {
  it('has timm names, shapes and init', async () => {
    const m = new Mhsa({ dim: 12, numHeads: 3, rng: new Rng(1) });
    expect(m.kind).toBe('mhsa');
    expect(m.namedParameters().map(([n, p]) => [n, p.torchShape])).toEqual([
      ['qkv.weight', [36, 12]],
      ['proj.weight', [12, 12]],
      ['proj.bias', [12]],
    ]);
    const withBias = new Mhsa({ dim: 12, numHeads: 3, qkvBias: true });
    expect(withBias.namedParameters().map(([n]) => n)).toEqual(['qkv.weight', 'qkv.bias', 'proj.weight', 'proj.bias']);
    const w = await m.qkv.weight.value.data();
    let s2 = 0;
    for (const v of w) s2 += v * v;
    expect(Math.sqrt(s2 / w.length)).toBeGreaterThan(0.015);
    expect(Math.sqrt(s2 / w.length)).toBeLessThan(0.025);
    expect(Array.from(await m.proj.bias!.value.data())).toEqual(new Array(12).fill(0));
    m.dispose();
    withBias.dispose();
  });

  for (const strategy of strategies) {
    for (const prefix of [0, 1]) {
      it(`matches the float64 definition (${strategy}, ${prefix} prefix token)`, async () => {
        const rng = new Rng(10 + prefix);
        const [B, grid, C, H] = [2, [2, 3] as const, 8, 2];
        const N = prefix + grid[0] * grid[1];
        const m = new Mhsa({ dim: C, numHeads: H, qkvBias: true, strategy, rng });
        const p = randomizeParams(m, rng);
        const x = randomF32(B * N * C, rng);
        const tokens = tf.tensor(x, [B, N, C]);
        const want = mhsaRef(Float64Array.from(x), B, N, C, H, p);
        const input = { tokens, grid, numPrefixTokens: prefix };
        await expectNoLeak(async () => {
          const y = m.forward(input);
          await expectClose(y, want.out, defaultAtol(want.out), `mhsa ${strategy} p${prefix}: out`, [B, N, C]);
          y.dispose();
          const a = m.attentionMap(input);
          await expectClose(a, want.attn, 1e-5, `mhsa ${strategy} p${prefix}: attention`, [B, H, N, N]);
          a.dispose();
        });
        tokens.dispose();
        m.dispose();
      });
    }
  }

  it('attention rows sum to 1', async () => {
    const rng = new Rng(3);
    const m = new Mhsa({ dim: 16, numHeads: 4, rng, strategy: 'per-head' });
    randomizeParams(m, rng, 1);
    const tokens = tf.tensor(randomF32(2 * 17 * 16, rng, 2), [2, 17, 16]);
    const a = m.attentionMap({ tokens, grid: [4, 4], numPrefixTokens: 1 });
    const sums = tf.sum(a, -1);
    await expectClose(sums, new Float32Array(2 * 4 * 17).fill(1), 1e-5, 'mhsa: attention row sums', [2, 4, 17]);
    tf.dispose([a, sums, tokens]);
    m.dispose();
  });

  for (const strategy of ['per-head', 'batched'] as const) {
    it(`gradients match finite differences of the definition (${strategy})`, async () => {
      const rng = new Rng(20);
      const [B, grid, C, H, prefix] = [2, [2, 2] as const, 6, 2, 1];
      const N = prefix + 4;
      const m = new Mhsa({ dim: C, numHeads: H, qkvBias: true, strategy, rng });
      const params = randomizeParams(m, rng);
      await checkMixerGradients({
        mixer: m,
        params,
        x: randomF32(B * N * C, rng),
        shape: [B, N, C],
        grid,
        prefix,
        ref: (x, p) => mhsaRef(x, B, N, C, H, p).out,
        label: `mhsa ${strategy}`,
        rng,
      });
      m.dispose();
    });
  }

  it('rejects bad input naming the expected shape', () => {
    const m = new Mhsa({ dim: 8, numHeads: 2 });
    const bad = tf.zeros([2, 5, 6]);
    expect(() => m.forward({ tokens: bad, grid: [2, 2], numPrefixTokens: 1 })).toThrow(/expected tokens \[B, 5, 8\]/);
    const rank2 = tf.zeros([5, 8]);
    expect(() => m.forward({ tokens: rank2, grid: [2, 2], numPrefixTokens: 1 })).toThrow(/\[B, 5, 8\]/);
    const wrongN = tf.zeros([2, 4, 8]);
    expect(() => m.attentionMap({ tokens: wrongN, grid: [2, 2], numPrefixTokens: 1 })).toThrow(/\[B, 5, 8\].*got \[2,4,8\]/);
    expect(() => new Mhsa({ dim: 10, numHeads: 3 })).toThrow(/divisible/);
    tf.dispose([bad, rank2, wrongN]);
    m.dispose();
  });

  it('nonlocality matches a loop (with and without a prefix token)', async () => {
    const rng = new Rng(4);
    for (const prefix of [0, 1]) {
      const grid = [3, 4] as const;
      const [B, H] = [3, 2];
      const N = prefix + 12;
      const logits = tf.tensor(randomF32(B * H * N * N, rng, 2), [B, H, N, N]);
      const attn = tf.softmax(logits);
      const want = nonlocalityRef(await attn.data(), B, H, grid, prefix);
      await expectNoLeak(async () => {
        const d = nonlocality(attn, grid, prefix);
        await expectClose(d, want, 1e-5, `nonlocality p${prefix}`, [H]);
        d.dispose();
        // A single [heads, N, N] map is the batch of one.
        const one = tf.slice(attn, [0, 0, 0, 0], [1, H, N, N]);
        const single = tf.squeeze(one, [0]);
        const d1 = nonlocality(single, grid, prefix);
        await expectClose(d1, nonlocalityRef(await one.data(), 1, H, grid, prefix), 1e-5, `nonlocality rank 3 p${prefix}`);
        tf.dispose([one, single, d1]);
      });
      expect(() => nonlocality(attn, [3, 3], prefix)).toThrow(/expected attention \[B, heads, \d+, \d+\]/);
      tf.dispose([logits, attn]);
    }
  });
});

describeBackend('Mhsa vs the convit_micro fixture (block 3 is MHSA)', () => {
  const f = loadFixture('convit_micro');
  const w = (k: string) => f.weights.get(k)!;
  const C = f.config.embed_dim as number;
  const H = f.config.num_heads as number;
  const grid = [8, 8] as const;

  function build(strategy: AttentionStrategy) {
    const m = new Mhsa({ dim: C, numHeads: H, strategy });
    m.loadStateDict({
      'qkv.weight': w('blocks.3.attn.qkv.weight'),
      'proj.weight': w('blocks.3.attn.proj.weight'),
      'proj.bias': w('blocks.3.attn.proj.bias'),
    });
    return m;
  }
  /** block 3's input: block2_out with the class token concatenated at index 0. */
  function blockInput(): tf.Tensor3D {
    return tf.tidy(() => {
      const x = fixtureTensor(f.get('block2_out'));
      const cls = tf.tile(fixtureTensor(w('cls_token')), [x.shape[0]!, 1, 1]);
      return tf.concat([cls, x], 1) as tf.Tensor3D;
    });
  }
  function norm(name: string): LayerNorm {
    const n = new LayerNorm(C);
    n.loadStateDict({ weight: w(`blocks.3.${name}.weight`), bias: w(`blocks.3.${name}.bias`) });
    return n;
  }

  for (const strategy of ['per-head', 'batched'] as const) {
    it(`attention map of image 0 and the block output (${strategy})`, async () => {
      const m = build(strategy);
      const norm1 = norm('norm1');
      const norm2 = norm('norm2');
      const mlp = new Mlp(C, { hiddenFeatures: 4 * C });
      mlp.loadStateDict({
        'fc1.weight': w('blocks.3.mlp.fc1.weight'),
        'fc1.bias': w('blocks.3.mlp.fc1.bias'),
        'fc2.weight': w('blocks.3.mlp.fc2.weight'),
        'fc2.bias': w('blocks.3.mlp.fc2.bias'),
      });
      const x = blockInput();
      await expectNoLeak(async () => {
        const xn = norm1.forward(x);
        const input = { tokens: xn, grid, numPrefixTokens: 1 };
        const attn = m.attentionMap(input);
        const img0 = tf.slice(attn, [0, 0, 0, 0], [1, H, 65, 65]);
        const name = 'mhsa_attn_layer3_img0';
        await expectClose(img0, f.get(name).data, f.atol(name), `convit_micro/${name} (${strategy})`, [1, H, 65, 65]);
        const out = tf.tidy(() => {
          const x1 = tf.add(x, m.forward(input));
          return tf.add(x1, mlp.forward(norm2.forward(x1)));
        });
        await expectClose(out, f.get('block3_out').data, f.atol('block3_out'), `convit_micro/block3_out (${strategy})`, [2, 65, C]);
        tf.dispose([xn, attn, img0, out]);
      });
      x.dispose();
      [m, norm1, norm2, mlp].forEach((mod) => {
        mod.dispose();
      });
    });
  }

  it('nonlocality of layer 3 on the raw patch embeddings (official measurement)', async () => {
    const m = build('auto');
    const pe = fixtureTensor(f.get('patch_embed_out'));
    const attn = m.attentionMap({ tokens: pe, grid, numPrefixTokens: 0 });
    const d = nonlocality(attn, grid, 0);
    const name = 'nonlocality_layer3';
    await expectClose(d, f.get(name).data, f.atol(name), `convit_micro/${name}`, [H]);
    tf.dispose([pe, attn, d]);
    m.dispose();
  });
});
