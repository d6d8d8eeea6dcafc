/**
 * Pins the eps of every normalisation in every model: 1e-6 for every LayerNorm (ConViT: norm1, norm2, the final
 * norm; ConvNeXt V2: stem, downsample, block and head norms; the FCMAE encoder and decoder, dense and sparse) and
 * every GRN, as timm and the official code (fixtures/README.md §6); PyTorch's default LayerNorm eps is 1e-5.
 * Every registered model (reduced widths: eps does not depend on them), every ConViT token mixer, the functional
 * forms' defaults, and the call sites in the sources.
 */
import * as tf from '@tensorflow/tfjs-core';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, expect } from 'vitest';
import { LayerNorm, layerNorm, type Module } from '@softbias/tensor-ops';
import { Grn, GRN_EPS, grn } from '@softbias/grn';
import { ENCODER_LN_EPS } from '@softbias/sparse-conv';
import { createModel as createConvit, listModels as convitModels, convitModelInfo, type ConvitMixerSpec } from '@softbias/models-convit';
import { MIXER_KINDS } from '@softbias/attention';
import { createModel as createConvnext, listModels as convnextModels, getModelEntry, createFcmae } from '@softbias/models-convnextv2';
import { repoRoot } from './index.js';

const EPS = 1e-6;

/** Every LayerNorm / GRN in the module tree, and any other module with a numeric `eps`, with its eps. */
function norms(m: Module): { layerNorms: number; grns: number; wrong: string[] } {
  let layerNorms = 0;
  let grns = 0;
  const wrong: string[] = [];
  for (const [name, mod] of m.namedModules()) {
    const eps = (mod as { eps?: unknown }).eps;
    if (mod instanceof LayerNorm) layerNorms++;
    if (mod instanceof Grn) grns++;
    if ((mod instanceof LayerNorm || mod instanceof Grn || typeof eps === 'number') && eps !== EPS) wrong.push(`${name || '(root)'}: ${mod.constructor.name} eps ${String(eps)}`);
  }
  return { layerNorms, grns, wrong };
}

describe('every norm in every model has eps 1e-6', () => {
  it('ConViT and DeiT twins: every registered model (2 per block + the final norm)', () => {
    for (const name of convitModels()) {
      const { localUpToLayer: lu = 0, numHeads = 1 } = convitModelInfo(name).args;
      const m = createConvit(name, { imgSize: 32, patchSize: 16, embedDim: numHeads * 4, depth: 2, localUpToLayer: lu > 0 ? 1 : 0, numClasses: 3 });
      const r = norms(m);
      expect(r.wrong, name).toEqual([]);
      expect(r.layerNorms, name).toBe(2 * 2 + 1);
      m.dispose();
    }
  });

  it('ConViT with every token mixer in place of GPSA', () => {
    const specs: ConvitMixerSpec[] = [{ kind: 'gpsa' }, { kind: 'mhsa' }, { kind: 'window', size: 2 }, { kind: 'dwconv' }, { kind: 'dwconv', dynamic: true }, { kind: 'ff-patches' }];
    expect(new Set(specs.map((s) => s.kind))).toEqual(new Set(['gpsa', ...MIXER_KINDS]));
    for (const spec of specs) {
      const kind = JSON.stringify(spec);
      const m = createConvit('convit_tiny', { imgSize: 32, patchSize: 8, embedDim: 16, numHeads: 4, depth: 2, localUpToLayer: 1, numClasses: 3, mixers: [spec, undefined] });
      const r = norms(m);
      expect(r.wrong, kind).toEqual([]);
      expect(r.layerNorms, kind).toBe(5);
      m.dispose();
    }
  });

  it('ConvNeXt V2: every registered model (stem, 3 downsamples, every block, head; a GRN per block)', () => {
    for (const name of convnextModels()) {
      const e = getModelEntry(name);
      const m = createConvnext(name, { dims: [4, 8, 8, 8], numClasses: 3 });
      const blocks = e.depths.reduce((a, b) => a + b, 0);
      const r = norms(m);
      expect(r.wrong, name).toEqual([]);
      expect(r.layerNorms, name).toBe(1 + 3 + blocks + 1);
      expect(r.grns, name).toBe(blocks);
      m.dispose();
    }
  });

  it('FCMAE: encoder and decoder modules; the sparse / masked encoder ops', () => {
    const m = createFcmae({ imgSize: 64, depths: [1, 1, 2, 1], dims: [4, 8, 8, 8], decoderDepth: 2, decoderEmbedDim: 8, patchSize: 32 });
    const r = norms(m);
    expect(r.wrong).toEqual([]);
    expect(r.layerNorms).toBe(1 + 3 + 5 + 2);
    expect(r.grns).toBe(5 + 2);
    m.dispose();
    expect(ENCODER_LN_EPS).toBe(EPS);
    expect(GRN_EPS).toBe(EPS);
  });

  it('the defaults: LayerNorm / layerNorm and Grn / grn use 1e-6 (and 1e-5 would change a low-variance input)', async () => {
    expect(new LayerNorm(4).eps).toBe(EPS);
    expect(new Grn(4).eps).toBe(EPS);
    const x = tf.tensor2d([[1, 1 + 3e-3, 1 - 2e-3, 1 + 1e-3]]); // variance ~3.5e-6: eps is visible
    const d = tf.tidy(() => [layerNorm(x, null, null), layerNorm(x, null, null, 1e-6), layerNorm(x, null, null, 1e-5)]);
    const [a, b, c] = await Promise.all(d.map((t) => t.data()));
    expect(Array.from(a!)).toEqual(Array.from(b!));
    expect(Math.max(...Array.from(a!, (v, i) => Math.abs(v - c![i]!)))).toBeGreaterThan(0.1);
    const y = tf.fill([1, 2, 2, 3], 1e-7);
    const gamma = tf.ones([3]);
    const beta = tf.zeros([3]);
    const g = tf.tidy(() => [grn(y, gamma, beta), grn(y, gamma, beta, { eps: 1e-6 })]);
    const [g0, g1] = await Promise.all(g.map((t) => t.data()));
    expect(Array.from(g0!)).toEqual(Array.from(g1!));
    tf.dispose([x, ...d, y, gamma, beta, ...g]);
  });

  it('no call site in the sources passes another eps (new LayerNorm(…, 1e-6) explicitly, no other eps literal)', () => {
    const files: string[] = [];
    const walk = (dir: string) => {
      for (const n of readdirSync(dir)) {
        const p = join(dir, n);
        if (statSync(p).isDirectory()) walk(p);
        else if (n.endsWith('.ts') && !n.endsWith('.test.ts')) files.push(p);
      }
    };
    for (const d of readdirSync(join(repoRoot, 'packages'))) {
      try {
        walk(join(repoRoot, 'packages', d, 'src'));
      } catch {
        /* no src */
      }
    }
    const bad: string[] = [];
    let layerNormSites = 0;
    for (const p of files) {
      readFileSync(p, 'utf8').split('\n').forEach((line, i) => {
        const where = `${p.slice(repoRoot.length)}:${i + 1}`;
        if (/new LayerNorm\(/.test(line)) {
          layerNormSites++;
          if (!/new LayerNorm\([^,()]+,\s*1e-6\)/.test(line)) bad.push(`${where}: ${line.trim()}`);
        }
        if (/\b(new LayerNorm|layerNorm|new Grn|grn|grnMasked|grnRows)\(/.test(line) && !/^\s*(export )?function\b/.test(line)) {
          for (const lit of line.match(/\b\d+(\.\d+)?e-\d+\b/g) ?? []) if (lit !== '1e-6') bad.push(`${where}: eps literal ${lit}`);
        }
      });
    }
    expect(bad).toEqual([]);
    expect(layerNormSites).toBeGreaterThanOrEqual(7);
  });
});
