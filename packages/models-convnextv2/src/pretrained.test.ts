/**
 * fromPretrained end to end, on every backend: a tiny registered ConvNeXt V2 (its own registry, its own tags)
 * served by a 127.0.0.1 hub (config.json with label names, model.safetensors with X-Linked-Etag / Size),
 * loaded by hub id into the registered architecture: the same logits as the model that wrote the file, the
 * tag's preprocessing and the checkpoint's names, a new classifier with `numClasses`, an encoder-only
 * (`.fcmae`) checkpoint as a headless model, the licence said once per download, a cache hit without requests.
 * The hub protocol itself (redirects, Range, errors) is tested in tensor-ops' hub.pure.test.ts.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { describeBackend } from '@softbias/test-utils';
import { serializeSafetensors } from '@softbias/tensor-ops';
import {
  ModelRegistry,
  type PretrainedTag,
  type VisionModel,
  createPretrained,
  fromPretrained,
  fromPretrainedWithInfo,
  imagenetConfig,
  labelNamesFor,
} from '@softbias/tensor-ops/models';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ConvNeXtV2, convnextv2Family, createModel } from './index.js';

const tiny = { depths: [1, 1, 1, 1], dims: [8, 8, 16, 16] } as const;
const cfg = (tag: string, over = {}) =>
  imagenetConfig({ weights: `timm/convnextv2_test.${tag}`, license: 'CC-BY-NC-4.0', firstConv: 'stem.0', classifier: 'head.fc', inputSize: [3, 64, 64], numClasses: 3, ...over });
const tags: PretrainedTag[] = [
  { tag: 'fcmae_ft_in1k', hubId: 'timm/convnextv2_test.fcmae_ft_in1k', pretrainedConfig: cfg('fcmae_ft_in1k', { testInputSize: [3, 96, 96], testCropPct: 0.95 }) },
  { tag: 'fcmae', hubId: 'timm/convnextv2_test.fcmae', pretrainedConfig: cfg('fcmae', { numClasses: 0 }), encoderOnly: { absent: ['head.norm.', 'head.fc.'], note: 'an FCMAE encoder' } },
];
const registry = new ModelRegistry<VisionModel>('model');
registry.registerFamily(convnextv2Family);
registry.register({
  name: 'convnextv2_test',
  family: 'convnextv2',
  description: 'a tiny ConvNeXt V2 for tests',
  pretrainedConfig: tags[0]!.pretrainedConfig,
  tags,
  create: (o = {}) => createModel('convnextv2_custom', { ...tiny, ...o }),
});

const files = new Map<string, Uint8Array>();
let requests: string[] = [];
let server: Server;
let endpoint = '';
let cache = '';
let reference: ConvNeXtV2;
let encoder: ConvNeXtV2;

beforeAll(async () => {
  reference = createModel('convnextv2_custom', { ...tiny, numClasses: 3, seed: 7 });
  files.set('timm/convnextv2_test.fcmae_ft_in1k/model.safetensors', await reference.saveWeights());
  files.set('timm/convnextv2_test.fcmae_ft_in1k/config.json', new TextEncoder().encode(JSON.stringify({ architecture: 'convnextv2_test', num_classes: 3, label_names: ['ant', 'bee', 'cat'] })));
  // timm's FCMAE checkpoints: the encoder only, without head.norm and head.fc.
  encoder = createModel('convnextv2_custom', { ...tiny, numClasses: 0, seed: 9 });
  const entries: [string, { data: Float32Array; shape: number[] }][] = [];
  for (const [k, t] of encoder.stateDict()) {
    if (!k.startsWith('head.')) entries.push([k, { data: (await t.data()) as Float32Array, shape: t.shape }]);
    t.dispose();
  }
  files.set('timm/convnextv2_test.fcmae/model.safetensors', serializeSafetensors(entries));
  files.set('timm/convnextv2_test.fcmae/config.json', new TextEncoder().encode(JSON.stringify({ architecture: 'convnextv2_test', num_classes: 0 })));
  server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    const m = /^\/([^/]+\/[^/]+)\/resolve\/main\/(.+)$/.exec(req.url ?? '');
    const body = m ? files.get(`${m[1]}/${m[2]}`) : undefined;
    if (!body) {
      res.writeHead(404, { 'x-error-code': 'RepoNotFound' });
      return void res.end();
    }
    const sha = createHash('sha256').update(body).digest('hex');
    res.writeHead(200, { 'content-length': body.length, 'x-linked-etag': `"${sha}"`, 'x-linked-size': body.length });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  cache = mkdtempSync(join(tmpdir(), 'softbias-pretrained-'));
});
afterAll(async () => {
  reference?.dispose();
  encoder?.dispose();
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
  rmSync(cache, { recursive: true, force: true });
});

async function maxDiff(a: tf.Tensor, b: tf.Tensor): Promise<number> {
  const d = tf.max(tf.abs(tf.sub(a, b)));
  const v = (await d.data())[0]!;
  d.dispose();
  return v;
}

describeBackend('fromPretrained (a tiny ConvNeXt V2 on a local hub)', () => {
  it('loads a classifier tag into the registered architecture, with the tag preprocessing and the checkpoint names; the licence once', async () => {
    const warnings: string[] = [];
    const x = tf.randomNormal([1, 64, 64, 3], 0, 1, 'float32', 3);
    const { model, info } = await fromPretrainedWithInfo('timm/convnextv2_test.fcmae_ft_in1k', { registry, endpoint, cache, onWarning: (m) => warnings.push(m) });
    try {
      expect(model).toBeInstanceOf(ConvNeXtV2);
      expect(model.numClasses).toBe(3);
      const [a, b] = [model.forward(x), reference.forward(x)];
      expect(await maxDiff(a, b)).toBe(0);
      tf.dispose([a, b]);
      expect(model.pretrainedConfig).toMatchObject({ inputSize: [3, 64, 64], testInputSize: [3, 96, 96], testCropPct: 0.95, license: 'CC-BY-NC-4.0' });
      expect(model.pretrainedConfig.labelNames).toEqual(['ant', 'bee', 'cat']);
      expect(labelNamesFor(model)).toEqual(['ant', 'bee', 'cat']); // what classify names the classes with
      expect(info).toMatchObject({ architecture: 'convnextv2_test', tag: 'fcmae_ft_in1k', encoderOnly: false, labels: ['ant', 'bee', 'cat'], fromCache: false });
      expect(warnings.filter((w) => w.includes('CC-BY-NC-4.0'))).toHaveLength(1);
    } finally {
      model.dispose();
      x.dispose();
    }
    // From the cache: no request, and the licence is not said again.
    requests = [];
    const again = await fromPretrained('convnextv2_test.fcmae_ft_in1k', { registry, endpoint, cache, onWarning: (m) => warnings.push(m) });
    expect(requests).toEqual([]);
    expect(warnings.filter((w) => w.includes('CC-BY-NC-4.0'))).toHaveLength(1);
    again.dispose();
  });

  it('numClasses gives a new classifier (fine-tuning); createModel-style { pretrained: true } takes the default tag', async () => {
    const model = await createPretrained('convnextv2_test', { pretrained: true, numClasses: 5, endpoint, cache, onWarning: () => {} }, registry);
    try {
      expect(model.numClasses).toBe(5);
      expect(model.pretrainedConfig.numClasses).toBe(5);
      const y = model.forward(tf.zeros([2, 64, 64, 3]));
      expect(y.shape).toEqual([2, 5]);
      y.dispose();
    } finally {
      model.dispose();
    }
    await expect(createPretrained('convnextv2_test', { pretrained: 'timm/convnextv2_atto.fcmae' }, registry)).rejects.toThrow(/holds a convnextv2_atto, not a convnextv2_test/);
  });

  it('{ overrides: { inChans: 1 } } adapts the first convolution as timm (grey x ≡ RGB [x, x, x])', async () => {
    const model = await fromPretrained('timm/convnextv2_test.fcmae_ft_in1k', { registry, endpoint, cache, overrides: { inChans: 1 }, onWarning: () => {} });
    const gray = tf.randomNormal([1, 64, 64, 1], 0, 1, 'float32', 5);
    const rgb = tf.concat([gray, gray, gray], 3);
    try {
      const [a, b] = [model.forward(gray), reference.forward(rgb)];
      expect(await maxDiff(a, b)).toBeLessThan(1e-4);
      tf.dispose([a, b]);
      expect(model.pretrainedConfig.inputSize).toEqual([1, 64, 64]);
      expect(model.pretrainedConfig.mean[0]).toBeCloseTo((0.485 + 0.456 + 0.406) / 3, 6);
    } finally {
      model.dispose();
      tf.dispose([gray, rgb]);
    }
  });

  it('an encoder-only tag (.fcmae) is a headless model with the encoder weights, and says so', async () => {
    const warnings: string[] = [];
    const x = tf.randomNormal([1, 64, 64, 3], 0, 1, 'float32', 4);
    const model = await createPretrained('convnextv2_test', { pretrained: 'fcmae', endpoint, cache, onWarning: (m) => warnings.push(m) }, registry);
    try {
      expect(model.numClasses).toBe(0);
      const [a, b] = [model.forwardFeatures(x), encoder.forwardFeatures(x)];
      expect(await maxDiff(a, b)).toBe(0);
      tf.dispose([a, b]);
      expect(warnings.some((w) => w.includes('an FCMAE encoder') && w.includes('headless'))).toBe(true);
    } finally {
      model.dispose();
      x.dispose();
    }
  });

  it('an unregistered architecture is refused with the registered checkpoints', async () => {
    files.set('timm/resnet50.a1_in1k/config.json', new TextEncoder().encode(JSON.stringify({ architecture: 'resnet50' })));
    await expect(fromPretrained('timm/resnet50.a1_in1k', { registry, endpoint, cache })).rejects.toThrow(
      /'resnet50', which is not a registered architecture; registered checkpoints: timm\/convnextv2_test.fcmae_ft_in1k, timm\/convnextv2_test.fcmae/,
    );
  });
});
