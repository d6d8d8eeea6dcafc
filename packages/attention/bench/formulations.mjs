// Design micro-benchmark (wasm by default): alternative formulations of the attention core from a fused qkv
// [B·N, 3C] to the per-token output [B·N, C], without the linear layers. `node bench/formulations.mjs
// [wasm|cpu] [fwd|grad] [comma-separated variants]`; CONFIGS='1,197,3;8,197,3' picks (B, N, heads) rows.
// The package implements `perHeadKTMm` (strategy 'per-head') and `batchedFlags` (strategy 'batched').
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import '../../tensor-ops/src/generated/gradients.js';

const backend = process.argv[2] ?? 'wasm';
if (backend === 'cpu') await import('@tensorflow/tfjs-backend-cpu');
tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
await tf.setBackend(backend); await tf.ready();
const doGrad = process.argv[3] === 'grad';

// 2-D matmul whose gradient uses explicit transposes + flagless 2-D matmuls
const mm = tf.customGrad((a, b, save) => {
  save([a, b]);
  return { value: tf.matMul(a, b), gradFunc: (dy, [a, b]) => [tf.matMul(dy, tf.transpose(b)), tf.matMul(tf.transpose(a), dy)] };
});

function splitHeads(qkv, B, N, H, hd) { // -> [B,3H,N,hd]
  return tf.transpose(tf.reshape(qkv, [B, N, 3 * H, hd]), [0, 2, 1, 3]);
}
function mergeHeads(o, B, N, H, hd) { // o [B,H,N,hd]
  return tf.reshape(tf.transpose(o, [0, 2, 1, 3]), [B * N, H * hd]);
}
const F = {
  batchedFlags(qkv, B, N, H, hd) {
    const t = splitHeads(qkv, B, N, H, hd);
    const [q, k, v] = tf.split(t, 3, 1);
    const a = tf.softmax(tf.mul(tf.matMul(q, k, false, true), hd ** -0.5));
    return mergeHeads(tf.matMul(a, v), B, N, H, hd);
  },
  batchedExplicitT(qkv, B, N, H, hd) {
    const t = splitHeads(qkv, B, N, H, hd);
    const [q, k, v] = tf.split(t, 3, 1);
    const a = tf.softmax(tf.mul(tf.matMul(q, tf.transpose(k, [0, 1, 3, 2])), hd ** -0.5));
    return mergeHeads(tf.matMul(a, v), B, N, H, hd);
  },
  perHeadUnstack(qkv, B, N, H, hd, useMm = false) {
    const mul = useMm ? mm : tf.matMul;
    const t = tf.unstack(tf.reshape(splitHeads(tf.mul(qkv, 1), B, N, H, hd), [B * 3 * H, N, hd]));
    const outs = [];
    for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) {
      const q = tf.mul(t[b * 3 * H + h], hd ** -0.5), k = t[b * 3 * H + H + h], v = t[b * 3 * H + 2 * H + h];
      const a = tf.softmax(mul(q, tf.transpose(k)));
      outs.push(mul(a, v));
    }
    return mergeHeads(tf.reshape(tf.stack(outs), [B, H, N, hd]), B, N, H, hd);
  },
  perHeadUnstackMm(qkv, B, N, H, hd) { return F.perHeadUnstack(qkv, B, N, H, hd, true); },
  perHeadKT(qkv, B, N, H, hd, useMm = false) {
    const mul = useMm ? mm : tf.matMul;
    const C = H * hd;
    const x3 = tf.reshape(qkv, [B, N, 3 * C]);
    const [q3, k3, v3] = tf.split(x3, 3, 2);
    const q = tf.unstack(tf.reshape(tf.transpose(tf.reshape(tf.mul(q3, hd ** -0.5), [B, N, H, hd]), [0, 2, 1, 3]), [B * H, N, hd]));
    const kT = tf.unstack(tf.reshape(tf.transpose(tf.reshape(k3, [B, N, H, hd]), [0, 2, 3, 1]), [B * H, hd, N]));
    const v = tf.unstack(tf.reshape(tf.transpose(tf.reshape(v3, [B, N, H, hd]), [0, 2, 1, 3]), [B * H, N, hd]));
    const outs = [];
    for (let i = 0; i < B * H; i++) outs.push(mul(tf.softmax(mul(q[i], kT[i])), v[i]));
    return mergeHeads(tf.reshape(tf.stack(outs), [B, H, N, hd]), B, N, H, hd);
  },
  perHeadKTMm(qkv, B, N, H, hd) { return F.perHeadKT(qkv, B, N, H, hd, true); },
  perHeadOneT(qkv, B, N, H, hd) {
    const t = tf.unstack(tf.reshape(splitHeads(qkv, B, N, H, hd), [B * 3 * H, N, hd]));
    const outs = [];
    for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) {
      const q = t[b * 3 * H + h], k = t[b * 3 * H + H + h], v = t[b * 3 * H + 2 * H + h];
      const a = tf.softmax(tf.mul(mm(q, tf.transpose(k)), hd ** -0.5));
      outs.push(mm(a, v));
    }
    return mergeHeads(tf.reshape(tf.stack(outs), [B, H, N, hd]), B, N, H, hd);
  },
  perHeadSplit(qkv, B, N, H, hd) {
    const t = tf.split(tf.reshape(splitHeads(qkv, B, N, H, hd), [B * 3 * H * N, hd]), B * 3 * H, 0);
    const outs = [];
    for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) {
      const q = t[b * 3 * H + h], k = t[b * 3 * H + H + h], v = t[b * 3 * H + 2 * H + h];
      const a = tf.softmax(tf.mul(mm(q, tf.transpose(k)), hd ** -0.5));
      outs.push(mm(a, v));
    }
    return mergeHeads(tf.reshape(tf.concat(outs, 0), [B, H, N, hd]), B, N, H, hd);
  },
  perHeadFlag2d(qkv, B, N, H, hd) {
    const t = tf.unstack(tf.reshape(splitHeads(qkv, B, N, H, hd), [B * 3 * H, N, hd]));
    const outs = [];
    for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) {
      const q = tf.mul(t[b * 3 * H + h], hd ** -0.5), k = t[b * 3 * H + H + h], v = t[b * 3 * H + 2 * H + h];
      outs.push(tf.matMul(tf.softmax(tf.matMul(q, k, false, true)), v));
    }
    return mergeHeads(tf.reshape(tf.stack(outs), [B, H, N, hd]), B, N, H, hd);
  },
  perHeadSlice(qkv, B, N, H, hd) {
    const C = H * hd; const rows = [];
    for (let b = 0; b < B; b++) { const heads = [];
      for (let h = 0; h < H; h++) {
        const q = tf.mul(tf.slice(qkv, [b * N, h * hd], [N, hd]), hd ** -0.5);
        const k = tf.slice(qkv, [b * N, C + h * hd], [N, hd]);
        const v = tf.slice(qkv, [b * N, 2 * C + h * hd], [N, hd]);
        heads.push(tf.matMul(tf.softmax(tf.matMul(q, tf.transpose(k))), v));
      }
      rows.push(tf.concat(heads, 1));
    }
    return tf.concat(rows, 0);
  },
};
const names = process.argv[4] ? process.argv[4].split(',') : Object.keys(F);
const configs = [[1, 64, 3], [1, 197, 3], [4, 197, 3], [8, 64, 4], [8, 197, 3], [8, 197, 4], [32, 49, 3]].filter((c) => !process.env.CONFIGS || process.env.CONFIGS.split(';').includes(c.join(',')));
const C = 192;
// reference check
{
  const B = 2, N = 10, H = 4, hd = 48;
  const x = tf.randomNormal([B * N, 3 * C]);
  const ref = await F.batchedFlags(x, B, N, H, hd).data();
  for (const n of names) { const o = await F[n](x, B, N, H, hd).data(); let d = 0; for (let i = 0; i < o.length; i++) d = Math.max(d, Math.abs(o[i] - ref[i])); if (d > 1e-5) console.log('MISMATCH', n, d); }
}
console.log(`backend ${backend} ${doGrad ? 'forward+backward' : 'forward'} (ms, median of runs)`);
console.log(['B,N,H', ...names].join('\t'));
for (const [B, N, H] of configs) {
  const hd = C / H;
  const x = tf.randomNormal([B * N, 3 * C]);
  const w = tf.randomNormal([B * N, C]);
  const row = [`${B},${N},${H}`];
  for (const n of names) {
    const run = () => tf.tidy(() => doGrad ? tf.grad((xx) => tf.sum(tf.mul(F[n](xx, B, N, H, hd), w)))(x) : F[n](x, B, N, H, hd));
    for (let i = 0; i < 2; i++) { const r = run(); await r.data(); r.dispose(); }
    const times = [];
    const reps = 7;
    for (let i = 0; i < reps; i++) { const t0 = performance.now(); const r = run(); await r.data(); times.push(performance.now() - t0); r.dispose(); }
    times.sort((a, b) => a - b);
    row.push(times[reps >> 1].toFixed(2));
  }
  console.log(row.join('\t'));
  x.dispose(); w.dispose();
}
