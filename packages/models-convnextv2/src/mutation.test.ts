/**
 * Mutation tests: the convnextv2_micro fixture comparison (test/fixture-checks.ts, the same code parity.test.ts
 * asserts with) must FAIL for each of these port bugs, at the tolerances cpu and wasm use:
 * - every LayerNorm at eps 1e-5 (PyTorch's default; ConvNeXt V2 uses 1e-6 throughout),
 * - GELU in its tanh form (the reference uses the exact, erf form),
 * - GRN without its eps (Nx = Gx / mean_c Gx instead of Gx / (mean_c Gx + 1e-6)).
 * The unmutated model passes the same comparison (the control). Excluded on webgpu (vitest.exclusions.ts).
 */
import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend, excludedHere, expectClose, loadFixture, FixtureComparison } from '@softbias/test-utils';
import { LayerNorm } from '@softbias/tensor-ops';
import { Grn } from '@softbias/grn';
import { ConvNeXtV2Mlp, type ConvNeXtV2 } from '@softbias/models-convnextv2';
import { modelFor, checkForward, checkGradients } from '../test/fixture-checks.js';

/** 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))): PyTorch's GELU(approximate='tanh'). */
function tanhGelu(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() =>
    tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), Math.sqrt(2 / Math.PI))), 1)),
  );
}

const f = loadFixture('convnextv2_micro');

async function model(): Promise<ConvNeXtV2> {
  const m = modelFor(f);
  await m.loadWeights(f.weights);
  return m;
}

async function failuresOf(m: ConvNeXtV2) {
  const cmp = new FixtureComparison(f, 'collect');
  await checkForward(m, cmp);
  await checkGradients(m, cmp);
  const failures = cmp.failures();
  return { cmp, failures };
}

function describeFailures(fs: { name: string; maxAbsDiff: number; atol: number }[]): string {
  return fs.slice(0, 4).map((r) => `${r.name}: ${r.maxAbsDiff.toExponential(2)} > ${r.atol.toExponential(1)}`).join('; ');
}

function each<T>(m: ConvNeXtV2, cls: abstract new (...a: never[]) => T, fn: (x: T) => void): number {
  let n = 0;
  for (const [, mod] of m.namedModules()) {
    if (mod instanceof cls) {
      fn(mod as T);
      n++;
    }
  }
  return n;
}

describeBackend('models-convnextv2: the convnextv2_micro comparison catches port bugs (mutation tests)', () => {
  const skip = excludedHere('convnextv2/mutation');

  it.skipIf(skip)('control: the model as written passes every comparison', async () => {
    const m = await model();
    const { cmp, failures } = await failuresOf(m);
    expect(cmp.results.length).toBeGreaterThan(12);
    expect(failures.map((r) => r.name)).toEqual([]);
    m.dispose();
  });

  it.skipIf(skip)('every LayerNorm at eps 1e-5 fails it', async () => {
    const m = await model();
    // stem, 3 downsamples, 5 blocks, head
    expect(each(m, LayerNorm, (ln) => ((ln as { eps: number }).eps = 1e-5))).toBe(1 + 3 + 5 + 1);
    const { failures } = await failuresOf(m);
    console.info(`[mutation] LayerNorm eps 1e-5: ${failures.length} failed; ${describeFailures(failures)}`);
    expect(failures.some((r) => r.name.endsWith('/logits'))).toBe(true);
    m.dispose();
  });

  it.skipIf(skip)('GELU in its tanh form fails it', async () => {
    const m = await model();
    const n = each(m, ConvNeXtV2Mlp, (mlp) => {
      mlp.forward = (x: tf.Tensor) => tf.tidy(() => mlp.fc2.forward(mlp.grn.forward(tanhGelu(mlp.fc1.forward(x)))));
    });
    expect(n).toBe(5);
    const { failures } = await failuresOf(m);
    console.info(`[mutation] tanh GELU: ${failures.length} failed; ${describeFailures(failures)}`);
    expect(failures.some((r) => r.name.endsWith('/logits'))).toBe(true);
    m.dispose();
  });

  it.skipIf(skip)('GRN without its eps: invisible to the fixture (O(1) activations), caught at the 1e-7 scale', async () => {
    const m = await model();
    const grns: Grn[] = [];
    expect(each(m, Grn, (g) => grns.push(g))).toBe(5);
    for (const g of grns) (g as { eps: number }).eps = 0;
    const { cmp, failures } = await failuresOf(m);
    // The fixture's GRN inputs follow a LayerNorm and an fc1, so mean_c Gx is O(1)–O(10) and the eps moves the
    // output by ~1e-7 relative, below the fixture's own float32-vs-float64 drift: no tolerance can see it there.
    const worst = cmp.results.reduce((w, r) => Math.max(w, r.maxAbsDiff / r.atol), 0);
    console.info(`[mutation] GRN eps 0: ${failures.length} fixture comparisons failed (worst |a-b|/atol ${worst.toFixed(3)})`);
    // The same mutated modules against timm's GlobalResponseNorm definition (float64, eps 1e-6) at activations
    // of scale 1e-7, where mean_c Gx is comparable with eps: the mutant is off by far more than float32 rounding.
    const g = grns[1]!;
    const C = g.dim;
    const P = 6;
    const gamma = await g.weight.value.data();
    const beta = new Float32Array(C);
    const x = Float32Array.from({ length: P * C }, (_, i) => 1e-7 * Math.sin(1.3 * i + 0.2));
    const ref = new Float64Array(P * C);
    let mean = 0;
    const gx = new Float64Array(C);
    for (let c = 0; c < C; c++) {
      for (let p = 0; p < P; p++) gx[c] += x[p * C + c]! ** 2;
      gx[c] = Math.sqrt(gx[c]!);
      mean += gx[c]! / C;
    }
    let maxRef = 0;
    for (let p = 0; p < P; p++)
      for (let c = 0; c < C; c++) {
        const i = p * C + c;
        ref[i] = x[i]! + gamma[c]! * x[i]! * (gx[c]! / (mean + 1e-6)) + beta[c]!;
        maxRef = Math.max(maxRef, Math.abs(ref[i]!));
      }
    g.bias.assign(tf.zeros([C])); // β = 0 so the γ·x·Nx term is not swamped
    const y = tf.tidy(() => g.forward(tf.tensor4d(x, [1, 2, 3, C])));
    const d = await y.data();
    let diff = 0;
    for (let i = 0; i < d.length; i++) diff = Math.max(diff, Math.abs(d[i]! - ref[i]!));
    expect(diff, 'GRN without eps vs the definition at the 1e-7 scale').toBeGreaterThan(1e-3 * maxRef);
    // Control: the same module with its eps back matches the definition to float32 rounding.
    (g as { eps: number }).eps = 1e-6;
    const y2 = tf.tidy(() => g.forward(tf.tensor4d(x, [1, 2, 3, C])));
    await expectClose(y2, ref, 1e-5 * maxRef, 'grn (eps 1e-6) at the 1e-7 scale');
    tf.dispose([y, y2]);
    m.dispose();
  });
});
