/**
 * The convit_micro fixture comparison, shared by parity.test.ts (assert mode: the parity test) and
 * mutation.test.ts (collect mode: a bugged model must fail it). Each function compares every tensor it covers.
 */
import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'vitest';
import { fixtureTensor, type Fixture, type FixtureComparison } from '@softbias/test-utils';
import { toTorch } from '@softbias/tensor-ops';
import { createModel, type ConViT, type ConvitOverrides } from '@softbias/models-convit';
import { overridesFor, writeFixtureWeights } from './helpers.js';

/** A model built from the fixture's config (plus `extra` overrides) with the fixture's weights loaded. */
export async function fixtureModel(f: Fixture, extra: ConvitOverrides = {}): Promise<ConViT> {
  const model = createModel('convit_tiny', { ...overridesFor(f), ...extra });
  const r = await model.loadWeights(writeFixtureWeights(f));
  expect(r.notices).toEqual([]);
  expect(r.loaded.length).toBe(f.weights.size);
  return model;
}

function img0(t: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.squeeze(tf.slice(t, [0, 0, 0, 0], [1, -1, -1, -1]), [0]));
}

/** patch_embed_out, pos_embed_out, block{i}_out, features, pre_logits, logits. */
export async function checkForward(model: ConViT, cmp: FixtureComparison): Promise<void> {
  const f = cmp.fixture;
  const x = fixtureTensor(f.get('input_nhwc'));
  const pe = model.patch_embed.forward(x);
  await cmp.close('patch_embed_out', pe);
  const pos = tf.add(pe, model.pos_embed!.value);
  await cmp.close('pos_embed_out', pos);
  const r = model.forwardIntermediates(x, { outputFmt: 'NLC', returnPrefixTokens: true });
  for (let i = 0; i < f.config.depth; i++) {
    const pre = r.prefixTokens![i];
    const full = pre ? tf.concat([pre, r.intermediates[i]!], 1) : r.intermediates[i]!;
    await cmp.close(`block${i}_out`, full);
    if (pre) full.dispose();
  }
  await cmp.close('features', r.features!);
  const preLogits = model.forwardHead(r.features!, { preLogits: true });
  await cmp.close('pre_logits', preLogits);
  const logits = model.forward(x);
  await cmp.close('logits', logits);
  tf.dispose([x, pe, pos, r.features!, ...r.intermediates, ...r.prefixTokens!.filter((t): t is tf.Tensor => !!t), preLogits, logits]);
}

/** gating_layer{i}, the GPSA content / positional / mixed maps of image 0, the MHSA map with the class token. */
export async function checkIntrospection(model: ConViT, cmp: FixtureComparison): Promise<void> {
  const f = cmp.fixture;
  const L = f.config.local_up_to_layer as number;
  const x = fixtureTensor(f.get('input_nhwc'));
  const gates = await model.gates();
  for (let i = 0; i < L; i++) await cmp.close(`gating_layer${i}`, gates[i]!);
  const maps = model.attentionMaps(x);
  for (let i = 0; i < L; i++) {
    const m = maps[i]!;
    const mixed0 = img0(m.mixed);
    const content0 = img0(m.content!);
    await cmp.close(`attn_layer${i}_img0`, mixed0);
    await cmp.close(`patch_attn_layer${i}_img0`, content0);
    await cmp.close(`pos_attn_layer${i}`, m.positional!);
    tf.dispose([mixed0, content0]);
  }
  for (let i = L; i < f.config.depth; i++) {
    const m0 = img0(maps[i]!.mixed);
    await cmp.close(`mhsa_attn_layer${i}_img0`, m0);
    m0.dispose();
  }
  tf.dispose([x, ...maps.flatMap((m) => [m.mixed, m.content, m.positional].filter((t): t is tf.Tensor => !!t))]);
}

/** nonlocality_ctx_layer{i} (GPSA layers, in context) and nonlocality_layer{i} (every layer, on the patch embeddings). */
export async function checkNonlocality(model: ConViT, cmp: FixtureComparison): Promise<void> {
  const f = cmp.fixture;
  const x = fixtureTensor(f.get('input_nhwc'));
  const ctx = await model.nonlocality(x);
  for (let i = 0; i < f.config.local_up_to_layer; i++) await cmp.close(`nonlocality_ctx_layer${i}`, ctx[i]!);
  const official = await model.nonlocality(x, { input: 'patch-embedding' });
  for (let i = 0; i < f.config.depth; i++) await cmp.close(`nonlocality_layer${i}`, official[i]!);
  x.dispose();
}

/** loss = Σ logits ⊙ R, its gradient for the input and for the fixture's gradient parameters. Returns the grads. */
export async function checkGradients(model: ConViT, cmp: FixtureComparison): Promise<{ grads: tf.NamedTensorMap; dispose: () => void }> {
  const f = cmp.fixture;
  model.train();
  const x = tf.variable(fixtureTensor(f.get('input_nhwc')), true);
  const R = fixtureTensor(f.get('loss_weights'));
  const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(model.forward(x), R)) as tf.Scalar);
  await cmp.close('loss', await value.data(), { shape: [1] });
  await cmp.close('grad_input_nhwc', grads[x.name]!);
  const params = new Map(model.namedParameters());
  for (const name of f.entry.gradient_params as string[]) {
    const p = params.get(name)!;
    const g = toTorch(p.layout, grads[p.variable.name]!);
    await cmp.close(`grad/${name}`, g);
    g.dispose();
  }
  const inputGrad = grads[x.name]!;
  delete grads[x.name];
  return {
    grads,
    dispose: () => tf.dispose([x, R, value, inputGrad, ...Object.values(grads)]),
  };
}

/** Every convit_micro comparison: forward, introspection, nonlocality, gradients. */
export async function checkAll(model: ConViT, cmp: FixtureComparison): Promise<void> {
  await checkForward(model, cmp);
  await checkIntrospection(model, cmp);
  await checkNonlocality(model, cmp);
  const g = await checkGradients(model, cmp);
  g.dispose();
  model.eval();
}
