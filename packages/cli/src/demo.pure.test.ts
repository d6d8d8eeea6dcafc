/**
 * The main job end to end at toy size (wasm, a few dozen images): both models train, the per-epoch record holds
 * accuracy, gates (GPSA layers only) and nonlocality (every layer), and the report is one self-contained HTML
 * file with the charts. The numbers are checked for their definitions' ranges, not for a hard-coded result.
 * The terminal output: one backend line (an auto fallback in a clause, the Vulkan advice and Dawn's output only
 * with verbose), a progress bar inside epochs that each epoch line replaces. The report's charts: loss beside
 * accuracy, y axes fitted to the data, per-head small multiples where per-layer lines overlap.
 */
import { it, expect } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runDemo, DEMO_DEFAULTS, backendLines, demoReport, fittedRange, linesOverlap } from './demo.js';
import { lineChart, escapeHtml, type ExperimentResult } from '@softbias/experiments';
import type { BackendInfo } from '@softbias/tensor-ops';
import { loadModel } from '@softbias/models-convit';
import { labelNamesOf, readWeights } from '@softbias/tensor-ops/models';
import { FASHION_MNIST_CLASSES, FASHION_MNIST_MEAN, FASHION_MNIST_STD } from '@softbias/data';

it('runs the demo and writes the report', async () => {
  const out = mkdtempSync(join(tmpdir(), 'softbias-demo-'));
  const lines: string[] = [];
  const bar: string[] = [];
  const r = await runDemo({
    ...DEMO_DEFAULTS,
    backend: 'wasm',
    testLimit: 100,
    out,
    epochs: 2,
    fraction: 0.02,
    embedDim: 16,
    depth: 2,
    numHeads: 4,
    localUpToLayer: 1,
    batchSize: 30,
    progress: 'bar',
    output: { write: (s) => bar.push(s), isTTY: true, columns: 120 },
    log: (s) => {
      bar.push('<log>');
      lines.push(s);
    },
  });
  // The bar: redrawn in place per update (2 batches of 30 per epoch, 2 epochs, 2 models), with images/s; every
  // log line after a bar first clears it.
  const draws = bar.filter((s) => s.startsWith('\r') && s.includes('img/s'));
  expect(draws.length).toBe(8);
  expect(draws[0]).toMatch(/^\repoch 1\/2 \[.*\] 1\/2 loss \d+\.\d{4} lr [\d.e+-]+ \d+\.\d img\/s \dm\d\ds/);
  bar.forEach((s, i) => {
    if (s === '<log>') expect(bar[i - 1] ?? '', 'a log line written over the bar').not.toMatch(/^\repoch/);
  });
  expect(bar.filter((s) => s === '\r\x1b[K').length).toBe(4); // one per epoch line
  expect(lines[0]).toBe('backend: wasm, WebAssembly SIMD (softbias kernels + XNNPACK), 1 thread');
  // Epoch lines say how long the demo has left (none after the last epoch).
  expect(lines.filter((l) => / epoch \d\/2: .*; about \dm\d\ds left\)$/.test(l)).length).toBe(3);
  expect(lines.some((l) => /^DeiT twin epoch 2\/2: .*\(\d+\.\d s\)$/.test(l))).toBe(true);
  expect(r.backend.backend).toBe('wasm');
  expect(r.results.map((x) => x.spec.label)).toEqual(['ConViT', 'DeiT twin']);
  const [convit, deit] = r.results;
  for (const res of r.results) {
    expect(res.trainSamples).toBe(60); // ⌊0.02 · 300⌋ per class × 10 classes
    expect(res.history.map((h) => h.epoch)).toEqual([0, 1, 2]);
    for (const h of res.history.slice(1)) {
      expect(h.top1).toBeGreaterThanOrEqual(0);
      expect(h.top1).toBeLessThanOrEqual(1);
      expect(Number.isFinite(h.trainLoss)).toBe(true);
    }
    // Nonlocality: a mean distance on a 7×7 grid lies in [0, 6√2].
    for (const h of res.history) for (const d of h.nonlocality) expect(d).toBeGreaterThanOrEqual(0), expect(d!).toBeLessThanOrEqual(6 * Math.SQRT2);
  }
  // Gates exist for the GPSA layer only, start at σ(1) and stay in (0, 1).
  expect(convit!.history[0]!.gates[0]).toBeCloseTo(1 / (1 + Math.exp(-1)), 5);
  expect(convit!.history[0]!.gates[1]).toBeNull();
  expect(deit!.history.every((h) => h.gates.every((g) => g === null))).toBe(true);
  // The local initialisation makes the GPSA layer local at epoch 0 (positional attention peaked one patch away,
  // mixed with σ(1) ≈ 0.73), while the DeiT twin's first layer attends almost uniformly (≈ the mean pairwise distance on a 7×7 grid, 3.3).
  expect(convit!.history[0]!.nonlocality[0]!).toBeLessThan(2);
  expect(deit!.history[0]!.nonlocality[0]!).toBeGreaterThan(2.5);
  const html = readFileSync(r.reportPath, 'utf8');
  // accuracy, loss, gates, nonlocality × 2; per-head panels (one per GPSA layer, gates and nonlocality) where the
  // runner records per-head values and the layers' lines overlap (one GPSA layer here: no pair to overlap).
  expect(html.match(/<svg /g)?.length).toBe(5);
  expect(html).toContain('Training loss per epoch');
  expect(html).not.toMatch(/<script|https?:\/\/(?!www\.w3\.org)/);
  const json = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
  expect(json.results[0].history.length).toBe(3);
  // The trained ConViT is saved (ExperimentIo.onTrained) and loads back as the same architecture, with the
  // Fashion-MNIST label names.
  expect(r.weightsPath).toBe(join(out, 'convit.safetensors'));
  {
    const m = await loadModel(readFileSync(r.weightsPath!));
    expect(m.numParameters()).toBe(convit!.parameters);
    expect(m.config.localUpToLayer).toBe(1);
    expect(labelNamesOf(await readWeights(readFileSync(r.weightsPath!)))).toEqual([...FASHION_MNIST_CLASSES]);
    // …and the preprocessing it was trained with (28×28 grey, Fashion-MNIST's mean / std), for the web app.
    expect(m.pretrainedConfig).toMatchObject({ inputSize: [1, 28, 28], cropPct: 1 });
    expect(m.pretrainedConfig.mean[0]).toBeCloseTo(FASHION_MNIST_MEAN[0]!, 6);
    expect(m.pretrainedConfig.std[0]).toBeCloseTo(FASHION_MNIST_STD[0]!, 6);
    m.dispose();
    expect(lines.some((l) => l.startsWith(`weights: ${r.weightsPath} `))).toBe(true);
  }
  expect(lines.at(-1)).toMatch(/^report: /);
  expect(lines.some((l) => /^ConViT\s+top-1 \d+\.\d%/.test(l))).toBe(true);
});

it('draws charts with gaps and escapes text', () => {
  const svg = lineChart({ title: 'a<b', xLabel: 'x', yLabel: 'y', x: [0, 1, 2], series: [{ name: 's&t', values: [null, 1, 2], color: '#000' }] });
  expect(svg).toContain('a&lt;b');
  expect(svg).toContain('s&amp;t');
  // One path starting at the first defined point (x=1), two markers.
  expect(svg.match(/<path d="M[^"]*"/g)?.length).toBe(1);
  expect(svg.match(/<circle /g)?.length).toBe(2);
  expect(escapeHtml(`"'&`)).toBe('&quot;&#39;&amp;');
});

const attempt = (backend: 'webgpu' | 'wasm' | 'cpu', ok: boolean, reason: string, output?: string) => ({ backend, ok, reason, ...(output ? { output } : {}) });
const VULKAN =
  'no WebGPU adapter: Dawn found no Vulkan device. Without a GPU, install a CPU Vulkan driver (Debian: apt-get install chromium libvulkan1) and set VK_ICD_FILENAMES to its vk_swiftshader_icd.json (dpkg -L chromium-common | grep icd) and XDG_RUNTIME_DIR to a writable folder.';
const DAWN = 'Warning: Vulkan shaderUniform*ArrayDynamicIndexing required.\n - While initializing adapter (backend=BackendType::Vulkan)';

it('backend line: one line in auto mode, the fallback in a clause; the Vulkan advice and Dawn output only with verbose', () => {
  const wasm = 'WebAssembly SIMD (softbias kernels + XNNPACK), 1 thread';
  const info: BackendInfo = {
    backend: 'wasm',
    requested: 'auto',
    reason: `${wasm} (auto: webgpu skipped: ${VULKAN})`,
    attempts: [attempt('webgpu', false, VULKAN, DAWN), attempt('wasm', true, wasm)],
    runtime: 'node',
  };
  expect(backendLines(info, false)).toEqual([`backend: wasm, ${wasm} (auto: no WebGPU adapter; --verbose says why)`]);
  const loud = backendLines(info, true).join('\n');
  expect(loud).toContain(VULKAN);
  expect(loud).toContain('shaderUniform*ArrayDynamicIndexing');
  expect(loud.split('\n')[0]).toBe(`backend: wasm, ${wasm}`);
  // A CPU-emulated adapter skipped, and wasm failing so that cpu runs: each a few words; the warning verbose only.
  const cpu = 'plain JavaScript kernels (always available; slowest)';
  const worse: BackendInfo = {
    backend: 'cpu',
    requested: 'auto',
    reason: cpu,
    attempts: [
      attempt('webgpu', false, 'only a CPU-emulated adapter (google swiftshader): correct but far slower than wasm, so auto skips it'),
      attempt('wasm', false, 'tf.setBackend(\'wasm\') failed'),
      attempt('cpu', true, cpu),
    ],
    runtime: 'node',
  };
  const warn = "softbias setupBackend('auto'): the wasm backend could not start (…); running on cpu, 30–50× slower.";
  expect(backendLines(worse, false, [warn])).toEqual([
    `backend: cpu, ${cpu} (auto: WebGPU only on a CPU-emulated adapter (slower than wasm); wasm did not start, cpu is 30–50× slower; --verbose says why)`,
  ]);
  expect(backendLines(worse, true, [warn]).join('\n')).toContain(warn);
  // An explicit request: its reason, nothing about others.
  expect(backendLines({ ...info, requested: 'wasm', attempts: [attempt('wasm', true, wasm)], reason: wasm }, false)).toEqual([`backend: wasm, ${wasm}`]);
});

it('fittedRange: the data with padding, a minimum span, inside the bounds', () => {
  expect(fittedRange([0.72, 0.725, null, 0.73, Number.NaN], { minSpan: 0.002, lo: 0, hi: 1 })).toEqual({ yMin: 0.72 - 0.001, yMax: 0.73 + 0.001 });
  const r = fittedRange([0.7311, 0.7311], { minSpan: 0.02, lo: 0, hi: 1 });
  expect(r.yMin).toBeCloseTo(0.7311 - 0.012, 12);
  expect(r.yMax).toBeCloseTo(0.7311 + 0.012, 12);
  expect(fittedRange([2, 98], { lo: 0, hi: 100 })).toEqual({ yMin: 0, yMax: 100 });
  expect(fittedRange([], { lo: 0, hi: 1 })).toEqual({ yMin: 0, yMax: 1 });
  expect(linesOverlap([[0.72, 0.721], [0.7205, 0.7212]], 0.02)).toBe(true);
  expect(linesOverlap([[0.72, 0.721], [0.73, 0.74]], 0.02)).toBe(false);
  expect(linesOverlap([[0.72, null], [null, 0.72]], 0.02)).toBe(false); // no common epoch
});

/** The y-axis tick labels of each chart (`text-anchor="end"` labels), in order. */
const yTicks = (svg: string) => [...svg.matchAll(/text-anchor="end">([^<]+)</g)].map((m) => Number(m[1]));
const charts = (html: string) => html.match(/<svg [\s\S]*?<\/svg>/g) ?? [];

function result(label: string, gates: (number | null)[][], perHead?: number[][][]): ExperimentResult {
  return {
    spec: { label, model: label === 'ConViT' ? 'convit_tiny' : 'convit_tiny_deit', epochs: gates.length - 1 } as ExperimentResult['spec'],
    trainSamples: 60,
    parameters: 1000,
    finalTop1: 0.5,
    seconds: 1,
    status: 'completed',
    history: gates.map((g, e) => ({
      epoch: e,
      trainLoss: e === 0 ? Number.NaN : 2.2 - 0.1 * e,
      top1: e === 0 ? Number.NaN : 0.4 + 0.01 * e,
      gates: g,
      nonlocality: g.map((x, l) => (x === null ? 3.5 + 0.01 * l : 1.6 + 0.01 * e + 0.01 * l)),
      seconds: 1,
      ...(perHead ? { gatesPerHead: perHead[e]!, nonlocalityPerHead: perHead[e]!.map((hs, l) => (gates[e]![l] === null ? null : hs.map((x) => 1 + x))) } : {}),
    })),
  };
}

it('report: loss beside accuracy, axes fitted to the data, per-head small multiples where layer lines overlap', () => {
  const o = { ...DEMO_DEFAULTS, depth: 3, localUpToLayer: 2 };
  const backend: BackendInfo = {
    backend: 'wasm',
    requested: 'auto',
    reason: `wasm SIMD (auto: webgpu skipped: ${VULKAN})`,
    attempts: [attempt('webgpu', false, VULKAN, DAWN), attempt('wasm', true, 'wasm SIMD')],
    runtime: 'node',
  };
  // Two GPSA layers whose mean gates stay within 0.001 of each other (0.72-0.73), a plain layer (null).
  const gates = [0, 1, 2].map((e) => [0.7311 - 0.004 * e, 0.7312 - 0.004 * e, null]);
  const heads = [0, 1, 2].map((e) => [
    [0.70 - 0.01 * e, 0.72, 0.74, 0.76 + 0.01 * e],
    [0.71, 0.73 - 0.02 * e, 0.73, 0.75],
    null,
  ]) as number[][][];
  const deit = result('DeiT twin', [0, 1, 2].map(() => [null, null, null]));
  const html = demoReport(backend, [result('ConViT', gates, heads), deit], o);
  expect(html).toContain('Backend: wasm, wasm SIMD (auto: no WebGPU adapter).');
  expect(html).not.toMatch(/VK_ICD_FILENAMES|Dawn/); // the set-up advice is the terminal's --verbose, and results.json's
  const svgs = charts(html);
  // accuracy, loss, gates, 2 × nonlocality, then 2 + 2 per-head panels (gates, nonlocality; one per GPSA layer).
  expect(svgs.length).toBe(9);
  expect(svgs[1]).toContain('Training loss per epoch');
  const gateTicks = yTicks(svgs[2]!);
  expect(Math.min(...gateTicks)).toBeGreaterThan(0.6); // fitted: not 0–1
  expect(Math.max(...gateTicks)).toBeLessThan(0.8);
  const acc = yTicks(svgs[0]!);
  expect(Math.min(...acc)).toBeGreaterThanOrEqual(38); // 41–42 %, not 0–100
  expect(Math.max(...acc)).toBeLessThanOrEqual(45);
  const panels = svgs.slice(5);
  expect(panels.map((p) => /aria-label="([^"]+)"/.exec(p)![1])).toEqual([
    'layer 0: gate σ(λ) per head',
    'layer 1: gate σ(λ) per head',
    'layer 0: nonlocality per head',
    'layer 1: nonlocality per head',
  ]);
  for (const p of panels) expect(p.match(/<path /g)?.length).toBe(4); // one line per head
  // The panels share one scale that holds every head's values.
  const t0 = yTicks(panels[0]!);
  expect(yTicks(panels[1]!)).toEqual(t0);
  expect(Math.min(...t0)).toBeLessThanOrEqual(0.7);
  expect(Math.max(...t0)).toBeGreaterThanOrEqual(0.76);
  // Layers apart: no panels; no per-head record: no panels.
  const apart = [0, 1, 2].map((e) => [0.73 - 0.004 * e, 0.6 + 0.05 * e, null]);
  // (the GPSA layers' nonlocality still overlaps: its two panels only)
  const onlyNonloc = charts(demoReport(backend, [result('ConViT', apart, heads), deit], o));
  expect(onlyNonloc.slice(5).map((p) => /aria-label="([^"]+)"/.exec(p)![1])).toEqual(['layer 0: nonlocality per head', 'layer 1: nonlocality per head']);
  expect(charts(demoReport(backend, [result('ConViT', gates), deit], o)).length).toBe(5);
});
