/**
 * scaledDotAttention: its hand-written gradient against tfjs' autodiff of the same op sequence (plain and GPSA's
 * gated mix, with keep/gated broadcast as GPSA passes them), and the tape it leaves: fewer saved tensors.
 */
import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend, expectClose } from '@softbias/test-utils';
import { Rng, fusedAttentionActive, setFusedAttention } from '@softbias/tensor-ops';
import { scaledDotAttention } from './index.js';

function rand(shape: number[], rng: Rng, scale = 1): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const d = new Float32Array(n);
  for (let i = 0; i < n; i++) d[i] = (rng.random() * 2 - 1) * scale;
  return tf.tensor(d, shape, 'float32');
}

/** The op-by-op version (what GPSA and MHSA computed before), differentiated by tfjs. */
function opByOp(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, scale: number, keep?: tf.Tensor, gated?: tf.Tensor): tf.Tensor {
  let s = tf.matMul(q, k, false, true);
  if (scale !== 1) s = tf.mul(s, scale);
  let p = tf.softmax(s);
  if (keep && gated) {
    const a = tf.add(tf.mul(p, keep), gated);
    p = tf.div(a, tf.sum(a, -1, true));
  }
  return tf.matMul(p, v);
}

describeBackend('scaledDotAttention', () => {
  for (const mixed of [false, true]) {
    for (const [B, H, N, hd] of [[2, 3, 5, 4], [1, 4, 9, 8], [3, 1, 1, 3]] as const) {
      it(`value and gradients equal the op-by-op autodiff (${mixed ? 'GPSA mix' : 'plain'}, B${B} H${H} N${N} hd${hd})`, async () => {
        const rng = new Rng(7 + B * 31 + N);
        const q = rand([B, H, N, hd], rng);
        const k = rand([B, H, N, hd], rng);
        const v = rand([B, H, N, hd], rng);
        const dy = rand([B, H, N, hd], rng);
        const pos = tf.softmax(rand([H, N, N], rng, 3));
        const g = tf.sigmoid(rand([H, 1, 1], rng, 2));
        const keep = tf.sub(1, g);
        const gated = tf.mul(g, pos);
        const scale = hd ** -0.5;
        const inputs = mixed ? [q, k, v, keep, gated] : [q, k, v];
        const fused = (...xs: tf.Tensor[]) => tf.sum(tf.mul(scaledDotAttention(xs[0]!, xs[1]!, xs[2]!, scale, mixed ? { keep: xs[3]!, gated: xs[4]! } : undefined), dy));
        const ref = (...xs: tf.Tensor[]) => tf.sum(tf.mul(opByOp(xs[0]!, xs[1]!, xs[2]!, scale, xs[3], xs[4]), dy));
        const yF = scaledDotAttention(q, k, v, scale, mixed ? { keep, gated } : undefined);
        const yR = opByOp(q, k, v, scale, mixed ? keep : undefined, mixed ? gated : undefined);
        // Off the fused kernel the forward is the same op sequence: identical numbers. On wasm the fused kernel
        // (tensor-ops attention.test.ts proves it against float64) agrees to float32 rounding.
        const fusedOn = fusedAttentionActive();
        setFusedAttention(false);
        const yG = scaledDotAttention(q, k, v, scale, mixed ? { keep, gated } : undefined);
        setFusedAttention(true);
        expect(Array.from(await yG.data())).toEqual(Array.from(await yR.data()));
        if (fusedOn) await expectClose(yF, (await yR.data()) as Float32Array, 2e-6, `forward (fused kernel) ${mixed ? 'mixed' : 'plain'} B${B}N${N}`);
        else expect(Array.from(await yF.data())).toEqual(Array.from(await yR.data()));
        yG.dispose();
        const before = tf.memory().numTensors;
        const gF = tf.grads(fused)(inputs);
        expect(tf.memory().numTensors, 'only the gradients are left').toBe(before + inputs.length);
        const gR = tf.grads(ref)(inputs);
        const names = ['dq', 'dk', 'dv', 'dkeep', 'dgated'];
        for (let i = 0; i < inputs.length; i++) {
          expect(gF[i]!.shape, names[i]).toEqual(inputs[i]!.shape);
          const r = (await gR[i]!.data()) as Float32Array;
          let m = 0;
          for (const x of r) m = Math.max(m, Math.abs(x));
          // Two float32 orderings of the same gradient: 1e-5 relative to the largest entry (float64 agrees with
          // both far tighter; a missing term would be off by O(1)).
          await expectClose(gF[i]!, r, 1e-5 * Math.max(1, m), `${names[i]} ${mixed ? 'mixed' : 'plain'} B${B}N${N}`);
        }
        tf.dispose([q, k, v, dy, pos, g, keep, gated, yF, yR, ...gF, ...gR]);
      });
    }
  }

  it('keeps fewer tensors alive for the backward than the op-by-op version', () => {
    const rng = new Rng(3);
    const [B, H, N, hd] = [2, 4, 16, 8];
    const q = tf.variable(rand([B, H, N, hd], rng));
    const k = rand([B, H, N, hd], rng);
    const v = rand([B, H, N, hd], rng);
    const g = tf.sigmoid(rand([H, 1, 1], rng));
    const keep = tf.sub(1, g);
    const gated = tf.mul(g, tf.softmax(rand([H, N, N], rng)));
    const peak = (f: () => tf.Tensor) => {
      let bytes = 0;
      const { value, grads } = tf.variableGrads(() => {
        const y = tf.sum(f());
        bytes = tf.memory().numBytes;
        return y as tf.Scalar;
      }, [q]);
      tf.dispose([value, grads.q!, ...Object.values(grads)]);
      return bytes;
    };
    const fused = peak(() => scaledDotAttention(q, k, v, 0.5, { keep, gated }));
    const ref = peak(() => opByOp(q, k, v, 0.5, keep, gated));
    expect(fused).toBeLessThan(ref);
    tf.dispose([q, k, v, g, keep, gated]);
  });
});
