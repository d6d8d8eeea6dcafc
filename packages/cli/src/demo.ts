/**
 * The main job, at small scale: ConViT vs its DeiT twin (same trunk, same width, depth and heads; the ConViT
 * has gated positional self-attention with the convolutional initialisation in its first layers) trained on
 * a small Fashion-MNIST set, then one self-contained HTML report with the paper's views: accuracy per epoch
 * (sample efficiency) beside the training loss, gate values per GPSA layer (Figure 5) and nonlocality per layer
 * (Figure 6) against epoch, each on axes fitted to its data, with per-head small multiples where layers overlap.
 *
 * Terminal output: one backend line (in `auto` mode a fallback is one short clause; Dawn's native adapter
 * warnings and the Vulkan set-up advice only with `verbose`), a progress bar inside epochs on a terminal
 * (`@softbias/train`'s ProgressPrinter: batches, loss, images/s), one line per epoch with the time left.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { BackendInfo, BackendRequest } from '@softbias/tensor-ops';
import { FASHION_MNIST_CLASSES, FASHION_MNIST_MEAN, FASHION_MNIST_STD, loadFashionMnist, subset, type ImageDataset } from '@softbias/data';
import { setLabelNames, setPretrainedConfig } from '@softbias/tensor-ops/models';
import { ProgressPrinter, defaultOutput, type FitProgress, type ProgressOutput } from '@softbias/train';
import type { ConViT } from '@softbias/models-convit';
import {
  color,
  escapeHtml,
  fashionMnistTrunk as trunk,
  htmlPage,
  lineChart,
  runExperiment,
  table,
  type EpochPoint,
  type ExperimentIo,
  type ExperimentResult,
  type ExperimentSpec,
} from '@softbias/experiments';
import { startBackend } from './backend-start.js';

export { backendLines } from './backend-start.js';
import { backendNote } from './backend-start.js';

export interface DemoOptions {
  out: string;
  backend: BackendRequest;
  epochs: number;
  fraction: number;
  /** 'embedded' (default): the subset shipped in @softbias/data; 'auto': the full set when installed. */
  data: 'embedded' | 'auto' | 'full';
  dataDir?: string;
  seed: number;
  embedDim: number;
  depth: number;
  numHeads: number;
  localUpToLayer: number;
  batchSize: number;
  /** Evaluate on the first N test images only (default: all). */
  testLimit?: number;
  /**
   * Inside epochs: 'bar' redraws one line per update (batches, loss, images/s; a terminal), 'lines' prints a few
   * lines per epoch, 'none' only the epoch lines.
   */
  progress: 'bar' | 'lines' | 'none';
  /** The backend's full story: every attempt's reason (with the Vulkan advice) and Dawn's native output. */
  verbose?: boolean;
  /** Where the progress bar goes (default process.stdout). */
  output?: ProgressOutput;
  log: (line: string) => void;
}

export const DEMO_DEFAULTS: Omit<DemoOptions, 'log'> = {
  out: 'out/demo',
  backend: 'auto',
  epochs: 7,
  fraction: 0.5,
  data: 'embedded',
  seed: 0,
  embedDim: 64,
  depth: 6,
  numHeads: 4,
  localUpToLayer: 4,
  batchSize: 64,
  progress: 'lines',
  verbose: false,
};

/** An epoch point with the per-head values, where the experiment runner records them. */
type HeadPoint = EpochPoint & { gatesPerHead?: (readonly number[] | null)[]; nonlocalityPerHead?: (readonly number[] | null)[] };

const clock = (seconds: number) => {
  const s = Math.max(0, Math.round(seconds));
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
};

/** @deprecated Moved to `@softbias/experiments`: `import { fashionMnistTrunk } from '@softbias/experiments'`. */
export const fashionMnistTrunk: typeof trunk = trunk;

export function demoSpecs(o: Omit<DemoOptions, 'log'>): ExperimentSpec[] {
  const overrides = trunk({ imgSize: 28, embedDim: o.embedDim, depth: o.depth, numHeads: o.numHeads });
  const common = {
    fraction: o.fraction,
    epochs: o.epochs,
    batchSize: o.batchSize,
    lr: 2e-3,
    weightDecay: 0.05,
    warmupEpochs: 1,
    labelSmoothing: 0.1,
    seed: o.seed,
    mean: FASHION_MNIST_MEAN,
    std: FASHION_MNIST_STD,
  };
  return [
    // The registered Fashion-MNIST ConViT and its DeiT twin (the defaults are their architecture).
    { label: 'ConViT', model: 'convit_fmnist', overrides: { ...overrides, localUpToLayer: o.localUpToLayer }, ...common },
    { label: 'DeiT twin', model: 'convit_fmnist_deit', overrides: { ...overrides, localUpToLayer: 0 }, ...common },
  ];
}

export interface DemoResult {
  backend: BackendInfo;
  results: ExperimentResult[];
  reportPath: string;
  seconds: number;
  /** The trained ConViT's weights (with the data's label names). */
  weightsPath?: string;
}

export async function loadDemoData(o: Pick<DemoOptions, 'data' | 'dataDir'>): Promise<{ train: ImageDataset; test: ImageDataset }> {
  const base = { source: o.data, ...(o.dataDir ? { dir: o.dataDir } : {}) } as const;
  const [train, test] = await Promise.all([
    loadFashionMnist({ ...base, split: 'train' }),
    loadFashionMnist({ ...base, split: 'test' }),
  ]);
  return { train, test };
}

export async function runDemo(o: DemoOptions): Promise<DemoResult> {
  const t0 = performance.now();
  const verbose = o.verbose ?? false;
  const backend = await startBackend(o.backend, { verbose, log: o.log });
  const data = await loadDemoData(o);
  const train = data.train;
  const test = o.testLimit && o.testLimit < data.test.length ? subset(data.test, Int32Array.from({ length: o.testLimit }, (_, i) => i)) : data.test;
  o.log(`data: Fashion-MNIST ${train.source}: ${train.length} train / ${test.length} test images, fraction ${o.fraction} of each class`);
  const out = resolve(o.out);
  mkdirSync(out, { recursive: true });
  const results: ExperimentResult[] = [];
  const specs = demoSpecs(o);
  const output = o.output ?? defaultOutput();
  // The bar is redrawn in place; a log line first clears it (the epoch line replaces the finished bar).
  let printer: ProgressPrinter | undefined;
  let barOpen = false;
  const say = (line: string) => {
    if (barOpen) output?.write('\r\x1b[K');
    barOpen = false;
    o.log(line);
  };
  const epochTimes: number[] = [];
  const totalEpochs = specs.reduce((n, s) => n + s.epochs, 0);
  let weightsPath: string | undefined;
  for (const spec of specs) {
    say(`\n== ${spec.label}: ${spec.model} ${o.embedDim} wide, depth ${o.depth}, ${o.numHeads} heads` +
      `${spec.overrides.localUpToLayer ? `, GPSA in layers 0-${(spec.overrides.localUpToLayer as number) - 1}` : ', plain self-attention'}`);
    printer = undefined;
    const io: ExperimentIo = {
      train,
      test,
      progress: 'none',
      ...(o.progress !== 'none'
        ? {
            onProgress: (p: FitProgress) => {
              printer ??= new ProgressPrinter(o.progress, output, p.batchesPerEpoch);
              printer.step(p);
              barOpen = printer.mode === 'bar';
            },
          }
        : {}),
      onEpoch: (p) => {
        epochTimes.push(p.seconds);
        const mean = epochTimes.reduce((a, b) => a + b, 0) / epochTimes.length;
        const left = totalEpochs - epochTimes.length;
        say(
          `${spec.label} epoch ${p.epoch}/${spec.epochs}: loss ${p.trainLoss.toFixed(3)}, test top-1 ${(100 * p.top1).toFixed(1)}% ` +
            `(${p.seconds.toFixed(1)} s${left > 0 ? `; about ${clock(left * mean)} left` : ''})`,
        );
      },
      // The ConViT's weights (with its preprocessing and label names) for `softbias eval` and the web app.
      ...(spec === specs[0]
        ? {
            onTrained: async (model: ConViT) => {
              weightsPath = join(out, 'convit.safetensors');
              setLabelNames(model, train.classNames.length ? train.classNames : FASHION_MNIST_CLASSES); // saved in __metadata__.labels
              // Its preprocessing (saved as __metadata__.pretrained_cfg): the data's 28×28 grey images, its mean / std.
              const [H, W, C] = train.imageShape;
              setPretrainedConfig(model, { inputSize: [C, H, W], cropPct: 1, interpolation: 'bilinear', mean: spec.mean, std: spec.std });
              await model.saveWeights(weightsPath);
            },
          }
        : {}),
    };
    const r = await runExperiment(spec, io);
    results.push(r);
  }
  const reportPath = join(out, 'report.html');
  writeFileSync(reportPath, demoReport(backend, results, o));
  writeFileSync(join(out, 'results.json'), JSON.stringify({ backend, options: { ...o, log: undefined, output: undefined }, results }, null, 2));
  const seconds = (performance.now() - t0) / 1000;
  say('');
  for (const r of results) {
    o.log(`${r.spec.label.padEnd(10)} top-1 ${(100 * r.finalTop1).toFixed(1)}%  (${r.parameters.toLocaleString('en')} parameters, ${r.trainSamples} training images, ${r.seconds.toFixed(0)} s)`);
  }
  if (weightsPath) o.log(`weights: ${weightsPath} (softbias eval --weights, or open it in the web app)`);
  o.log(`report: ${reportPath}  (total ${seconds.toFixed(0)} s)`);
  return { backend, results, reportPath, seconds, ...(weightsPath ? { weightsPath } : {}) };
}

/**
 * A y range fitted to the data: min–max padded by `pad` of the span on each side (a span under `minSpan` is
 * widened to it around its middle, so that noise is not blown up), kept inside [lo, hi].
 */
export function fittedRange(
  values: Iterable<number | null | undefined>,
  o: { pad?: number; minSpan?: number; lo?: number; hi?: number } = {},
): { yMin: number; yMax: number } {
  const { pad = 0.1, minSpan = 0, lo = Number.NEGATIVE_INFINITY, hi = Number.POSITIVE_INFINITY } = o;
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  for (const v of values) {
    if (v === null || v === undefined || !Number.isFinite(v)) continue;
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  if (!(max >= min)) return { yMin: Number.isFinite(lo) ? lo : 0, yMax: Number.isFinite(hi) ? hi : 1 };
  if (max - min < minSpan) {
    const mid = (max + min) / 2;
    [min, max] = [mid - minSpan / 2, mid + minSpan / 2];
  }
  const p = (max - min) * pad;
  let yMin = Math.max(lo, min - p);
  let yMax = Math.min(hi, max + p);
  if (!(yMax > yMin)) [yMin, yMax] = [Math.max(lo, yMin - 0.5), Math.min(hi, yMax + 0.5)];
  return { yMin, yMax };
}

/**
 * True when two of the series are never further apart than `fraction` of the chart's y span (at every x where
 * both are defined): their lines lie on top of each other at the chart's scale.
 */
export function linesOverlap(series: readonly (readonly (number | null)[])[], span: number, fraction = 0.04): boolean {
  for (let a = 0; a < series.length; a++) {
    for (let b = a + 1; b < series.length; b++) {
      let common = 0;
      let far = 0;
      series[a]!.forEach((v, j) => {
        const w = series[b]![j];
        if (v === null || w === null || w === undefined || !Number.isFinite(v) || !Number.isFinite(w)) return;
        common++;
        far = Math.max(far, Math.abs(v - w));
      });
      if (common > 0 && far <= fraction * span) return true;
    }
  }
  return false;
}

/** Per-head values of layer `l` over the epochs: one series per head (null where not measured). */
function headSeries(history: readonly HeadPoint[], key: 'gatesPerHead' | 'nonlocalityPerHead', l: number): (number | null)[][] {
  const heads = Math.max(0, ...history.map((h) => h[key]?.[l]?.length ?? 0));
  return [...Array(heads).keys()].map((hd) => history.map((h) => h[key]?.[l]?.[hd] ?? null));
}

/**
 * The HTML report: summary table; test accuracy beside the training loss per epoch; gates per GPSA layer and
 * nonlocality per layer; where per-layer lines overlap and the run recorded per-head values, one small panel per
 * GPSA layer with a line per head (gates, nonlocality). Every y axis is fitted to its data.
 */
export function demoReport(backend: BackendInfo, results: ExperimentResult[], o: Omit<DemoOptions, 'log'>): string {
  const epochs = results[0]?.history.map((h) => h.epoch) ?? [];
  const accSeries = results.map((r, i) => ({ name: r.spec.label, values: r.history.map((h) => (Number.isNaN(h.top1) ? null : 100 * h.top1)), color: color(i) }));
  const accuracy = lineChart({
    title: 'Test accuracy per epoch',
    xLabel: 'epoch',
    yLabel: 'top-1 (%)',
    x: epochs,
    ...fittedRange(accSeries.flatMap((s) => s.values), { minSpan: 2, lo: 0, hi: 100 }),
    series: accSeries,
  });
  const lossSeries = results.map((r, i) => ({ name: r.spec.label, values: r.history.map((h) => (Number.isFinite(h.trainLoss) ? h.trainLoss : null)), color: color(i) }));
  const loss = lineChart({
    title: 'Training loss per epoch (label-smoothed cross-entropy)',
    xLabel: 'epoch',
    yLabel: 'mean train loss',
    x: epochs,
    ...fittedRange(lossSeries.flatMap((s) => s.values), { minSpan: 0.05, lo: 0 }),
    series: lossSeries,
  });
  const convit = results[0]!;
  const history = convit.history as HeadPoint[];
  const depth = history[0]?.gates.length ?? 0;
  const gpsaLayers = [...Array(depth).keys()].filter((l) => history.some((h) => h.gates[l] !== null));
  const gateLines = gpsaLayers.map((l) => history.map((h) => h.gates[l] ?? null));
  const gateRange = fittedRange(gateLines.flat(), { minSpan: 0.02, lo: 0, hi: 1 });
  const gates = lineChart({
    title: `${convit.spec.label}: gate σ(λ) per GPSA layer (mean over heads; 1 = positional)`,
    xLabel: 'epoch (0 = initialisation)',
    yLabel: 'gate',
    x: epochs,
    ...gateRange,
    series: gpsaLayers.map((l, i) => ({ name: `layer ${l}`, values: gateLines[i]!, color: color(i) })),
  });
  const nonlocLines = (r: ExperimentResult) => [...Array(r.history[0]?.nonlocality.length ?? 0).keys()].map((l) => r.history.map((h) => h.nonlocality[l] ?? null));
  const nonlocRange = (r: ExperimentResult) => fittedRange(nonlocLines(r).flat(), { minSpan: 0.2, lo: 0 });
  const nonloc = (r: ExperimentResult, idx: number) =>
    lineChart({
      title: `${r.spec.label}: nonlocality per layer (mean over heads, patches)`,
      xLabel: 'epoch (0 = initialisation)',
      yLabel: 'mean attention distance (patches)',
      x: epochs,
      ...nonlocRange(r),
      series: nonlocLines(r).map((values, l) => ({ name: `layer ${l}`, values, color: color(l), dashed: idx > 0 })),
    });
  // Small multiples: one panel per GPSA layer, one line per head, on a scale shared by the panels.
  const multiples = (key: 'gatesPerHead' | 'nonlocalityPerHead', what: string, yLabel: string, bounds: { minSpan: number; lo: number; hi?: number }) => {
    const perLayer = gpsaLayers.map((l) => headSeries(history, key, l));
    if (!perLayer.some((hs) => hs.length > 0)) return '';
    const range = fittedRange(perLayer.flat(2), bounds);
    const panels = gpsaLayers.map((l, i) =>
      lineChart({
        title: `layer ${l}: ${what} per head`,
        xLabel: 'epoch',
        yLabel,
        x: epochs,
        width: 380,
        height: 220,
        ...range,
        series: perLayer[i]!.map((values, hd) => ({ name: `head ${hd}`, values, color: color(hd) })),
      }),
    );
    return `<h2>${escapeHtml(convit.spec.label)}: ${escapeHtml(what)} per head</h2>\n<div class="charts">${panels.join('')}</div>`;
  };
  const gpsaNonloc = nonlocLines(convit).filter((_, l) => gpsaLayers.includes(l));
  const convitNonloc = nonlocRange(convit);
  const perHead = [
    linesOverlap(gateLines, gateRange.yMax - gateRange.yMin) ? multiples('gatesPerHead', 'gate σ(λ)', 'gate', { minSpan: 0.02, lo: 0, hi: 1 }) : '',
    linesOverlap(gpsaNonloc, convitNonloc.yMax - convitNonloc.yMin) ? multiples('nonlocalityPerHead', 'nonlocality', 'patches', { minSpan: 0.2, lo: 0 }) : '',
  ].join('\n');
  const rows = results.map((r) => [
    r.spec.label,
    r.spec.model,
    r.parameters.toLocaleString('en'),
    r.trainSamples,
    r.spec.epochs,
    `${(100 * r.finalTop1).toFixed(2)}%`,
    `${Math.max(...r.history.filter((h) => h.epoch > 0).map((h) => 100 * h.top1)).toFixed(2)}%`,
    `${r.seconds.toFixed(0)} s`,
  ]);
  const body = `<h1>softbias demo: ConViT vs its DeiT twin on Fashion-MNIST</h1>
<p class="note">Backend: ${escapeHtml(backendNote(backend))}. Both models: 28×28 input, patch 4
(7×7 tokens), ${o.embedDim} wide, depth ${o.depth}, ${o.numHeads} heads, MLP ratio 2; the ConViT's first
${o.localUpToLayer} layers are GPSA with the convolutional initialisation (locality strength 1) and the class token joins
after them; the DeiT twin is the same trunk with plain self-attention everywhere. AdamW (lr 2e-3, weight decay 0.05,
cosine, 1 warm-up epoch), label smoothing 0.1, pad-and-crop + flip, batch ${o.batchSize}, seed ${o.seed}.
Fraction ${o.fraction} of each class of the training set. Each chart's y axis is fitted to its data.</p>
${table(['model', 'registry name', 'parameters', 'train images', 'epochs', 'final top-1', 'best top-1', 'time'], rows)}
<div class="charts">${accuracy}${loss}${gates}${results.map((r, i) => nonloc(r, i)).join('')}</div>
${perHead}
<p class="note">Nonlocality is measured as in the ConViT paper (Figure 6): the patch embeddings of the first test images are fed
to every layer's attention, and the attention-weighted distance between query and key patches is averaged over queries,
heads and images. Gates near 1 mean a head attends by position (convolution-like), near 0 by content.</p>`;
  return htmlPage('softbias demo: ConViT vs DeiT', body);
}
