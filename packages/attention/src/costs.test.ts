/**
 * Each mixer's own multiply-accumulate count and parameter shapes, against counts made by hand for one small
 * geometry (C = 8, 2 heads, a 4×6 patch grid, one class token), and the static shapes against a built mixer's.
 */
import { it, expect } from 'vitest';
import { describeBackend } from '@softbias/test-utils';
import { DwConvMixer, FeedForwardPatchesMixer, Mhsa, type TokenMixer, WindowAttention } from './index.js';

const g = { grid: [4, 6] as const, numPrefixTokens: 1 };
const total = (m: TokenMixer) => m.macs(g).reduce((s, e) => s + e.macs, 0);
const scalars = (shapes: [string, number[]][]) => shapes.reduce((s, [, sh]) => s + sh.reduce((a, b) => a * b, 1), 0);
const built = (m: TokenMixer) => m.namedParameters().map(([n, p]) => [n, p.torchShape]);

describeBackend('mixer MACs and parameter shapes (counted by hand)', () => {
  it('MHSA: over the 25 tokens (class token included)', () => {
    const m = new Mhsa({ dim: 8, numHeads: 2, qkvBias: true });
    // qkv 25·8·24 = 4800; q·kᵀ and a·v 2·25·25·8 = 10000; proj 25·8·8 = 1600.
    expect(m.macs(g)).toEqual([
      { name: 'qkv', op: 'linear', macs: 4800 },
      { name: 'matmuls', op: 'attention', macs: 10000 },
      { name: 'proj', op: 'linear', macs: 1600 },
    ]);
    // qkv 24·8 + 24, proj 8·8 + 8.
    expect(scalars(m.parameterShapes())).toBe(192 + 24 + 64 + 8);
    expect(Mhsa.parameterShapes({ dim: 8, qkvBias: true })).toEqual(built(m));
    expect(Mhsa.parameterShapes({ dim: 8 })).toEqual([['qkv.weight', [24, 8]], ['proj.weight', [8, 8]], ['proj.bias', [8]]]);
    m.dispose();
  });

  it('window attention (2×2): the 24 patches in six windows of 4', () => {
    const m = new WindowAttention({ dim: 8, numHeads: 2, size: 2 });
    // qkv 24·8·24 = 4608; per window 2·4·4·8 = 256, six windows 1536; proj 24·64 = 1536.
    expect(total(m)).toBe(4608 + 1536 + 1536);
    expect(m.macs(g).map((e) => e.macs)).toEqual([4608, 1536, 1536]);
    expect(scalars(m.parameterShapes())).toBe(192 + 64 + 8);
    expect(WindowAttention.parameterShapes({ dim: 8 })).toEqual(built(m));
    expect(() => m.macs({ grid: [3, 6], numPrefixTokens: 0 })).toThrow(/divisible by the window size 2/);
    m.dispose();
  });

  it('static depth-wise convolution (3×3) and proj', () => {
    const m = new DwConvMixer({ dim: 8, kernelSize: 3 });
    // conv 24·8·9 = 1728; proj 1536.
    expect(m.macs(g)).toEqual([
      { name: 'conv', op: 'depthwise', macs: 1728 },
      { name: 'proj', op: 'linear', macs: 1536 },
    ]);
    // conv.weight 8·1·3·3 = 72, conv.bias 8, proj 64 + 8.
    expect(scalars(m.parameterShapes())).toBe(152);
    expect(DwConvMixer.parameterShapes({ dim: 8, kernelSize: 3 })).toEqual(built(m));
    const bare = new DwConvMixer({ dim: 8, kernelSize: 3, proj: false });
    expect(total(bare)).toBe(1728);
    expect(DwConvMixer.parameterShapes({ dim: 8, kernelSize: 3, proj: false })).toEqual(built(bare));
    tfDispose(m, bare);
  });

  it('dynamic depth-wise convolution (3×3, reduction 4): the kernel generator runs once per image', () => {
    const m = new DwConvMixer({ dim: 8, kernelSize: 3, dynamic: true, reduction: 4 });
    // fc1 8·2 = 16; fc2 2·72 = 144; conv 1728; proj 1536.
    expect(m.macs(g).map((e) => [e.name, e.macs])).toEqual([
      ['conv.fc1', 16],
      ['conv.fc2', 144],
      ['conv', 1728],
      ['proj', 1536],
    ]);
    // fc1 2·8 + 2, fc2 72·2 + 72, bias 8, proj 72.
    expect(scalars(m.parameterShapes())).toBe(18 + 216 + 8 + 72);
    expect(DwConvMixer.parameterShapes({ dim: 8, kernelSize: 3, dynamic: true, reduction: 4 })).toEqual(built(m));
    m.dispose();
  });

  it('feed-forward over the 24 patches (ratio 4: hidden 96)', () => {
    const m = new FeedForwardPatchesMixer({ dim: 8, numPatches: 24 });
    // fc1 and fc2 over the 8 channel vectors: 8·24·96 = 18432 each.
    expect(m.macs(g).map((e) => e.macs)).toEqual([18432, 18432]);
    // fc1 96·24 + 96, fc2 24·96 + 24.
    expect(scalars(m.parameterShapes())).toBe(4728);
    expect(FeedForwardPatchesMixer.parameterShapes({ numPatches: 24 })).toEqual(built(m));
    expect(() => m.macs({ grid: [4, 4], numPrefixTokens: 0 })).toThrow(/built for 24 patch tokens/);
    m.dispose();
  });
});

function tfDispose(...ms: TokenMixer[]): void {
  for (const m of ms) m.dispose();
}
