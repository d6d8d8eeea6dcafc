/**
 * The CLI loads any registered family with one call (the one registry): names, families, files of either
 * family, FCMAE files named for what they are, and a tiny hostile file refused before allocation by
 * `loadAnyModel` and `softbias inspect`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { describe, it, expect } from 'vitest';
import { serializeSafetensors } from '@softbias/tensor-ops';
import { WeightsError } from '@softbias/tensor-ops/models';
import { createAnyModel, familyOf, listAllModels, loadAnyModel } from './models.js';
import { inspect } from './commands.js';

describe('cli models: one registry', () => {
  it('lists both families and names the registered models for an unknown one', () => {
    const all = listAllModels();
    expect(all).toEqual(expect.arrayContaining([{ family: 'convit', name: 'convit_tiny' }, { family: 'convnextv2', name: 'convnextv2_atto' }]));
    expect(familyOf('convnextv2_pico')).toBe('convnextv2');
    expect(() => familyOf('resnet50')).toThrow(/unknown model 'resnet50'; registered: .*convit_tiny.*convnextv2_atto/);
  });

  it('loadAnyModel rebuilds a file of either family, refuses FCMAE files by name', async () => {
    const a = createAnyModel('convit_tiny', { embedDim: 16, depth: 1, numHeads: 2, localUpToLayer: 1, imgSize: 16, patchSize: 8, numClasses: 3 });
    const b = createAnyModel('convnextv2_atto', { depths: [1, 1, 1, 1], dims: [8, 16, 32, 64], numClasses: 3 });
    for (const [m, family] of [[a, 'convit'], [b, 'convnextv2']] as const) {
      const r = await loadAnyModel(await m.saveWeights());
      expect(r.family).toBe(family);
      expect(r.model.numClasses).toBe(3);
      expect(r.model.namedParameters().map(([k]) => k)).toEqual(m.namedParameters().map(([k]) => k));
      r.model.dispose();
      m.dispose();
    }
    const fcmae = serializeSafetensors([['mask_token', { data: new Float32Array(4), shape: [1, 4, 1, 1] }]], { metadata: { family: 'fcmae', config: '{}' } });
    await expect(loadAnyModel(fcmae)).rejects.toThrow(/FCMAE pre-training model/);
  });

  it('a 1 KB file whose config describes a giant ConvNeXt V2 fails in inspect before allocating', async () => {
    const config = { name: 'convnextv2_custom', depths: [3, 3, 100_000, 3], dims: [4096, 8192, 16384, 32768], numClasses: 1000, inChans: 3, convMlp: false };
    const file = serializeSafetensors([['stem.0.weight', { data: new Float32Array(48), shape: [1, 3, 4, 4] }]], {
      metadata: { format: 'pt', arch: 'convnextv2_custom', family: 'convnextv2', config: JSON.stringify(config) },
    });
    expect(file.byteLength).toBeLessThan(2048);
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const path = join(mkdtempSync(join(tmpdir(), 'softbias-hostile-')), 'giant.safetensors');
    writeFileSync(path, file);
    const before = tf.memory().numTensors;
    const t0 = Date.now();
    await expect(inspect({ weights: path, overrides: {}, backend: 'cpu', data: 'fashion-mnist-embedded' }, () => {})).rejects.toThrow(WeightsError);
    await expect(loadAnyModel(path)).rejects.toThrow(/does not fit ConvNeXt V2|exceeds the limit/);
    expect(tf.memory().numTensors).toBe(before);
    expect(Date.now() - t0).toBeLessThan(10_000);
  });
});
