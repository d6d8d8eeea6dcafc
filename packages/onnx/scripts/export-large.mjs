#!/usr/bin/env node
/**
 * ConvNeXt V2 large and huge, exported once (not in CI): seeded random weights, `writeOnnx` with external data
 * where the weights pass protobuf's 2 GiB limit (huge: 2.6 GB), then onnxruntime-node at batch 1 and 2 from
 * the same file against softbias' forward. Prints a Markdown table (the README's).
 *
 *   npm run build && node packages/onnx/scripts/export-large.mjs [--models convnextv2_large,convnextv2_huge]
 *        [--out /tmp/softbias-onnx-large] [--backend wasm|cpu] [--img-size 224] [--keep]
 */
import { parseArgs } from 'node:util';
import { mkdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as ort from 'onnxruntime-node';
import { setupBackend } from '@softbias/tensor-ops';
import { createModel, countParameters } from '@softbias/models-convnextv2';
import { OnnxSizeError, exportOnnxParts, writeOnnx } from '../dist/index.js';

const { values } = parseArgs({
  options: {
    models: { type: 'string', default: 'convnextv2_large,convnextv2_huge' },
    out: { type: 'string', default: '/tmp/softbias-onnx-large' },
    backend: { type: 'string', default: 'wasm' },
    'img-size': { type: 'string', default: '224' },
    keep: { type: 'boolean', default: false },
  },
});
const S = Number(values['img-size']);
const info = await setupBackend(values.backend);
mkdirSync(values.out, { recursive: true });
const now = () => performance.now();
const sec = (ms) => (ms / 1000).toFixed(1);
const size = (b) => (b >= 1e9 ? `${(b / 1e9).toFixed(2)} GB` : b >= 1e6 ? `${(b / 1e6).toFixed(1)} MB` : `${(b / 1e3).toFixed(0)} kB`);

/** Seeded random values for every parameter (vectors N(0, 0.1²), norm scales 1 + N(0, 0.1²), matrices init + N(0, 0.02²)). */
function randomize(model, seed) {
  let s = seed * 1000 + 1;
  for (const [name, p] of model.namedParameters()) {
    tf.tidy(() => {
      const v = p.value;
      const n = (std) => tf.randomNormal(v.shape, 0, std, 'float32', s++);
      const isScale = v.rank <= 1 && name.endsWith('weight') && /norm|stem\.1|downsample\.0/.test(name);
      p.variable.assign(v.rank <= 1 ? (isScale ? tf.add(1, n(0.1)) : n(0.1)) : tf.add(v, n(0.02)));
    });
  }
}

function images(n, seed) {
  const out = new Float32Array(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out[i] = (x / 2 ** 32) * 4 - 2;
  }
  return out;
}

const rows = [];
console.log(`softbias ${info.backend} (${info.reason}); onnxruntime-node ${ort.env.versions?.common ?? ''}; ${S}×${S}`);
for (const name of values.models.split(',')) {
  const t0 = now();
  const model = createModel(name, { seed: 0 });
  randomize(model, 1);
  const tBuild = now() - t0;
  // Without external data a model over 2 GiB is refused (never a broken file).
  let refused = 'n/a (under 2 GiB)';
  if (4 * countParameters(name) > 2 ** 31) {
    try {
      exportOnnxParts(model, { imgSize: S });
      refused = 'NOT refused';
    } catch (e) {
      refused = e instanceof OnnxSizeError ? 'OnnxSizeError' : `other error: ${e.message}`;
    }
  }
  const path = join(values.out, `${name}.onnx`);
  const t1 = now();
  const w = await writeOnnx(model, path, { imgSize: S }); // externalData 'auto'
  const tExport = now() - t1;
  const t2 = now();
  const sess = await ort.InferenceSession.create(path, { graphOptimizationLevel: 'all' });
  const tLoad = now() - t2;
  const diffs = [];
  const times = [];
  for (const B of [1, 2]) {
    const xd = images(B * S * S * 3, B);
    const x = tf.tensor(xd, [B, S, S, 3]);
    const ts = now();
    const y = model.forward(x);
    const want = await y.data();
    const tSoft = now() - ts;
    tf.dispose([x, y]);
    const to = now();
    const out = await sess.run({ input: new ort.Tensor('float32', xd, [B, S, S, 3]) });
    const tOrt = now() - to;
    const got = out.logits.data;
    let d = 0;
    let m = 0;
    for (let i = 0; i < want.length; i++) {
      d = Math.max(d, Math.abs(got[i] - want[i]));
      m = Math.max(m, Math.abs(want[i]));
    }
    diffs.push({ d, atol: 1e-4 * Math.max(1, m) });
    times.push({ tSoft, tOrt });
  }
  await sess.release();
  const files = `${name}.onnx ${size(statSync(path).size)}${w.dataPath ? ` + ${name}.onnx.data ${size(statSync(w.dataPath).size)}` : ''}`;
  const ok = diffs.every((x) => x.d <= x.atol);
  rows.push(
    `| ${name} | ${countParameters(name).toLocaleString('en')} | ${files} | ${refused} | ${sec(tBuild)} | ${sec(tExport)} | ${sec(tLoad)} | ` +
      `${diffs.map((x) => x.d.toExponential(1)).join(' / ')} (atol ${diffs.map((x) => x.atol.toExponential(1)).join(' / ')}) ${ok ? 'pass' : 'FAIL'} | ` +
      `${times.map((t) => `${sec(t.tSoft)} / ${sec(t.tOrt)}`).join(', ')} |`,
  );
  console.log(rows.at(-1));
  model.dispose();
  if (!values.keep) rm(path, w.dataPath);
}
function rm(...paths) {
  for (const p of paths) if (p) rmSync(p, { force: true });
}
console.log(
  [
    '',
    '| model | parameters | files | without external data | build s | export s | onnxruntime load s | max \\|Δ\\| b1 / b2 | forward s b1, b2 (softbias / onnxruntime) |',
    '|---|---|---|---|---|---|---|---|---|',
    ...rows,
  ].join('\n'),
);
process.exit(rows.every((r) => r.includes(' pass ')) ? 0 : 1);
