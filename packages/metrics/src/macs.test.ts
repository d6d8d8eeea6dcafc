import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend } from '@softbias/test-utils';
import { Linear, PatchEmbed, Rng, normal } from '@softbias/tensor-ops';
import { convitMacs, convnextv2Macs, countMacs, profileMacs, groupMacs, formatCount } from '@softbias/metrics';

describeBackend('MAC counts', () => {
  it('ConViT-Ti and its DeiT twin: the closed form 12·N·C² per block + 2·N²·C attention + patch embedding + head', () => {
    const N = 196;
    const C = 192;
    const H = 4;
    const cfg = { imgSize: 224, patchSize: 16, embedDim: C, depth: 12, numHeads: H, localUpToLayer: 10, numClasses: 1000 };
    const patch = N * 16 * 16 * 3 * C;
    const gpsa = 12 * N * C * C + 2 * N * N * C + N * N * 3 * H;
    const M = N + 1;
    const mhsa = 12 * M * C * C + 2 * M * M * C;
    const want = patch + 10 * gpsa + 2 * mhsa + C * 1000;
    const r = convitMacs(cfg);
    expect(r.total).toBe(want);
    // The papers' "1.0 G" is MACs: linear layers alone are ≈ 1.07 G, the attention matmuls add ≈ 0.18 G.
    expect(r.total / 1e9).toBeGreaterThan(1.0);
    expect(r.total / 1e9).toBeLessThan(1.3);
    const deit = convitMacs({ ...cfg, localUpToLayer: 0 });
    expect(deit.total).toBe(patch + 12 * (12 * M * C * C + 2 * M * M * C) + C * 1000);
    expect(convitMacs({ ...cfg, countPositional: false }).total).toBe(want - 10 * N * N * 3 * H);
    const groups = groupMacs(r, 2);
    expect(groups['blocks.0']).toBe(gpsa);
    expect(groups['blocks.11']).toBe(mhsa);
    console.log(
      `MACs: convit_tiny ${formatCount(r.total)} (linear ${formatCount(r.byOp['linear']!)}, conv ${formatCount(r.byOp['conv2d']!)}, ` +
        `attention ${formatCount(r.byOp['attention']!)}); DeiT twin ${formatCount(deit.total)}; paper: 1.0G`,
    );
  });

  it('ConvNeXtV2-Atto ≈ 0.55 G: stem + per block HW·(49C + 8C²) + downsampling + head', () => {
    const dims = [40, 80, 160, 320];
    const depths = [2, 2, 6, 2];
    let want = 56 * 56 * 40 * (4 * 4 * 3);
    let h = 56;
    dims.forEach((C, s) => {
      if (s > 0) {
        h /= 2;
        want += h * h * C * (2 * 2 * dims[s - 1]!);
      }
      want += depths[s]! * h * h * (49 * C + 8 * C * C);
    });
    want += 320 * 1000;
    const r = convnextv2Macs({ imgSize: 224, depths, dims, numClasses: 1000 });
    expect(r.total).toBe(want);
    expect(Math.abs(r.total / 1e9 - 0.55)).toBeLessThan(0.01);
    // Odd sizes floor at every stride: 64×48 ends in a 2×1 map.
    const odd = convnextv2Macs({ imgSize: [64, 48], depths: [1, 1, 1, 1], dims: [8, 16, 32, 64], numClasses: 0 });
    const last = odd.entries.find((e) => e.name === 'stages.3.blocks.0.conv_dw')!;
    expect(last.macs).toBe(2 * 1 * 64 * 49);
    console.log(`MACs: convnextv2_atto ${formatCount(r.total)}; paper: 0.55G`);
  });

  it('profiled MACs of executed kernels equal the analytic description (tensor-ops layers)', async () => {
    const rng = new Rng(1);
    const B = 2;
    const pe = new PatchEmbed({ imgSize: [8, 12], patchSize: 4, inChans: 3, embedDim: 16, rng });
    const fc = new Linear(16, 24, { rng });
    const x = normal([B, 8, 12, 3], rng);
    const dwFilter = normal([3, 3, 24, 1], rng);
    const prof = await profileMacs(() =>
      tf.tidy(() => {
        const tok = pe.forward(x); // [B, 6, 16]
        const h = fc.forward(tok); // [B, 6, 24]
        const att = tf.matMul(h, h, false, true); // [B, 6, 6]: Q·Kᵀ-like
        const av = tf.matMul(att, h); // A·V
        const img = tf.reshape(av, [B, 2, 3, 24]);
        return tf.depthwiseConv2d(img as tf.Tensor4D, dwFilter as tf.Tensor4D, 1, 'same');
      }),
    );
    const want = countMacs([
      { op: 'conv2d', name: 'pe', outH: 2, outW: 3, inChannels: 3, outChannels: 16, kernel: 4 },
      { op: 'linear', name: 'fc', rows: 6, inFeatures: 16, outFeatures: 24 },
      { op: 'attention', name: 'attn', tokens: 6, dim: 24 },
      { op: 'depthwise', name: 'dw', outH: 2, outW: 3, channels: 24, kernel: 3 },
    ]).total;
    expect(prof.total).toBe(B * want);
    // The products (on wasm the linear layers may run as softbias' fused SoftbiasLinear).
    const products = (prof.byKernel['BatchMatMul'] ?? 0) + (prof.byKernel['SoftbiasLinear'] ?? 0);
    expect(products).toBe(B * (6 * 48 * 16 + 6 * 16 * 24 + 2 * 6 * 6 * 24));
    expect(prof.byKernel['DepthwiseConv2dNative']).toBe(B * 6 * 24 * 9);
    tf.dispose([x, dwFilter]);
    pe.dispose();
    fc.dispose();
  });
});
