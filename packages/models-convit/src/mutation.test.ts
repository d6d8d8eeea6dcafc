/**
 * Mutation tests: the convit_micro fixture comparison (test/fixture-checks.ts, the same code parity.test.ts
 * asserts with) must FAIL for each of these port bugs, at the tolerances cpu and wasm use:
 * - every LayerNorm at eps 1e-5 (PyTorch's default; timm ConViT uses 1e-6),
 * - GELU in its tanh form (timm uses the exact, erf form),
 * - the class token joined one block early (before the last GPSA block instead of the first MHSA block).
 * The unmutated model passes the same comparison (the control), so the failures come from the mutation.
 * Excluded on webgpu (vitest.exclusions.ts): the looser webgpu tolerance is not what these pin.
 */
import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend, excludedHere, loadFixture, FixtureComparison } from '@softbias/test-utils';
import { LayerNorm, Mlp } from '@softbias/tensor-ops';
import type { ConViT } from '@softbias/models-convit';
import { fixtureModel, checkAll, checkForward, checkGradients } from '../test/fixture-checks.js';

/** 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))): the approximation PyTorch offers as GELU(approximate='tanh'). */
function tanhGelu(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() =>
    tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), Math.sqrt(2 / Math.PI))), 1)),
  );
}

const ID = 'convit/mutation';
const f = loadFixture('convit_micro');

async function failuresOf(model: ConViT, which: 'all' | 'forward+grad' = 'all') {
  const cmp = new FixtureComparison(f, 'collect');
  if (which === 'all') await checkAll(model, cmp);
  else {
    await checkForward(model, cmp);
    (await checkGradients(model, cmp)).dispose();
  }
  return { cmp, failures: cmp.failures() };
}

function describeFailures(fs: { name: string; maxAbsDiff: number; atol: number }[]): string {
  return fs.slice(0, 4).map((r) => `${r.name}: ${r.maxAbsDiff.toExponential(2)} > ${r.atol.toExponential(1)}`).join('; ');
}

describeBackend('models-convit: the convit_micro comparison catches port bugs (mutation tests)', () => {
  const skip = excludedHere(ID);

  it.skipIf(skip)('control: the model as written passes every comparison', async () => {
    const model = await fixtureModel(f);
    const { cmp, failures } = await failuresOf(model);
    expect(cmp.results.length).toBeGreaterThan(30);
    expect(failures.map((r) => r.name)).toEqual([]);
    model.dispose();
  });

  it.skipIf(skip)('every LayerNorm at eps 1e-5 fails it (forward and gradients)', async () => {
    const model = await fixtureModel(f);
    let n = 0;
    for (const [, m] of model.namedModules()) {
      if (m instanceof LayerNorm) {
        (m as { eps: number }).eps = 1e-5;
        n++;
      }
    }
    expect(n).toBe(2 * 4 + 1);
    const { failures } = await failuresOf(model);
    console.info(`[mutation] LayerNorm eps 1e-5: ${failures.length} failed; ${describeFailures(failures)}`);
    expect(failures.some((r) => r.name.endsWith('/logits'))).toBe(true);
    expect(failures.some((r) => r.name.includes('/grad'))).toBe(true);
    model.dispose();
  });

  it.skipIf(skip)('GELU in its tanh form fails it', async () => {
    const model = await fixtureModel(f);
    // Every block's Mlp: fc1 → tanh-GELU → fc2 (dropout is 0 here).
    let n = 0;
    for (const [, m] of model.namedModules()) {
      if (m instanceof Mlp) {
        const mlp = m;
        mlp.forward = (x: tf.Tensor) => tf.tidy(() => mlp.fc2.forward(tanhGelu(mlp.fc1.forward(x))));
        n++;
      }
    }
    expect(n).toBe(4);
    const { failures } = await failuresOf(model);
    console.info(`[mutation] tanh GELU: ${failures.length} failed; ${describeFailures(failures)}`);
    expect(failures.some((r) => r.name.endsWith('/logits'))).toBe(true);
    model.dispose();
  });

  it.skipIf(skip)('the class token joined one block early (before the last GPSA block) fails it', async () => {
    // Blocks 0-2 stay GPSA with the fixture's weights; only where the class token is concatenated moves (2, not 3).
    const model = await fixtureModel(f, {
      localUpToLayer: 2,
      mixers: [{ kind: 'gpsa' }, { kind: 'gpsa' }, { kind: 'gpsa' }, { kind: 'mhsa' }],
    });
    expect(model.prefixAt(2)).toBe(1);
    const { failures } = await failuresOf(model, 'forward+grad');
    console.info(`[mutation] class token one block early: ${failures.length} failed; ${describeFailures(failures)}`);
    const numeric = failures.filter((r) => !('shapeMismatch' in r));
    expect(numeric.some((r) => r.name.endsWith('/logits'))).toBe(true);
    model.dispose();
  });
});
