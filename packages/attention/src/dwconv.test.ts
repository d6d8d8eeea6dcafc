import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend, expectClose, defaultAtol, expectNoLeak } from '@softbias/test-utils';
import { Rng } from '@softbias/tensor-ops';
import { DwConvMixer } from './index.js';
import { depthwiseConv2dSame } from './dwconv.js';
import { dwconvRef, dynamicKernelsRef, randomF32, randomizeParams, staticKernels, type F64, type Params } from '../test/reference.js';
import { checkMixerGradients } from '../test/grad-check.js';

function ref(dynamic: boolean, B: number, grid: readonly [number, number], prefix: number, C: number, k: number) {
  return (x: F64, p: Params) => {
    const kernels = dynamic ? dynamicKernelsRef(x, B, grid, prefix, C, k, p) : staticKernels(p.get('conv.weight')!, B);
    return dwconvRef(x, B, grid, prefix, C, kernels, k, p);
  };
}

describeBackend('DwConvMixer', () => {
  it('has the documented parameter names and shapes', () => {
    const s = new DwConvMixer({ dim: 8 });
    expect(s.kind).toBe('dwconv');
    expect(s.namedParameters().map(([n, p]) => [n, p.torchShape])).toEqual([
      ['conv.weight', [8, 1, 7, 7]],
      ['conv.bias', [8]],
      ['proj.weight', [8, 8]],
      ['proj.bias', [8]],
    ]);
    const d = new DwConvMixer({ dim: 8, kernelSize: 3, dynamic: true, proj: false });
    expect(d.namedParameters().map(([n, p]) => [n, p.torchShape])).toEqual([
      ['conv.bias', [8]],
      ['conv.fc1.weight', [2, 8]],
      ['conv.fc1.bias', [2]],
      ['conv.fc2.weight', [72, 2]],
      ['conv.fc2.bias', [72]],
    ]);
    expect(() => new DwConvMixer({ dim: 8, kernelSize: 4 })).toThrow(/odd/);
    s.dispose();
    d.dispose();
  });

  const cases = [
    { dynamic: false, k: 3, grid: [3, 4] as const, prefix: 1, proj: true, B: 2 },
    { dynamic: false, k: 7, grid: [3, 5] as const, prefix: 0, proj: false, B: 2 },
    { dynamic: true, k: 3, grid: [3, 4] as const, prefix: 1, proj: true, B: 2 },
    { dynamic: true, k: 5, grid: [4, 4] as const, prefix: 0, proj: false, B: 1 },
  ];
  for (const { dynamic, k, grid, prefix, proj, B } of cases) {
    const title = `${dynamic ? 'dynamic' : 'static'} k${k}, grid ${grid.join('×')}, ${prefix} prefix, proj ${proj}, B ${B}`;
    it(`matches the float64 definition (${title})`, async () => {
      const rng = new Rng(40 + k);
      const C = 8;
      const N = prefix + grid[0] * grid[1];
      const m = new DwConvMixer({ dim: C, kernelSize: k, dynamic, proj, rng });
      const p = randomizeParams(m, rng);
      const x = randomF32(B * N * C, rng);
      const tokens = tf.tensor(x, [B, N, C]);
      const want = ref(dynamic, B, grid, prefix, C, k)(Float64Array.from(x), p);
      await expectNoLeak(async () => {
        const y = m.forward({ tokens, grid, numPrefixTokens: prefix });
        await expectClose(y, want, defaultAtol(want), `dwconv ${title}`, [B, N, C]);
        if (prefix > 0) {
          const head = tf.slice(y, [0, 0, 0], [B, prefix, C]);
          const orig = tf.slice(tokens, [0, 0, 0], [B, prefix, C]);
          expect(Array.from(await head.data())).toEqual(Array.from(await orig.data()));
          tf.dispose([head, orig]);
        }
        y.dispose();
      });
      tokens.dispose();
      m.dispose();
    });
  }

  for (const dynamic of [false, true]) {
    it(`gradients match finite differences of the definition (${dynamic ? 'dynamic' : 'static'})`, async () => {
      const rng = new Rng(dynamic ? 51 : 50);
      const [B, C, k, prefix] = [2, 4, 3, 1];
      const grid = [3, 3] as const;
      const N = prefix + 9;
      const m = new DwConvMixer({ dim: C, kernelSize: k, dynamic, reduction: 2, rng });
      const params = randomizeParams(m, rng);
      await checkMixerGradients({
        mixer: m,
        params,
        x: randomF32(B * N * C, rng),
        shape: [B, N, C],
        grid,
        prefix,
        ref: ref(dynamic, B, grid, prefix, C, k),
        label: `dwconv ${dynamic ? 'dynamic' : 'static'}`,
        rng,
      });
      m.dispose();
    });
  }

  // An independent gradient built from forward depth-wise convolutions only (dx = dy ⋆ flipped kernel; dW = the
  // padded input correlated with dy, batch folded into channels) must agree with the gradient tfjs computes
  // through the backprop kernels (tfjs' on cpu/webgpu, softbias' SIMD kernels on wasm).
  function gradsFromForwardConvs(sx: tf.Tensor4D, sw: tf.Tensor4D, dy: tf.Tensor4D): [tf.Tensor, tf.Tensor] {
    return tf.tidy(() => {
      const [B, H, W, C] = sx.shape;
      const k = sw.shape[0];
      const r = (k - 1) / 2;
      const dx = tf.depthwiseConv2d(dy, tf.reverse(sw, [0, 1]) as tf.Tensor4D, 1, 'same');
      const xp = tf.pad(sx, [[0, 0], [r, r], [r, r], [0, 0]]);
      const xin = tf.reshape(tf.transpose(xp, [1, 2, 0, 3]), [1, H + 2 * r, W + 2 * r, B * C]) as tf.Tensor4D;
      const f = tf.reshape(tf.transpose(dy, [1, 2, 0, 3]), [H, W, B * C, 1]) as tf.Tensor4D;
      const g = tf.depthwiseConv2d(xin, f, 1, 'valid'); // [1, k, k, B·C]
      const dw = tf.reshape(tf.sum(tf.reshape(g, [k, k, B, C]), 2), [k, k, C, 1]);
      return [dx, dw];
    });
  }
  it('the depth-wise gradient equals one built from forward convolutions only', async () => {
    const rng = new Rng(52);
    for (const [B, H, W, C, k] of [
      [2, 5, 4, 3, 3],
      [1, 6, 6, 2, 5],
      [3, 4, 3, 2, 7],
    ] as const) {
      const x = tf.tensor(randomF32(B * H * W * C, rng), [B, H, W, C]) as tf.Tensor4D;
      const w = tf.tensor(randomF32(k * k * C, rng), [k, k, C, 1]) as tf.Tensor4D;
      const dy = tf.tensor(randomF32(B * H * W * C, rng), [B, H, W, C]) as tf.Tensor4D;
      const loss = (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(depthwiseConv2dSame(a as tf.Tensor4D, b as tf.Tensor4D), dy));
      const [gx, gw] = tf.grads(loss)([x, w]);
      const [rx, rw] = gradsFromForwardConvs(x, w, dy);
      const label = `depthwise grad B${B} ${H}×${W} C${C} k${k}`;
      const ex = (await rx.data()) as Float32Array;
      const ew = (await rw.data()) as Float32Array;
      await expectClose(gx!, ex, defaultAtol(ex), `${label}: dx`, x.shape);
      await expectClose(gw!, ew, defaultAtol(ew), `${label}: dw`, w.shape);
      tf.dispose([x, w, dy, gx!, gw!, rx, rw]);
    }
  });

  it('rejects bad shapes naming the expected shape', () => {
    const m = new DwConvMixer({ dim: 4, kernelSize: 3 });
    const t = tf.zeros([2, 9, 4]);
    expect(() => m.forward({ tokens: t, grid: [3, 3], numPrefixTokens: 1 })).toThrow(/expected tokens \[B, 10, 4\]/);
    tf.dispose(t);
    m.dispose();
  });
});
