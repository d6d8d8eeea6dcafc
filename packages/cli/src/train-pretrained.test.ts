/**
 * `softbias train --pretrained ID` / `--weights FILE` fine-tune: a tiny ConvNeXt V2 registered with its own
 * tag and served by a 127.0.0.1 hub (SOFTBIAS_HUB_URL, a fresh SOFTBIAS_CACHE) is fine-tuned on the embedded
 * Fashion-MNIST subset: a new 10-class head, the first convolution adapted to the 1-channel images, the
 * checkpoint's input size and normalisation, the download's progress, and a model.safetensors that loads.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { describeBackend, excludedHere } from '@softbias/test-utils';
import type { BackendRequest } from '@softbias/tensor-ops';
import { imagenetConfig, models, ownLabelNames } from '@softbias/tensor-ops/models';
import { FASHION_MNIST_CLASSES } from '@softbias/data';
import { createModel } from '@softbias/models-convnextv2';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { train } from './commands.js';
import { downloadProgress } from './download-progress.js';
import { loadAnyModel } from './models.js';

const tiny = { depths: [1, 1, 1, 1], dims: [8, 8, 16, 16] } as const;
const hubId = 'timm/convnextv2_cli_test.fcmae_ft_in1k';
const pretrainedConfig = imagenetConfig({ weights: hubId, license: 'CC-BY-NC-4.0', firstConv: 'stem.0', classifier: 'head.fc', inputSize: [3, 40, 40], numClasses: 3 });
if (!models.has('convnextv2_cli_test')) {
  models.register({
    name: 'convnextv2_cli_test',
    family: 'convnextv2',
    description: 'a tiny ConvNeXt V2 for the CLI tests',
    pretrainedConfig,
    tags: [{ tag: 'fcmae_ft_in1k', hubId, pretrainedConfig }],
    create: (o = {}) => createModel('convnextv2_custom', { ...tiny, ...o }),
  });
}

let server: Server;
let dir = '';
const saved = { hub: process.env['SOFTBIAS_HUB_URL'], cache: process.env['SOFTBIAS_CACHE'] };
const files = new Map<string, Uint8Array>();

beforeAll(async () => {
  const ref = createModel('convnextv2_custom', { ...tiny, numClasses: 3, seed: 1 });
  files.set(`/${hubId}/resolve/main/model.safetensors`, await ref.saveWeights());
  ref.dispose();
  files.set(`/${hubId}/resolve/main/config.json`, new TextEncoder().encode(JSON.stringify({ architecture: 'convnextv2_cli_test', num_classes: 3 })));
  server = createServer((req, res) => {
    const body = files.get(req.url ?? '');
    if (!body) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-length': body.length, 'x-linked-etag': `"${createHash('sha256').update(body).digest('hex')}"`, 'x-linked-size': body.length });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  dir = mkdtempSync(join(tmpdir(), 'softbias-cli-pretrained-'));
  process.env['SOFTBIAS_HUB_URL'] = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  process.env['SOFTBIAS_CACHE'] = join(dir, 'cache');
});
afterAll(async () => {
  for (const [k, v] of [['SOFTBIAS_HUB_URL', saved.hub], ['SOFTBIAS_CACHE', saved.cache]] as const) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
  rmSync(dir, { recursive: true, force: true });
});

const settings = { overrides: {}, data: 'fashion-mnist-embedded', fraction: 0.02, epochs: 1, batchSize: 8, lr: 1e-3, weightDecay: 0.05, warmupEpochs: 0, labelSmoothing: 0.1, seed: 0, resume: false, progress: 'none' as const };

describeBackend('softbias train --pretrained / --weights', () => {
  it.skipIf(excludedHere('cli/train-pretrained/fine-tune'))('fine-tunes a hub checkpoint with a new head, adapted channels and its preprocessing; then the result again from --weights', async () => {
    const lines: string[] = [];
    const out = join(dir, 'run');
    const backend = tf.getBackend() as BackendRequest;
    const r = await train({ ...settings, model: '', pretrained: hubId, out, backend }, (s) => lines.push(s));
    expect(r.status).toBe('completed');
    const text = lines.join('\n');
    expect(text).toContain(`fine-tuning ${hubId}: a new 10-class head, the first convolution adapted to 1 channel(s); the checkpoint's preprocessing: 40×40, mean [0.449], std [0.226]`);
    expect(text).toContain('input 40×40');
    expect(text).toContain('CC-BY-NC-4.0');
    const { model } = await loadAnyModel(join(out, 'model.safetensors'));
    expect(model.numClasses).toBe(10);
    expect(model.pretrainedConfig.inputSize[0]).toBe(1);
    // The file carries what it was trained with: the checkpoint's 40×40 and its (grey) normalisation, the data's class names.
    expect(model.pretrainedConfig.inputSize).toEqual([1, 40, 40]);
    expect(model.pretrainedConfig.mean[0]).toBeCloseTo(0.449, 6);
    expect(model.pretrainedConfig.std[0]).toBeCloseTo(0.226, 6);
    expect(ownLabelNames(model)).toEqual([...FASHION_MNIST_CLASSES]);
    model.dispose();

    // The fine-tuned file fine-tuned again (--weights): same classes, so the head is kept.
    const again: string[] = [];
    const r2 = await train({ ...settings, model: '', weights: join(out, 'model.safetensors'), out: join(dir, 'run2'), backend }, (s) => again.push(s));
    expect(r2.status).toBe('completed');
    expect(again.join('\n')).toMatch(/fine-tuning .*model\.safetensors; the file's preprocessing: 40×40, mean \[0\.449\], std \[0\.226\]\n/);
    expect(again.join('\n')).toContain('input 40×40');
    expect(existsSync(join(dir, 'run2', 'model.safetensors'))).toBe(true);
  });

  it('the download progress: a bar redrawn in place, or lines at every quarter', () => {
    const bar: string[] = [];
    const p = downloadProgress('bar', (s) => bar.push(s));
    p({ loaded: 5e6, total: 1e7, file: 'model.safetensors' });
    p({ loaded: 1e7, total: 1e7, file: 'model.safetensors' });
    expect(bar).toEqual(['\rmodel.safetensors [############············] 50% 5.0 / 10.0 MB', '\rmodel.safetensors [########################] 100% 10.0 / 10.0 MB\n']);
    const lines: string[] = [];
    const q = downloadProgress('lines', (s) => lines.push(s));
    for (const loaded of [1e6, 2e6, 3e6, 6e6, 1e7]) q({ loaded, total: 1e7, file: 'f' });
    expect(lines).toEqual(['download f: 1.0 MB / 10.0 MB (10%)', 'download f: 3.0 MB / 10.0 MB (30%)', 'download f: 6.0 MB / 10.0 MB (60%)', 'download f: 10.0 MB / 10.0 MB (100%)'].map((l) => `${l}\n`));
  });
});
