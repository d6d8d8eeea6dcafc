import * as tf from '@tensorflow/tfjs-core';
import { it, expect, vi } from 'vitest';
import { describeBackend, loadFixture, expectClose, defaultAtol, expectNoLeak, fixtureTensor } from '@softbias/test-utils';
import { LayerNorm, Mlp, Rng, toTorch } from '@softbias/tensor-ops';
import { Gpsa } from '@softbias/gpsa';
import {
  type F64,
  dot,
  finiteDiff,
  gpsaParams,
  gpsaReference,
  randomF32,
  randomStateDict,
  sampleIndices,
  torchParams,
} from '../test/reference.js';

// WebGPU runs on SwiftShader (a CPU) here: generous per-test limits.
vi.setConfig({ testTimeout: 900_000 });

type Raw = Map<string, { data: Float32Array; shape: number[] }>;

/** The entries under `prefix`, with the prefix removed. */
function sub(weights: Raw, prefix: string): Raw {
  const out: Raw = new Map();
  for (const [k, v] of weights) if (k.startsWith(prefix)) out.set(k.slice(prefix.length), v);
  return out;
}

function img0(t: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.squeeze(tf.slice(t, [0, 0, 0, 0], [1, -1, -1, -1]), [0]));
}

/** Random GPSA with random (not init-like) parameters. */
function randomGpsa(dim: number, heads: number, seed: number, extra: Partial<ConstructorParameters<typeof Gpsa>[0]> = {}) {
  const rng = new Rng(seed);
  const g = new Gpsa({ dim, numHeads: heads, rng, ...extra });
  g.loadStateDict(randomStateDict(g, rng, 0.5));
  return g;
}

describeBackend('gpsa: convolutional init (fixtures convit_local_init_h4 / _h9)', () => {
  for (const name of ['convit_local_init_h4', 'convit_local_init_h9']) {
    it(`${name}: pos_proj, v, gating bit for bit; positional scores exact, attention within tolerance`, async () => {
      const f = loadFixture(name);
      const { embed_dim: dim, num_heads: heads, locality_strength: alpha, local_up_to_layer: layers } = f.config;
      for (let layer = 0; layer < layers; layer++) {
        const g = new Gpsa({ dim, numHeads: heads, localityStrength: alpha, rng: new Rng(100 + layer) });
        const sd = g.stateDict();
        for (const key of ['pos_proj.weight', 'pos_proj.bias', 'v.weight', 'gating_param']) {
          const want = f.weights.get(`blocks.${layer}.attn.${key}`)!;
          const got = sd.get(key)!;
          expect(got.shape, key).toEqual(want.shape);
          await expectClose(got, want.data, 0, `${name}/blocks.${layer}.attn.${key} (bit for bit)`);
        }
        tf.dispose([...sd.values()]);
        const scores = g.positionalScores([8, 8]);
        await expectClose(scores, f.get('pos_score_layer0').data, 0, `${name}/pos_score_layer0 (exact)`, [heads, 64, 64]);
        const attn = g.positionalAttention([8, 8]);
        await expectClose(attn, f.get('pos_attn_layer0').data, f.atol('pos_attn_layer0'), `${name}/pos_attn_layer0`);
        tf.dispose([scores, attn]);
        g.dispose();
      }
    });
  }

  it('non-square head counts and α ≠ 1: heads beyond k² keep their values times α (float32 rounding)', async () => {
    const heads = 6;
    const alpha = 0.3;
    const g = new Gpsa({ dim: 12, numHeads: heads, localInit: false, rng: new Rng(5) });
    const before = (await torchParams(g)).get('pos_proj.weight')!;
    g.localInit(alpha);
    const after = (await torchParams(g)).get('pos_proj.weight')!;
    // Definition (fixtures README §5.4): k = 2, center 0.5, head h1 + 2·h2 → [2(h2−c), 2(h1−c), −1] · α.
    const want = new Float32Array(heads * 3);
    for (let h = 0; h < heads; h++) for (let c = 0; c < 3; c++) want[h * 3 + c] = before[h * 3 + c]!;
    for (let h1 = 0; h1 < 2; h1++) {
      for (let h2 = 0; h2 < 2; h2++) {
        const h = h1 + 2 * h2;
        want[h * 3] = 2 * (h2 - 0.5);
        want[h * 3 + 1] = 2 * (h1 - 0.5);
        want[h * 3 + 2] = -1;
      }
    }
    for (let i = 0; i < want.length; i++) want[i] = Math.fround(want[i]! * Math.fround(alpha));
    await expectClose(after, want, 0, 'localInit(0.3), 6 heads (bit for bit)');
    const v = (await torchParams(g)).get('v.weight')!;
    for (let i = 0; i < 12; i++) for (let j = 0; j < 12; j++) expect(v[i * 12 + j]).toBe(i === j ? 1 : 0);
    g.dispose();
  });
});

describeBackend('gpsa: convit_micro GPSA layers (maps, gates, nonlocality, block outputs)', () => {
  const f = loadFixture('convit_micro');
  const grid: [number, number] = [8, 8];
  for (const strategy of ['batched', 'per-head'] as const) {
    it(`layers 0–2, ${strategy}`, async () => {
      for (let i = 0; i < 3; i++) {
        const x = fixtureTensor(f.get(i === 0 ? 'pos_embed_out' : `block${i - 1}_out`));
        const norm1 = new LayerNorm(48);
        norm1.loadStateDict(sub(f.weights, `blocks.${i}.norm1.`));
        const norm2 = new LayerNorm(48);
        norm2.loadStateDict(sub(f.weights, `blocks.${i}.norm2.`));
        const mlp = new Mlp(48, { hiddenFeatures: 192 });
        mlp.loadStateDict(sub(f.weights, `blocks.${i}.mlp.`));
        const g = new Gpsa({ dim: 48, numHeads: 4, strategy });
        g.loadStateDict(sub(f.weights, `blocks.${i}.attn.`));
        const xn = norm1.forward(x);
        const input = { tokens: xn, grid, numPrefixTokens: 0 };
        const maps = g.attentionMaps(input);
        const label = (n: string) => `convit_micro/${n} (gpsa ${strategy})`;
        const mixed0 = img0(maps.mixed);
        const content0 = img0(maps.content);
        await expectClose(mixed0, f.get(`attn_layer${i}_img0`).data, f.atol(`attn_layer${i}_img0`), label(`attn_layer${i}_img0`), [4, 64, 64]);
        await expectClose(content0, f.get(`patch_attn_layer${i}_img0`).data, f.atol(`patch_attn_layer${i}_img0`), label(`patch_attn_layer${i}_img0`));
        await expectClose(maps.positional, f.get(`pos_attn_layer${i}`).data, f.atol(`pos_attn_layer${i}`), label(`pos_attn_layer${i}`), [4, 64, 64]);
        await expectClose(maps.gates, f.get(`gating_layer${i}`).data, f.atol(`gating_layer${i}`), label(`gating_layer${i}`), [4]);
        const ctx = g.nonlocality(input);
        await expectClose(ctx, f.get(`nonlocality_ctx_layer${i}`).data, f.atol(`nonlocality_ctx_layer${i}`), label(`nonlocality_ctx_layer${i}`), [4]);
        const pe = fixtureTensor(f.get('patch_embed_out'));
        const official = g.nonlocality({ tokens: pe, grid, numPrefixTokens: 0 });
        await expectClose(official, f.get(`nonlocality_layer${i}`).data, f.atol(`nonlocality_layer${i}`), label(`nonlocality_layer${i}`), [4]);
        const y = tf.tidy(() => {
          const h = tf.add(x, g.forward(input));
          return tf.add(h, mlp.forward(norm2.forward(h)));
        });
        await expectClose(y, f.get(`block${i}_out`).data, f.atol(`block${i}_out`), label(`block${i}_out`), [2, 64, 48]);
        tf.dispose([x, xn, maps.mixed, maps.content, maps.positional, maps.gates, mixed0, content0, ctx, pe, official, y]);
        for (const m of [norm1, norm2, mlp, g]) m.dispose();
      }
    });
  }
});

describeBackend('gpsa: float64 reference (non-square grid, prefix tokens)', () => {
  const B = 2;
  const C = 12;
  const H = 3;
  const grid: [number, number] = [3, 5];
  const N = 15;
  for (const strategy of ['batched', 'per-head'] as const) {
    it(`forward and maps on a 3×5 grid, ${strategy}`, async () => {
      const g = randomGpsa(C, H, 11, { strategy });
      const p = gpsaParams(await torchParams(g));
      const x = randomF32(B * N * C, new Rng(12));
      const ref = gpsaReference(Float64Array.from(x), [B, N, C], grid, H, p);
      const xt = tf.tensor(x, [B, N, C]);
      const out = g.forward({ tokens: xt, grid, numPrefixTokens: 0 });
      await expectClose(out, ref.out, defaultAtol(ref.out), `gpsa 3×5 forward (${strategy})`, [B, N, C]);
      const maps = g.attentionMaps({ tokens: xt, grid, numPrefixTokens: 0 });
      await expectClose(maps.content, ref.content, defaultAtol(ref.content), `gpsa 3×5 content (${strategy})`, [B, H, N, N]);
      await expectClose(maps.positional, ref.positional, defaultAtol(ref.positional), `gpsa 3×5 positional`, [H, N, N]);
      await expectClose(maps.mixed, ref.mixed, defaultAtol(ref.mixed), `gpsa 3×5 mixed (${strategy})`, [B, H, N, N]);
      await expectClose(maps.gates, ref.gates, defaultAtol(ref.gates), `gpsa gates`, [H]);
      // Nonlocality: (1/N) Σ_qk dist · mean_b attn, written out here.
      const want = new Float64Array(H);
      for (let h = 0; h < H; h++) {
        for (let q = 0; q < N; q++) {
          for (let k = 0; k < N; k++) {
            const d = Math.hypot((k % 5) - (q % 5), Math.floor(k / 5) - Math.floor(q / 5));
            let a = 0;
            for (let b = 0; b < B; b++) a += ref.mixed[((b * H + h) * N + q) * N + k]! / B;
            want[h] = want[h]! + (d * a) / N;
          }
        }
      }
      const nl = g.nonlocality({ tokens: xt, grid, numPrefixTokens: 0 });
      await expectClose(nl, want, defaultAtol(want), `gpsa 3×5 nonlocality`, [H]);
      tf.dispose([xt, out, maps.content, maps.positional, maps.mixed, maps.gates, nl]);
      g.dispose();
    });
  }

  it('prefix tokens pass through unchanged; the patch tokens are mixed as without them', async () => {
    const g = randomGpsa(C, H, 21);
    const p = gpsaParams(await torchParams(g));
    const x = randomF32(B * (N + 1) * C, new Rng(22));
    const xt = tf.tensor(x, [B, N + 1, C]);
    const out = g.forward({ tokens: xt, grid, numPrefixTokens: 1 });
    expect(out.shape).toEqual([B, N + 1, C]);
    const patches = new Float64Array(B * N * C);
    for (let b = 0; b < B; b++) for (let i = 0; i < N * C; i++) patches[b * N * C + i] = x[b * (N + 1) * C + C + i]!;
    const ref = gpsaReference(patches, [B, N, C], grid, H, p);
    const [pre, rest] = tf.split(out, [1, N], 1);
    const preIn = tf.slice(xt, [0, 0, 0], [B, 1, C]);
    await expectClose(pre!, await preIn.data(), 0, 'gpsa prefix token passes through');
    await expectClose(rest!, ref.out, defaultAtol(ref.out), 'gpsa patches with a prefix token');
    tf.dispose([xt, out, pre!, rest!, preIn]);
    g.dispose();
  });
});

/** Gradients of loss = Σ gpsa(x) ⊙ W by tfjs (float32) vs central differences of the float64 reference. */
async function gradCheck(g: Gpsa, label: string, seed: number) {
  const B = 2;
  const C = g.dim;
  const H = g.numHeads;
  const grid: [number, number] = [3, 4];
  const N = 12;
  const rng = new Rng(seed);
  const x = randomF32(B * N * C, rng);
  const W = randomF32(B * N * C, rng);
  const xv = tf.variable(tf.tensor(x, [B, N, C]), true, `gpsa_gradcheck_x_${seed}`);
  const Wt = tf.tensor(W, [B, N, C]);
  const { value, grads } = tf.variableGrads(() =>
    tf.tidy(() => tf.sum(tf.mul(g.forward({ tokens: xv, grid, numPrefixTokens: 0 }), Wt))) as tf.Scalar,
  );
  const sd = await torchParams(g);
  const p = gpsaParams(sd);
  const x64 = Float64Array.from(x);
  const loss = () => dot(gpsaReference(x64, [B, N, C], grid, H, p).out, W);
  expect(Math.abs((await value.data())[0]! - loss())).toBeLessThan(1e-3);
  const check = async (name: string, got: tf.Tensor, arr: F64, max = 24) => {
    const idx = sampleIndices(arr.length, max, rng);
    const want = finiteDiff(loss, arr, idx);
    const all = (await got.data()) as Float32Array;
    await expectClose(idx.map((i) => all[i]!), want, defaultAtol(want), `${label}: d loss / d ${name}`);
  };
  await check('x', grads[xv.name]!, x64);
  const named = new Map(g.namedParameters());
  const arrays: Record<string, F64> = {
    gating_param: p.gating,
    'pos_proj.weight': p.posW,
    'pos_proj.bias': p.posB,
    'qk.weight': p.qk,
    'v.weight': p.v,
    'proj.weight': p.proj,
    'proj.bias': p.projBias,
  };
  for (const [name, arr] of Object.entries(arrays)) {
    const param = named.get(name)!;
    const grad = grads[param.variable.name];
    expect(grad, `gradient for ${name}`).toBeDefined();
    const torchGrad = toTorch(param.layout, grad!);
    await check(name, torchGrad, arr);
    torchGrad.dispose();
  }
  tf.dispose([value, xv, Wt, ...Object.values(grads)]);
}

describeBackend('gpsa: gradients vs finite differences of the float64 reference', () => {
  it('train mode, batched', async () => {
    const g = randomGpsa(8, 2, 31, { strategy: 'batched' });
    g.train();
    await gradCheck(g, 'gpsa grad (train, batched)', 32);
    g.dispose();
  });
  it('eval mode with a warm positional cache (the tape bypasses it), per-head', async () => {
    const g = randomGpsa(8, 2, 33, { strategy: 'per-head' });
    const warm = g.forward({ tokens: tf.ones([1, 12, 8]), grid: [3, 4], numPrefixTokens: 0 });
    warm.dispose();
    expect(g.cacheInfo().grids).toEqual(['3x4']);
    await gradCheck(g, 'gpsa grad (eval, per-head)', 34);
    g.dispose();
  });
});

describeBackend('gpsa: eval-mode positional cache', () => {
  const grid: [number, number] = [3, 4];
  const B = 2;
  const C = 8;
  const H = 2;
  const N = 12;
  const x = randomF32(B * N * C, new Rng(41));

  async function expectMatchesReference(g: Gpsa, label: string) {
    const xt = tf.tensor(x, [B, N, C]);
    const out = g.forward({ tokens: xt, grid, numPrefixTokens: 0 });
    const ref = gpsaReference(Float64Array.from(x), [B, N, C], grid, H, gpsaParams(await torchParams(g)));
    await expectClose(out, ref.out, defaultAtol(ref.out), label);
    tf.dispose([xt, out]);
  }

  it('computes the positional terms once per grid in eval mode', async () => {
    const g = randomGpsa(C, H, 42);
    await expectMatchesReference(g, 'cache: first forward');
    await expectMatchesReference(g, 'cache: second forward');
    expect(g.cacheInfo()).toEqual({ grids: ['3x4'], computations: 1 });
    // qk's weight halves are cached with it: a warm eval forward slices no weight.
    const xt = tf.tensor(x, [B, N, C]);
    const prof = await tf.profile(() => tf.tidy(() => g.forward({ tokens: xt, grid, numPrefixTokens: 0 })));
    xt.dispose();
    const weightSlices = prof.kernels.filter((k) => k.name === 'Slice' && JSON.stringify(k.inputShapes[0]) === JSON.stringify([C, 2 * C]));
    expect(weightSlices, 'Slice of qk.weight in a warm eval forward').toEqual([]);
    const other = g.forward({ tokens: tf.zeros([1, 6, C]), grid: [2, 3], numPrefixTokens: 0 });
    other.dispose();
    expect(g.cacheInfo()).toEqual({ grids: ['3x4', '2x3'], computations: 2 });
    g.dispose();
  });

  it('loadStateDict invalidates it (onWeightsLoaded)', async () => {
    const g = randomGpsa(C, H, 43);
    await expectMatchesReference(g, 'cache: before load');
    g.loadStateDict(randomStateDict(g, new Rng(44)));
    expect(g.cacheInfo().grids).toEqual([]);
    await expectMatchesReference(g, 'cache: after loadStateDict');
    expect(g.cacheInfo().computations).toBe(2);
    g.dispose();
  });

  it('an optimizer step invalidates it (the variables hold new tensors)', async () => {
    const g = randomGpsa(C, H, 45);
    await expectMatchesReference(g, 'cache: before the step');
    const xt = tf.tensor(x, [B, N, C]);
    const opt = tf.train.sgd(0.5);
    const gateBefore = await g.gating_param.value.data();
    opt.minimize(() => tf.tidy(() => tf.sum(tf.square(g.forward({ tokens: xt, grid, numPrefixTokens: 0 })))) as tf.Scalar);
    const gateAfter = await g.gating_param.value.data();
    expect(Array.from(gateAfter)).not.toEqual(Array.from(gateBefore));
    expect(g.cacheInfo().computations).toBe(1);
    await expectMatchesReference(g, 'cache: after an SGD step');
    expect(g.cacheInfo().computations).toBe(2);
    tf.dispose([xt]);
    opt.dispose();
    g.dispose();
  });

  it('train() clears it and training forwards do not use it; eval() rebuilds it', async () => {
    const g = randomGpsa(C, H, 46);
    await expectMatchesReference(g, 'cache: eval');
    g.train();
    expect(g.cacheInfo().grids).toEqual([]);
    await expectMatchesReference(g, 'cache: train mode (no dropout)');
    expect(g.cacheInfo()).toEqual({ grids: [], computations: 1 });
    g.eval();
    await expectMatchesReference(g, 'cache: eval again');
    expect(g.cacheInfo()).toEqual({ grids: ['3x4'], computations: 2 });
    g.dispose();
  });
});

describeBackend('gpsa: ablation options and seeding', () => {
  it("gate 'frozen' keeps the gate out of training; trainable: false freezes everything", async () => {
    const g = new Gpsa({ dim: 8, numHeads: 2, gate: 'frozen', rng: new Rng(51) });
    expect(g.gating_param.trainable).toBe(false);
    expect(g.trainableParameters().map(([n]) => n)).not.toContain('gating_param');
    const xt = tf.tensor(randomF32(2 * 12 * 8, new Rng(52)), [2, 12, 8]);
    const before = await torchParams(g);
    const opt = tf.train.sgd(0.5);
    g.train();
    opt.minimize(() => tf.tidy(() => tf.sum(tf.square(g.forward({ tokens: xt, grid: [3, 4], numPrefixTokens: 0 })))) as tf.Scalar);
    const after = await torchParams(g);
    expect(Array.from(after.get('gating_param')!)).toEqual(Array.from(before.get('gating_param')!));
    expect(Array.from(after.get('gating_param')!)).toEqual([1, 1]);
    expect(Array.from(after.get('qk.weight')!)).not.toEqual(Array.from(before.get('qk.weight')!));
    const frozen = new Gpsa({ dim: 8, numHeads: 2, trainable: false });
    expect(frozen.trainableParameters()).toEqual([]);
    expect(frozen.numParameters(true)).toBe(0);
    expect(frozen.numParameters()).toBe(2 + 16 * 8 + 8 * 8 + 8 * 8 + 8 + 2 * 3 + 2);
    tf.dispose([xt]);
    opt.dispose();
    g.dispose();
    frozen.dispose();
  });

  it('localInit: false keeps the random init; the same seed gives identical modules', async () => {
    const a = await torchParams(new Gpsa({ dim: 8, numHeads: 4, rng: new Rng(7) }));
    const b = await torchParams(new Gpsa({ dim: 8, numHeads: 4, rng: new Rng(7) }));
    const c = await torchParams(new Gpsa({ dim: 8, numHeads: 4, rng: new Rng(7), localInit: false }));
    for (const [k, v] of a) expect(Array.from(b.get(k)!), k).toEqual(Array.from(v));
    expect(Array.from(c.get('qk.weight')!)).toEqual(Array.from(a.get('qk.weight')!));
    expect(Array.from(c.get('v.weight')!)).not.toEqual(Array.from(a.get('v.weight')!));
    expect(Array.from(c.get('pos_proj.weight')!)).not.toEqual(Array.from(a.get('pos_proj.weight')!));
    // trunc_normal(0.02) init: small values, no identity.
    expect(Math.max(...Array.from(c.get('v.weight')!, Math.abs))).toBeLessThan(0.1);
  });
});

describeBackend('gpsa: memory and errors', () => {
  it('no tensor leaks across repeated forwards and a training step; dispose frees the cache', async () => {
    const before = tf.memory().numTensors;
    const g = randomGpsa(8, 2, 61);
    const xt = tf.tensor(randomF32(2 * 13 * 8, new Rng(62)), [2, 13, 8]);
    const input = { tokens: xt, grid: [3, 4] as [number, number], numPrefixTokens: 1 };
    g.forward(input).dispose(); // warm the positional cache
    await expectNoLeak(() => {
      for (let i = 0; i < 3; i++) g.forward(input).dispose();
      const m = g.attentionMaps(input);
      tf.dispose([m.content, m.positional, m.mixed, m.gates]);
      g.nonlocality(input).dispose();
    }, 'gpsa eval forwards');
    const opt = tf.train.sgd(0.1);
    g.train();
    await expectNoLeak(() => {
      const { value, grads } = tf.variableGrads(() => tf.tidy(() => tf.sum(g.forward(input))) as tf.Scalar);
      opt.applyGradients(grads);
      tf.dispose([value, ...Object.values(grads)]);
    }, 'gpsa training step');
    opt.dispose();
    xt.dispose();
    g.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('bad inputs throw naming the expected shape', () => {
    const g = new Gpsa({ dim: 8, numHeads: 2 });
    const t3 = tf.zeros([2, 12, 6]);
    const t2 = tf.zeros([12, 8]);
    const t12 = tf.zeros([2, 12, 8]);
    expect(() => g.forward({ tokens: t3, grid: [3, 4], numPrefixTokens: 0 })).toThrow(/expected tokens \[B, 12, 8\]/);
    expect(() => g.forward({ tokens: t2, grid: [3, 4], numPrefixTokens: 0 })).toThrow(/expected tokens \[B, (N|12), 8\]/);
    expect(() => g.forward({ tokens: t12, grid: [4, 4], numPrefixTokens: 0 })).toThrow(/expected tokens \[B, 16, 8\]/);
    expect(() => new Gpsa({ dim: 10, numHeads: 4 })).toThrow(/multiple of numHeads/);
    expect(() => new Gpsa({ dim: 8, numHeads: 2, gate: 'none' as never })).toThrow(/'learned' or 'frozen'/);
    tf.dispose([t3, t2, t12]);
    g.dispose();
  });
});
