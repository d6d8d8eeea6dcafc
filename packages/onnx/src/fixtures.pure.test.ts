/**
 * The fixture models (PyTorch reference logits, fixtures/README.md) exported to ONNX and run by onnxruntime-web's
 * WebAssembly build (in Node, 1 thread) and by onnxruntime-node: convit_micro, convit_tiny, convnextv2_micro,
 * convnextv2_atto at each logits tensor's own suggested_atol, and the fcmae_tiny encoder (dense-masked form,
 * batch-pooled and per-image GRN statistics) against the reference encoder output.
 *
 * A `.pure` spec (runs once, in the cpu project); the models are only built and exported here (tfjs cpu).
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import * as ortNode from 'onnxruntime-node';
import * as ortWeb from 'onnxruntime-web';
import { setupBackend } from '@softbias/tensor-ops';
import { createModel as createConvit } from '@softbias/models-convit';
import { createFcmae, createModel as createConvnext } from '@softbias/models-convnextv2';
import { expectClose, loadFixture, type Fixture } from '@softbias/test-utils';
import { exportOnnx, type ExportableModel } from './index.js';

type Ort = typeof ortWeb;
const engines: [string, Ort][] = [
  ['onnxruntime-web (wasm)', ortWeb],
  ['onnxruntime-node', ortNode as unknown as Ort],
];

beforeAll(async () => {
  await setupBackend('cpu'); // tfjs only reads the weights and computes GPSA's positional terms here
  ortWeb.env.wasm.numThreads = 1; // no pthread workers (they would keep the test process alive)
});

function convitFor(f: Fixture): ExportableModel {
  const c = f.config;
  const m = createConvit('convit_tiny', {
    imgSize: c.img_size,
    patchSize: c.patch_size,
    inChans: c.in_chans,
    embedDim: c.embed_dim,
    depth: c.depth,
    numHeads: c.num_heads,
    localUpToLayer: c.local_up_to_layer,
    localityStrength: c.locality_strength,
    numClasses: c.num_classes,
    usePosEmbed: c.use_pos_embed,
    mlpRatio: c.mlp_ratio,
    qkvBias: c.qkv_bias,
  });
  m.loadStateDict(f.weights);
  return m;
}

function convnextFor(f: Fixture): ExportableModel {
  const c = f.config;
  const m = createConvnext('convnextv2_custom', { depths: c.depths, dims: c.dims, numClasses: c.num_classes, inChans: c.in_chans, convMlp: c.conv_mlp });
  m.loadStateDict(f.weights);
  return m;
}

async function run(ort: Ort, bytes: Uint8Array, feeds: Record<string, { data: Float32Array; dims: number[] }>, output: string) {
  const sess = await ort.InferenceSession.create(bytes, { executionProviders: [ort === ortWeb ? 'wasm' : 'cpu'], graphOptimizationLevel: 'all' });
  try {
    const inputs: Record<string, ortWeb.Tensor> = {};
    for (const [k, v] of Object.entries(feeds)) inputs[k] = new ort.Tensor('float32', v.data, v.dims);
    const out = await sess.run(inputs);
    return { data: out[output]!.data as Float32Array, dims: [...out[output]!.dims] };
  } finally {
    await sess.release();
  }
}

describe('fixture models in onnxruntime (wasm and native) = the PyTorch reference logits', () => {
  for (const name of ['convit_micro', 'convit_tiny', 'convnextv2_micro', 'convnextv2_atto']) {
    it(name, async () => {
      const f = loadFixture(name);
      const model = name.startsWith('convit') ? convitFor(f) : convnextFor(f);
      const input = f.get('input_nhwc');
      const bytes = exportOnnx(model, { opset: 17, dynamicBatch: true, imgSize: [input.shape[1]!, input.shape[2]!] });
      model.dispose();
      const logits = f.get('logits');
      for (const [label, ort] of engines) {
        const y = await run(ort, bytes, { input: { data: input.data, dims: input.shape } }, 'logits');
        expect(y.dims).toEqual(logits.shape);
        await expectClose(y.data, logits.data, f.atol('logits'), `${name}/logits ${label}`);
      }
    });
  }

  it('fcmae_tiny encoder (dense-masked form, input + mask): batch-pooled and per-image GRN statistics', async () => {
    const f = loadFixture('fcmae_tiny');
    const c = f.config;
    const fcmae = createFcmae({
      imgSize: c.img_size,
      inChans: c.in_chans,
      depths: c.depths,
      dims: c.dims,
      decoderDepth: c.decoder_depth,
      decoderEmbedDim: c.decoder_embed_dim,
      patchSize: c.patch_size,
      maskRatio: c.mask_ratio,
    });
    fcmae.loadStateDict(f.weights);
    const input = f.get('input_nhwc');
    const mask = f.get('mask');
    for (const [stats, suffix] of [['batch', ''], ['sample', '_grn_per_sample']] as const) {
      const bytes = exportOnnx(fcmae, { grnStats: stats });
      // The reference output is NCHW [2, 64, 4, 4]; the export's NHWC [2, 4, 4, 64].
      const ref = f.get(`encoder_out${suffix}`);
      const [B, C, H, W] = ref.shape as [number, number, number, number];
      const want = new Float32Array(ref.data.length);
      for (let b = 0; b < B; b++) for (let ch = 0; ch < C; ch++) for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
        want[((b * H + y) * W + x) * C + ch] = ref.data[((b * C + ch) * H + y) * W + x]!;
      }
      for (const [label, ort] of engines) {
        const y = await run(ort, bytes, { input: { data: input.data, dims: input.shape }, mask: { data: mask.data, dims: mask.shape } }, 'features');
        expect(y.dims).toEqual([B, H, W, C]);
        await expectClose(y.data, want, f.atol(`encoder_out${suffix}`), `fcmae_tiny/encoder_out${suffix} ${label}`);
      }
    }
    // And softbias' own dense-masked encoder on the same inputs (the export's definition).
    const x = tf.tensor(input.data, input.shape);
    const latent = fcmae.forwardEncoder(x, mask.data, { encoder: 'dense', grnStats: 'batch' });
    const y = await run(ortNode as unknown as Ort, exportOnnx(fcmae, { grnStats: 'batch' }), { input: { data: input.data, dims: input.shape }, mask: { data: mask.data, dims: mask.shape } }, 'features');
    await expectClose(y.data, (await latent.data()) as Float32Array, 1e-4 * Math.max(1, ...Array.from(y.data, Math.abs)), 'fcmae_tiny encoder: onnxruntime-node vs softbias');
    tf.dispose([x, latent]);
    fcmae.dispose();
  });
});
