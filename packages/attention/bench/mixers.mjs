// Micro-benchmark of the mixers on a tfjs backend (default wasm, 1 thread): `node bench/mixers.mjs [wasm|cpu] [filter]`.
// Bundles src/ with esbuild (tfjs external) into bench/out/, then times forward and forward+backward
// (gradients w.r.t. the input and every parameter) as medians of interleaved runs.
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const here = fileURLToPath(new URL('.', import.meta.url));
const outfile = join(here, 'out', 'attention.mjs');
await build({
  entryPoints: [join(here, '..', 'src', 'index.ts')],
  bundle: true,
  format: 'esm',
  platform: 'node',
  outfile,
  external: ['@tensorflow/*'],
  alias: { '@softbias/tensor-ops': join(here, '..', '..', 'tensor-ops', 'src', 'index.ts') },
  logLevel: 'error',
});
const tf = await import('@tensorflow/tfjs-core');
const A = await import(outfile);
const backend = process.argv[2] ?? 'wasm';
if (backend === 'wasm') await import('@tensorflow/tfjs-backend-wasm');
else await import('@tensorflow/tfjs-backend-cpu');
tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
await tf.setBackend(backend);
await tf.ready();
const filter = process.argv[3] ? new RegExp(process.argv[3]) : null;

/** Medians of interleaved runs of several functions (interleaving cancels drift from other load). */
async function timeAll(fns, reps) {
  const once = async (fn) => {
    const t0 = performance.now();
    const r = fn();
    await r.data();
    const dt = performance.now() - t0;
    r.dispose();
    return dt;
  };
  for (const fn of fns) for (let i = 0; i < 2; i++) await once(fn);
  const t = fns.map(() => []);
  for (let i = 0; i < reps; i++) for (let j = 0; j < fns.length; j++) t[j].push(await once(fns[j]));
  return t.map((a) => a.sort((x, y) => x - y)[reps >> 1]);
}

function runners(mixer, B, grid, prefix, C) {
  const N = prefix + grid[0] * grid[1];
  const x = tf.randomNormal([B, N, C]);
  const input = { tokens: x, grid, numPrefixTokens: prefix };
  const vars = mixer.parameters().map((p) => p.variable);
  const xv = tf.variable(x);
  return {
    fwd: () => mixer.forward(input),
    bwd: () =>
      tf.tidy(() => {
        const { value, grads } = tf.variableGrads(
          () => tf.sum(tf.square(mixer.forward({ ...input, tokens: xv }))),
          [xv, ...vars],
        );
        return tf.addN([value, ...Object.values(grads).map((g) => tf.sum(g))]);
      }),
    dispose: () => tf.dispose([x, xv]),
  };
}

const C = 192;
const reps = Number(process.env.REPS ?? 9);
/** Times the named variants side by side (interleaved) on the same input size. */
async function bench(title, variants, B, grid, prefix) {
  if (filter && !filter.test(title)) return;
  const ms = variants.map(([, make]) => make());
  const rs = ms.map((m) => runners(m, B, grid, prefix, C));
  const fwd = await timeAll(rs.map((r) => r.fwd), reps);
  const bwd = await timeAll(rs.map((r) => r.bwd), Math.max(3, reps >> 1));
  rs.forEach((r) => {
    r.dispose();
  });
  ms.forEach((m) => {
    m.dispose();
  });
  const N = prefix + grid[0] * grid[1];
  const cells = variants.map(([name], i) => `${name} ${fwd[i].toFixed(1)} / ${bwd[i].toFixed(1)}`);
  console.log(`${title}\tB=${B}\tN=${N}\t${cells.join('\t')}`);
}

console.log(`backend ${tf.getBackend()}, C=${C}, median ms: forward / forward+backward (grads w.r.t. input and parameters)`);
const strategies = (make) => [
  ['per-head', () => make('per-head')],
  ['batched', () => make('batched')],
];
for (const [grid, prefix] of [[[8, 8], 0], [[10, 10], 0], [[12, 12], 1], [[14, 14], 1]]) {
  for (const H of [3, 4]) {
    for (const B of [1, 2, 4, 8]) {
      await bench(`mhsa H${H}`, strategies((strategy) => new A.Mhsa({ dim: C, numHeads: H, strategy })), B, grid, prefix);
    }
  }
}
for (const B of [1, 8]) {
  await bench('window7 H3', strategies((strategy) => new A.WindowAttention({ dim: C, numHeads: 3, size: 7, strategy })), B, [14, 14], 1);
  await bench(
    'dwconv k7',
    [
      ['static', () => new A.DwConvMixer({ dim: C })],
      ['dynamic', () => new A.DwConvMixer({ dim: C, dynamic: true })],
    ],
    B,
    [14, 14],
    1,
  );
  await bench('ff-patches', [['ff', () => new A.FeedForwardPatchesMixer({ dim: C, numPatches: 196 })]], B, [14, 14], 1);
}
