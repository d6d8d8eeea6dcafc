import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend, expectClose, defaultAtol, expectNoLeak } from '@softbias/test-utils';
import { Rng } from '@softbias/tensor-ops';
import { WindowAttention } from './index.js';
import { randomF32, randomizeParams, windowRef } from '../test/reference.js';
import { checkMixerGradients } from '../test/grad-check.js';

describeBackend('WindowAttention', () => {
  it('has names qkv / proj', () => {
    const m = new WindowAttention({ dim: 8, numHeads: 2, size: 2 });
    expect(m.kind).toBe('window');
    expect(m.namedParameters().map(([n, p]) => [n, p.torchShape])).toEqual([
      ['qkv.weight', [24, 8]],
      ['proj.weight', [8, 8]],
      ['proj.bias', [8]],
    ]);
    m.dispose();
  });

  const cases = [
    { grid: [4, 6] as const, size: 2, prefix: 1, strategy: 'per-head' as const },
    { grid: [4, 6] as const, size: 2, prefix: 0, strategy: 'batched' as const },
    { grid: [6, 3] as const, size: 3, prefix: 1, strategy: 'auto' as const },
    { grid: [2, 2] as const, size: 1, prefix: 0, strategy: 'auto' as const },
  ];
  for (const { grid, size, prefix, strategy } of cases) {
    it(`matches the float64 definition (grid ${grid.join('×')}, window ${size}, ${prefix} prefix, ${strategy})`, async () => {
      const rng = new Rng(30 + size);
      const [B, C, H] = [2, 8, 2];
      const N = prefix + grid[0] * grid[1];
      const m = new WindowAttention({ dim: C, numHeads: H, size, qkvBias: true, strategy, rng });
      const p = randomizeParams(m, rng);
      const x = randomF32(B * N * C, rng);
      const tokens = tf.tensor(x, [B, N, C]);
      const want = windowRef(Float64Array.from(x), B, grid, prefix, C, H, size, p);
      const input = { tokens, grid, numPrefixTokens: prefix };
      await expectNoLeak(async () => {
        const y = m.forward(input);
        await expectClose(y, want.out, defaultAtol(want.out), `window ${grid} s${size} p${prefix}: out`, [B, N, C]);
        if (prefix > 0) {
          // Prefix tokens pass through bit for bit.
          const head = tf.slice(y, [0, 0, 0], [B, prefix, C]);
          const orig = tf.slice(tokens, [0, 0, 0], [B, prefix, C]);
          expect(Array.from(await head.data())).toEqual(Array.from(await orig.data()));
          tf.dispose([head, orig]);
        }
        y.dispose();
        const a = m.windowAttentionMap(input);
        const nW = (grid[0] / size) * (grid[1] / size);
        await expectClose(a, want.attn, 1e-5, `window ${grid} s${size}: attention`, [B * nW, H, size * size, size * size]);
        const sums = tf.sum(a, -1);
        await expectClose(sums, new Float32Array(B * nW * H * size * size).fill(1), 1e-5, 'window: attention row sums');
        // The full-grid map: entry [b, h, q, k] is the window map's entry when q and k share a window, else 0.
        const P = grid[0] * grid[1];
        const S = size * size;
        const wc = grid[1] / size;
        const full = new Float64Array(B * H * P * P);
        for (let b = 0; b < B; b++)
          for (let h = 0; h < H; h++)
            for (let q = 0; q < P; q++)
              for (let k = 0; k < P; k++) {
                const [qy, qx, ky, kx] = [Math.floor(q / grid[1]), q % grid[1], Math.floor(k / grid[1]), k % grid[1]];
                const wq = Math.floor(qy / size) * wc + Math.floor(qx / size);
                if (wq !== Math.floor(ky / size) * wc + Math.floor(kx / size)) continue;
                const iq = (qy % size) * size + (qx % size);
                const ik = (ky % size) * size + (kx % size);
                full[((b * H + h) * P + q) * P + k] = want.attn[(((b * nW + wq) * H + h) * S + iq) * S + ik]!;
              }
        const fm = m.attentionMaps(input);
        expect(fm.numPrefixTokens).toBe(0);
        await expectClose(fm.mixed, full, 1e-5, `window ${grid} s${size}: full-grid attention`, [B, H, P, P]);
        tf.dispose([a, sums, fm.mixed]);
      });
      tokens.dispose();
      m.dispose();
    });
  }

  it('gradients match finite differences of the definition', async () => {
    const rng = new Rng(33);
    const [B, C, H, size, prefix] = [2, 4, 2, 2, 1];
    const grid = [2, 4] as const;
    const N = prefix + 8;
    const m = new WindowAttention({ dim: C, numHeads: H, size, qkvBias: true, strategy: 'per-head', rng });
    const params = randomizeParams(m, rng);
    await checkMixerGradients({
      mixer: m,
      params,
      x: randomF32(B * N * C, rng),
      shape: [B, N, C],
      grid,
      prefix,
      ref: (x, p) => windowRef(x, B, grid, prefix, C, H, size, p).out,
      label: 'window',
      rng,
    });
    m.dispose();
  });

  it('rejects a grid the window does not tile, and bad shapes', () => {
    const m = new WindowAttention({ dim: 4, numHeads: 2, size: 2 });
    const t = tf.zeros([1, 10, 4]);
    expect(() => m.forward({ tokens: t, grid: [3, 3], numPrefixTokens: 1 })).toThrow(/grid 3×3 must be divisible by the window size 2/);
    const wrongC = tf.zeros([1, 17, 5]);
    expect(() => m.forward({ tokens: wrongC, grid: [4, 4], numPrefixTokens: 1 })).toThrow(/expected tokens \[B, 17, 4\]/);
    tf.dispose([t, wrongC]);
    m.dispose();
  });
});
