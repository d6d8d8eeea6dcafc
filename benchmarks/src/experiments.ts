/**
 * Two focused experiments:
 * - GPSA cached positional attention: convit_tiny eval forward with the cache (positional attention and gates
 *   computed once per grid and weights) against recomputing them every call;
 * - FCMAE encoder at mask ratio 0.6: sparse (visible rows only) against dense-masked, same weights and mask.
 */
import * as tf from '@tensorflow/tfjs-core';
import { parseSafetensors, type Module } from '@softbias/tensor-ops';
import type { Gpsa } from '@softbias/gpsa';
import { MacCounter, randomMaskData } from '@softbias/sparse-conv';
import { createFcmae } from '@softbias/models-convnextv2';
import { createBenchModel, type BenchModel } from './models.js';
import { measure, measurePair } from './measure.js';
import { maxAbs, maxAbsDiff } from './stats.js';
import type { SuiteEnv } from './suite.js';
import type { ExperimentResult, SuiteConfig } from './types.js';

export async function runExperiments(
  env: SuiteEnv,
  cfg: SuiteConfig,
  progress: (done: ExperimentResult[], running: string | null) => void = () => undefined,
): Promise<ExperimentResult[]> {
  if (cfg.mode === 'quick' && cfg.correctnessOnly) return [];
  const out: ExperimentResult[] = [];
  const run = async (name: string, fn: () => Promise<ExperimentResult>): Promise<void> => {
    progress([...out], `experiment: ${name}`);
    out.push(await fn());
    progress([...out], null);
  };
  if (cfg.models.includes('convit_tiny')) await run('GPSA cache', () => gpsaCache(env, cfg));
  if (cfg.models.includes('convnextv2_atto')) await run('FCMAE sparse vs dense-masked', () => fcmaeSparse(env, cfg));
  return out;
}

async function gpsaCache(env: SuiteEnv, cfg: SuiteConfig): Promise<ExperimentResult> {
  const name = 'convit_tiny';
  const r: ExperimentResult = {
    name: 'GPSA cached positional attention',
    description:
      'convit_tiny, eval-mode forward at batch 1 and 8. "cached": the positional attention softmax(pos_proj(rel)) and the gates of the ' +
      '10 GPSA blocks are computed once per grid and weights and reused; "recomputed": the cache is invalidated before every call ' +
      '(train() then eval(), which the model documents as invalidating it), so each forward computes them again. Two copies of the model, timed interleaved. ' +
      '"computations" counts the positional-term computations of all GPSA layers per call (Gpsa.cacheInfo()).',
    rows: [],
  };
  // Two copies of the model: one keeps its cache, the other has it invalidated before every call, so the
  // variants can be timed interleaved without one disturbing the other's steady state.
  const model = createBenchModel(name);
  const fresh = createBenchModel(name);
  const held: tf.Tensor[] = [];
  try {
    const weights = await env.readAsset(`${name}.safetensors`);
    await model.loadWeights(weights);
    await fresh.loadWeights(weights);
    const xin = parseSafetensors(await env.readAsset(`${name}.input.safetensors`)).getFloat32('x');
    const x8 = tf.tensor(xin.data, xin.shape, 'float32');
    held.push(x8);
    const x1 = tf.slice(x8, 0, 1);
    held.push(x1);
    const first: Partial<Record<'cached' | 'recomputed', Float32Array>> = {};
    for (const [b, x] of [
      [1, x1],
      [8, x8],
    ] as const) {
      env.log(`experiment: GPSA cached vs recomputed (interleaved), batch ${b}`);
      // One untimed call each first, so the counts below are the steady state (a cached model computes once).
      tf.dispose(model.forward(x));
      fresh.train();
      fresh.eval();
      tf.dispose(fresh.forward(x));
      const before = { cached: computations(model), recomputed: computations(fresh) };
      const calls = { cached: 0, recomputed: 0 };
      const variant = (key: 'cached' | 'recomputed') => async (): Promise<void> => {
        calls[key]++;
        const m = key === 'cached' ? model : fresh;
        if (key === 'recomputed') {
          m.train();
          m.eval();
        }
        const y = m.forward(x);
        const d = (await y.data()) as Float32Array;
        if (b === 1 && !first[key]) first[key] = d;
        y.dispose();
      };
      const [tc, tr] = await measurePair(variant('cached'), variant('recomputed'), { warmups: cfg.warmups, runs: cfg.runs, capMs: cfg.cellCapMs, batch: b });
      r.rows.push({
        label: `batch ${b}, cached`,
        timing: tc,
        note: `${((computations(model) - before.cached) / calls.cached).toFixed(2)} positional computations per call`,
      });
      r.rows.push({
        label: `batch ${b}, recomputed every call`,
        timing: tr,
        note: `${((computations(fresh) - before.recomputed) / calls.recomputed).toFixed(2)} positional computations per call`,
      });
    }
    if (first.cached && first.recomputed) r.maxAbsDiff = maxAbsDiff(first.cached, first.recomputed);
    for (const b of [1, 8]) {
      const c = r.rows.find((x) => x.label === `batch ${b}, cached`)?.timing;
      const n = r.rows.find((x) => x.label === `batch ${b}, recomputed every call`)?.timing;
      if (c && n) r.rows.push({ label: `batch ${b}: recomputed / cached`, value: Math.round((n.medianMs / c.medianMs) * 100) / 100 });
    }
  } catch (e) {
    r.error = (e as Error).message;
  } finally {
    model.dispose();
    fresh.dispose();
    for (const t of held) t.dispose();
  }
  return r;
}

/** Positional-term computations so far, summed over the model's GPSA layers. */
function computations(model: BenchModel): number {
  return (model as unknown as Module)
    .namedModules()
    .map(([, m]) => m)
    .filter((m): m is Gpsa => (m as { kind?: string }).kind === 'gpsa')
    .reduce((n, g) => n + g.cacheInfo().computations, 0);
}

async function fcmaeSparse(env: SuiteEnv, cfg: SuiteConfig): Promise<ExperimentResult> {
  const name = 'convnextv2_atto';
  const ratio = 0.6;
  const r: ExperimentResult = {
    name: 'FCMAE encoder: sparse vs dense-masked',
    description:
      `createFcmae({ model: '${name}', imgSize: 224, maskRatio: ${ratio} }) with its encoder set to the ${name} benchmark weights; ` +
      'Fcmae.forwardEncoder under a seeded random patch mask (7×7 patches of 32 px, GRN statistics pooled over the batch as the ' +
      'reference sparse encoder). "dense-masked" computes every site and zeroes the removed ones after each op (the reference ' +
      'semantics); "sparse" keeps only the visible rows. The unmasked dense encoder (ConvNeXtV2.forwardFeatures, same weights) is ' +
      "shown for scale. MACs are counted by @softbias/sparse-conv's MacCounter.",
    rows: [],
  };
  const model = createBenchModel(name);
  const fcmae = createFcmae({ model: name, imgSize: 224, maskRatio: ratio, init: 'timm' });
  const held: tf.Tensor[] = [];
  try {
    await model.loadWeights(await env.readAsset(`${name}.safetensors`));
    // Same block classes, same tfjs layouts: copy the classifier's encoder parameters by name.
    const src = new Map((model as unknown as Module).namedParameters());
    for (const [k, p] of fcmae.encoder.namedParameters()) {
      const s = src.get(k);
      if (!s) throw new Error(`FCMAE encoder parameter ${k} has no counterpart in ${name}`);
      p.assign(s.value);
    }
    const xin = parseSafetensors(await env.readAsset(`${name}.input.safetensors`)).getFloat32('x');
    const b = Math.max(...cfg.batches);
    const x = tf.tidy(() => tf.slice(tf.tensor(xin.data, xin.shape, 'float32'), 0, b));
    held.push(x);
    const mask = randomMaskData({ batch: b, numPatches: [7, 7], ratio, rng: 7 });
    const outs: Record<string, Float32Array> = {};
    const features = (model as unknown as { forwardFeatures(x: tf.Tensor): tf.Tensor }).forwardFeatures.bind(model);
    const variants: [string, () => tf.Tensor][] = [
      ['dense, unmasked (forwardFeatures)', () => features(x)],
      ['dense-masked', () => fcmae.forwardEncoder(x, mask, { encoder: 'dense' })],
      ['sparse', () => fcmae.forwardEncoder(x, mask, { encoder: 'sparse' })],
    ];
    for (const [label, fn] of variants) {
      env.log(`experiment: FCMAE encoder ${label}, batch ${b}`);
      const run = async (): Promise<void> => {
        const y = fn();
        const d = (await y.data()) as Float32Array;
        outs[label] ??= d;
        y.dispose();
      };
      const timing = await measure(run, { warmups: cfg.warmups, runs: cfg.runs, capMs: cfg.cellCapMs, batch: b });
      r.rows.push({ label: `${label}, batch ${b}`, timing });
    }
    const counters = { dense: new MacCounter(), sparse: new MacCounter() };
    tf.dispose(fcmae.forwardEncoder(x, mask, { encoder: 'dense', counter: counters.dense }));
    tf.dispose(fcmae.forwardEncoder(x, mask, { encoder: 'sparse', counter: counters.sparse }));
    r.rows.push({ label: 'MACs dense-masked (G)', value: round3(counters.dense.total / 1e9) });
    r.rows.push({ label: 'MACs sparse (G)', value: round3(counters.sparse.total / 1e9) });
    r.rows.push({ label: 'MACs sparse / dense-masked', value: round3(counters.sparse.total / counters.dense.total) });
    const dm = r.rows.find((x) => x.label.startsWith('dense-masked,'))?.timing;
    const sp = r.rows.find((x) => x.label.startsWith('sparse,'))?.timing;
    if (dm && sp) r.rows.push({ label: 'time sparse / dense-masked', value: round3(sp.medianMs / dm.medianMs) });
    if (outs['dense-masked'] && outs['sparse']) {
      r.maxAbsDiff = maxAbsDiff(outs['dense-masked'], outs['sparse']);
      r.rows.push({ label: 'max |sparse − dense-masked| / max |dense-masked|', value: Number((r.maxAbsDiff / maxAbs(outs['dense-masked'])).toExponential(2)) });
    }
  } catch (e) {
    r.error = (e as Error).message;
  } finally {
    model.dispose();
    fcmae.dispose();
    for (const t of held) t.dispose();
  }
  return r;
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;
