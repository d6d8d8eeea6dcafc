/** GPSA's own MAC count and parameter shapes against counts made by hand (C = 8, 2 heads, a 4×6 grid). */
import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend } from '@softbias/test-utils';
import { Gpsa } from '@softbias/gpsa';

describeBackend('GPSA MACs and parameter shapes (counted by hand)', () => {
  it('patch tokens only; the positional projection counted until eval mode caches it', () => {
    const m = new Gpsa({ dim: 8, numHeads: 2, qkvBias: true });
    const g = { grid: [4, 6] as const, numPrefixTokens: 1 };
    // qk 24·8·16 = 3072; v 24·64 = 1536; pos_proj 24·24·3·2 = 3456; q·kᵀ and a·v 2·576·8 = 9216; proj 1536.
    expect(m.macs(g).map((e) => [e.name, e.macs])).toEqual([
      ['qk', 3072],
      ['v', 1536],
      ['pos_proj', 3456],
      ['matmuls', 9216],
      ['proj', 1536],
    ]);
    m.eval();
    const x = tf.zeros([1, 25, 8]);
    tf.dispose(m.forward({ tokens: x, ...g }));
    expect(m.macs(g).map((e) => e.name)).toEqual(['qk', 'v', 'matmuls', 'proj']);
    expect(m.macs(g, { countCached: true }).length).toBe(5);
    // gating 2, qk 16·8 + 16, v 8·8 + 8, proj 64 + 8, pos_proj 2·3 + 2.
    const n = m.parameterShapes().reduce((s, [, sh]) => s + sh.reduce((a, b) => a * b, 1), 0);
    expect(n).toBe(2 + 144 + 72 + 72 + 8);
    expect(Gpsa.parameterShapes({ dim: 8, numHeads: 2, qkvBias: true })).toEqual(m.namedParameters().map(([k, p]) => [k, p.torchShape]));
    x.dispose();
    m.dispose();
  });
});
