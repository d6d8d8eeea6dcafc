/**
 * The main job end to end at toy size (wasm, a few dozen images): both models train, the per-epoch record holds
 * accuracy, gates (GPSA layers only) and nonlocality (every layer), and the report is one self-contained HTML
 * file with the charts. The numbers are checked for their definitions' ranges, not for a hard-coded result.
 */
import { it, expect } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runDemo, DEMO_DEFAULTS } from './demo.js';
import { lineChart, escapeHtml } from '@softbias/experiments';

it('runs the demo and writes the report', async () => {
  const out = mkdtempSync(join(tmpdir(), 'softbias-demo-'));
  const lines: string[] = [];
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
    progress: 'none',
    log: (s) => lines.push(s),
  });
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
  expect(html.match(/<svg /g)?.length).toBe(4);
  expect(html).not.toMatch(/<script|https?:\/\/(?!www\.w3\.org)/);
  const json = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
  expect(json.results[0].history.length).toBe(3);
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
