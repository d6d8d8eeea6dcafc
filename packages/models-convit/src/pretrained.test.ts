/**
 * fromPretrained with a tiny registered ConViT (its own registry and tag) on a 127.0.0.1 hub, on every backend:
 * the same logits as the model that wrote the file, a new head (`numClasses`), a grey-image model from the RGB
 * checkpoint (`overrides: { inChans: 1 }`, the patch embedding summed over RGB as timm), the Apache-2.0 licence
 * not warned about. The hub protocol is tested in tensor-ops' hub.pure.test.ts.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { describeBackend } from '@softbias/test-utils';
import { ModelRegistry, type VisionModel, fromPretrained, imagenetConfig } from '@softbias/tensor-ops/models';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ConViT, convitFamily, createModel } from './index.js';

const arch = { embedDim: 32, numHeads: 2, depth: 2, localUpToLayer: 1, imgSize: 32, patchSize: 8 };
const hubId = 'timm/convit_test.fb_in1k';
const pretrainedConfig = imagenetConfig({ weights: hubId, license: 'apache-2.0', firstConv: 'patch_embed.proj', classifier: 'head', inputSize: [3, 32, 32], numClasses: 4 });
const registry = new ModelRegistry<VisionModel>('model');
registry.registerFamily(convitFamily);
registry.register({
  name: 'convit_test',
  family: 'convit',
  description: 'a tiny ConViT for tests',
  pretrainedConfig,
  tags: [{ tag: 'fb_in1k', hubId, pretrainedConfig }],
  create: (o = {}) => createModel('convit_tiny', { ...arch, ...o }),
});

let server: Server;
let endpoint = '';
let cache = '';
let reference: ConViT;
const files = new Map<string, Uint8Array>();

beforeAll(async () => {
  reference = createModel('convit_tiny', { ...arch, numClasses: 4, seed: 3 });
  files.set(`/${hubId}/resolve/main/model.safetensors`, await reference.saveWeights());
  files.set(`/${hubId}/resolve/main/config.json`, new TextEncoder().encode(JSON.stringify({ architecture: 'convit_test', num_classes: 4 })));
  server = createServer((req, res) => {
    const body = files.get(req.url ?? '');
    if (!body) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-length': body.length, 'x-linked-etag': `"${createHash('sha256').update(body).digest('hex')}"` });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  cache = mkdtempSync(join(tmpdir(), 'softbias-convit-pretrained-'));
});
afterAll(async () => {
  reference?.dispose();
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

describeBackend('fromPretrained (a tiny ConViT on a local hub)', () => {
  it('the checkpoint in the registered architecture; a new head; grey input from the RGB patch embedding', async () => {
    const warnings: string[] = [];
    const x = tf.randomNormal([2, 32, 32, 3], 0, 1, 'float32', 1);
    const model = await fromPretrained(hubId, { registry, endpoint, cache, onWarning: (m) => warnings.push(m) });
    try {
      expect(model).toBeInstanceOf(ConViT);
      const [a, b] = [model.forward(x), reference.forward(x)];
      expect(await maxDiff(a, b)).toBe(0);
      tf.dispose([a, b]);
      expect(warnings).toEqual([]); // Apache-2.0: nothing to say
    } finally {
      model.dispose();
    }
    const headed = await fromPretrained(hubId, { registry, endpoint, cache, numClasses: 7 });
    const y = headed.forward(x);
    expect(y.shape).toEqual([2, 7]);
    tf.dispose([y]);
    headed.dispose();

    const gray = tf.randomNormal([2, 32, 32, 1], 0, 1, 'float32', 2);
    const rgb = tf.concat([gray, gray, gray], 3);
    const grey = await fromPretrained(hubId, { registry, endpoint, cache, overrides: { inChans: 1 } });
    try {
      const [a, b] = [grey.forward(gray), reference.forward(rgb)];
      expect(await maxDiff(a, b)).toBeLessThan(1e-4);
      tf.dispose([a, b]);
    } finally {
      grey.dispose();
      tf.dispose([gray, rgb, x]);
    }
  });
});
