/**
 * Parity with the reference PyTorch fixtures (timm ConViT): convit_micro (every io tensor and the gradients,
 * plus a training step), convit_tiny at 224 px, and the GPSA local-init fixtures built through createModel.
 */
import * as tf from '@tensorflow/tfjs-core';
import { it, expect, vi, afterAll } from 'vitest';
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describeBackend, currentBackend, excludedHere, reducedHere, loadFixture, expectClose, fixtureTensor, repoRoot, FixtureComparison, type Fixture } from '@softbias/test-utils';
import { Gpsa } from '@softbias/gpsa';
import { createModel, loadModel, type ConViT } from '@softbias/models-convit';
import { overridesFor, writeFixtureWeights } from '../test/helpers.js';
import { fixtureModel, checkForward, checkIntrospection, checkNonlocality, checkGradients } from '../test/fixture-checks.js';

// WebGPU runs on SwiftShader (a CPU) here: generous per-test limits.
vi.setConfig({ testTimeout: 900_000 });

function img0(t: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.squeeze(tf.slice(t, [0, 0, 0, 0], [1, -1, -1, -1]), [0]));
}

const close = (f: Fixture, name: string, actual: tf.Tensor | ArrayLike<number>, shape?: number[]) =>
  expectClose(actual, f.get(name).data, f.atol(name), `${f.name}/${name}`, shape ?? f.get(name).shape);

describeBackend('models-convit: convit_micro parity (timm fixtures)', () => {
  const f = loadFixture('convit_micro');
  // The comparisons themselves live in test/fixture-checks.ts, shared with mutation.test.ts (which shows that
  // bugged models fail them).
  const cmp = () => new FixtureComparison(f, 'assert');

  it('forward: patch embedding, position embedding, every block, features, pre-logits, logits', async () => {
    const model = await fixtureModel(f);
    await checkForward(model, cmp());
    model.dispose();
  });

  it('introspection: gates, GPSA content/positional/mixed maps, MHSA map with the class token', async () => {
    const model = await fixtureModel(f);
    const gates = await model.gates();
    expect(gates[3]).toBeNull();
    const x = fixtureTensor(f.get('input_nhwc'));
    const maps = model.attentionMaps(x);
    expect(maps.map((m) => [m.layer, m.kind, m.numPrefixTokens])).toEqual([
      [0, 'gpsa', 0], [1, 'gpsa', 0], [2, 'gpsa', 0], [3, 'mhsa', 1],
    ]);
    tf.dispose(maps.flatMap((m) => [m.mixed, m.content, m.positional].filter((t): t is tf.Tensor => !!t)));
    await checkIntrospection(model, cmp());
    // One query, the class-token shift handled inside: row 2, col 5 of layer 3 = token 1 + 2·8 + 5.
    const q = model.attentionMap(x, 3, { row: 2, col: 5 });
    expect(q.shape).toEqual([2, 4, 8, 8]);
    const full = f.get('mhsa_attn_layer3_img0').data;
    const want = new Float32Array(4 * 64);
    for (let h = 0; h < 4; h++) for (let k = 0; k < 64; k++) want[h * 64 + k] = full[(h * 65 + 1 + 2 * 8 + 5) * 65 + 1 + k]!;
    const q0 = img0(q);
    await expectClose(q0, want, f.atol('mhsa_attn_layer3_img0'), 'convit_micro/attentionMap(layer 3, row 2, col 5)', [4, 8, 8]);
    const pq = model.attentionMap(x, 1, { row: 7, col: 0, which: 'positional' });
    const posFull = f.get('pos_attn_layer1').data;
    const pwant = new Float32Array(4 * 64);
    for (let h = 0; h < 4; h++) for (let k = 0; k < 64; k++) pwant[h * 64 + k] = posFull[(h * 64 + 56) * 64 + k]!;
    await expectClose(pq, pwant, f.atol('pos_attn_layer1'), 'convit_micro/attentionMap(layer 1, positional, row 7, col 0)', [1, 4, 8, 8]);
    tf.dispose([x, q, q0, pq]);
    model.dispose();
  });

  it("nonlocality both ways: 'block' = nonlocality_ctx_layer{i}, 'patch-embedding' = nonlocality_layer{i}", async () => {
    const model = await fixtureModel(f);
    await checkNonlocality(model, cmp());
    const x = fixtureTensor(f.get('input_nhwc'));
    const ctx = await model.nonlocality(x);
    expect(ctx[3]).not.toBeNull(); // MHSA in context: patch queries/keys only (no fixture value)
    x.dispose();
    model.dispose();
  });

  it('gradients (loss = Σ logits ⊙ R) match the fixture; an SGD step through GPSA updates and re-caches', async () => {
    const model = await fixtureModel(f);
    const { grads, dispose } = await checkGradients(model, cmp());
    const params = new Map(model.namedParameters());
    // Every trainable parameter got a gradient (pos_proj.bias: ~0, it cancels in the softmax).
    for (const [name, p] of model.trainableParameters()) expect(grads[p.variable.name], name).toBeDefined();
    // One SGD step on the model's parameters: w ← w − lr·g, gates included.
    const lr = 0.1;
    const gate = params.get('blocks.0.attn.gating_param')!;
    const gateBefore = await gate.value.data();
    const gateGrad = await grads[gate.variable.name]!.data();
    const opt = tf.train.sgd(lr);
    const modelGrads: tf.NamedTensorMap = {};
    for (const [, p] of model.trainableParameters()) modelGrads[p.variable.name] = grads[p.variable.name]!;
    opt.applyGradients(modelGrads);
    const want = Array.from(gateBefore, (v, i) => v - lr * gateGrad[i]!);
    await expectClose(gate.value, want, 1e-6, 'convit_micro: gating_param after one SGD step');
    // Eval after the step: the positional cache must follow the new weights. Compare with a model rebuilt
    // from the stepped weights.
    model.eval();
    const xin = fixtureTensor(f.get('input_nhwc'));
    const after = model.forward(xin);
    const rebuilt = await loadModel(await model.saveWeights());
    const ref = rebuilt.forward(xin);
    await expectClose(after, await ref.data(), 1e-5, 'convit_micro: eval logits after the step vs a rebuilt model');
    const before = fixtureTensor(f.get('logits'));
    const moved = tf.max(tf.abs(tf.sub(after, before)));
    expect((await moved.data())[0]).toBeGreaterThan(1e-3);
    dispose();
    tf.dispose([xin, after, ref, before, moved]);
    opt.dispose();
    rebuilt.dispose();
    model.dispose();
  });
});

describeBackend('models-convit: convit_tiny parity at 224 px (timm fixture)', () => {
  const f = loadFixture('convit_tiny');
  let model: ConViT | undefined;
  let x: tf.Tensor | undefined;
  const ready = async () => {
    if (!model) {
      model = createModel('convit_tiny');
      await model.loadWeights(writeFixtureWeights(f));
      x = fixtureTensor(f.get('input_nhwc'));
    }
    return { model, x: x! };
  };
  afterAll(() => {
    model?.dispose();
    x?.dispose();
  });

  it('logits and pre-logits (batch 1); the forward is timed, cold and warm', async () => {
    const { model, x } = await ready();
    const t0 = performance.now();
    const feats = model.forwardFeatures(x);
    const logits = model.forwardHead(feats);
    await logits.data();
    const cold = performance.now() - t0;
    const pre = model.forwardHead(feats, { preLogits: true });
    await close(f, 'logits', logits);
    await close(f, 'pre_logits', pre);
    // The warm (cached positional attention) forward: skipped on SwiftShader, where each 224-px forward takes a minute.
    const t1 = performance.now();
    const again = reducedHere('convit/tiny-224/warm-forward') ? null : model.forward(x);
    if (again) {
      await again.data();
      await close(f, 'logits', again);
    }
    const warm = again ? performance.now() - t1 : NaN;
    mkdirSync(join(repoRoot, '.tmp'), { recursive: true });
    appendFileSync(
      join(repoRoot, '.tmp', 'convit-tiny-timing.jsonl'),
      JSON.stringify({ backend: currentBackend, coldMs: Math.round(cold), warmMs: Math.round(warm), batch: 1, at: new Date().toISOString() }) + '\n',
    );
    tf.dispose([feats, logits, pre, ...(again ? [again] : [])]);
  });

  it('gates (gating_layer{i})', async () => {
    const { model } = await ready();
    const gates = await model.gates();
    for (let i = 0; i < 10; i++) await close(f, `gating_layer${i}`, gates[i]!);
  });

  it.skipIf(excludedHere('convit/tiny-224/nonlocality'))('nonlocality on each layer\'s real input (nonlocality_ctx_layer{i})', async () => {
    const { model, x } = await ready();
    const ctx = await model.nonlocality(x);
    for (let i = 0; i < 10; i++) await close(f, `nonlocality_ctx_layer${i}`, ctx[i]!);
  });

  it.skipIf(excludedHere('convit/tiny-224/nonlocality'))('nonlocality on the patch embeddings, as the paper measures it (nonlocality_layer{i})', async () => {
    const { model, x } = await ready();
    const official = await model.nonlocality(x, { input: 'patch-embedding' });
    for (let i = 0; i < 12; i++) await close(f, `nonlocality_layer${i}`, official[i]!);
  });
});

describeBackend('models-convit: GPSA convolutional init through createModel (local-init fixtures)', () => {
  for (const name of ['convit_local_init_h4', 'convit_local_init_h9']) {
    it(`${name}: init tensors bit for bit in every GPSA block; positional attention of block 0`, async () => {
      const f = loadFixture(name);
      const model = createModel('convit_tiny', { ...overridesFor(f), seed: 3 });
      const sd = model.stateDict();
      for (const [key, want] of f.weights) {
        await expectClose(sd.get(key)!, want.data, 0, `${name}/${key} (bit for bit)`, want.shape);
      }
      tf.dispose([...sd.values()]);
      const g = model.blocks.at(0).attn as Gpsa;
      const scores = g.positionalScores(model.gridSize);
      await close(f, 'pos_score_layer0', scores);
      const attn = g.positionalAttention(model.gridSize);
      await close(f, 'pos_attn_layer0', attn);
      tf.dispose([scores, attn]);
      model.dispose();
    });
  }
});
