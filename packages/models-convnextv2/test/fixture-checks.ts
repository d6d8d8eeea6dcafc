/**
 * The convnextv2_micro fixture comparison, shared by parity.test.ts (assert mode) and mutation.test.ts (collect
 * mode: a bugged model must fail it).
 */
import * as tf from '@tensorflow/tfjs-core';
import { fixtureTensor, type Fixture, type FixtureComparison } from '@softbias/test-utils';
import { toTorch } from '@softbias/tensor-ops';
import { createModel, type ConvNeXtV2 } from '@softbias/models-convnextv2';

export function modelFor(f: Fixture): ConvNeXtV2 {
  const c = f.config;
  return createModel('convnextv2_custom', {
    depths: c.depths,
    dims: c.dims,
    numClasses: c.num_classes,
    inChans: c.in_chans,
    convMlp: c.conv_mlp,
  });
}

/** NHWC tensor → NCHW data. */
export async function nchw(t: tf.Tensor): Promise<Float32Array> {
  const p = tf.transpose(t, [0, 3, 1, 2]);
  const d = (await p.data()) as Float32Array;
  p.dispose();
  return d;
}

/** stem_out, stage{i}_out_nhwc, pooled, pre_logits, logits. */
export async function checkForward(model: ConvNeXtV2, cmp: FixtureComparison): Promise<void> {
  const f = cmp.fixture;
  const x = fixtureTensor(f.get('input_nhwc'));
  const stem = model.stem.forward(x);
  await cmp.close('stem_out', await nchw(stem), { shape: null });
  const { intermediates, features } = model.forwardIntermediates(x);
  for (let i = 0; i < 4; i++) await cmp.close(`stage${i}_out_nhwc`, intermediates[i]!);
  const pooled = tf.mean(features!, [1, 2]);
  await cmp.close('pooled', pooled, { shape: null });
  const pre = model.forwardHead(features!, { preLogits: true });
  await cmp.close('pre_logits', pre, { shape: [2, 128] });
  const logits = model.forward(x);
  await cmp.close('logits', logits, { shape: [2, 10] });
  tf.dispose([x, stem, ...intermediates, features!, pooled, pre, logits]);
}

/** loss = Σ logits ⊙ R and its gradients: the six fixture parameters and the input. */
export async function checkGradients(model: ConvNeXtV2, cmp: FixtureComparison): Promise<void> {
  const f = cmp.fixture;
  const x = fixtureTensor(f.get('input_nhwc'));
  const R = fixtureTensor(f.get('loss_weights'));
  const params = new Map(model.namedParameters());
  const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(model.forward(x), R)) as tf.Scalar);
  await cmp.close('loss', value, { shape: null });
  for (const key of f.entry.gradient_params as string[]) {
    const p = params.get(key)!;
    const g = toTorch(p.layout, grads[p.variable.name]!);
    await cmp.close(`grad/${key}`, g);
    g.dispose();
  }
  const gx = tf.grad((inp: tf.Tensor) => tf.sum(tf.mul(model.forward(inp), R)))(x);
  await cmp.close('grad_input_nhwc', gx);
  tf.dispose([x, R, value, gx, ...Object.values(grads)]);
}
