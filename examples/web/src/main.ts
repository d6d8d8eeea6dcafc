/**
 * The page: pick a backend (WebGPU, else wasm), load a model from a file or a URL, classify an image, show
 * the top 5, the GPSA gates and, for a clicked patch, every head's attention map (ConViT paper, Figure 7).
 *
 * It opens with something to try: the demo's ConViT trained on Fashion-MNIST (public/models/, float16, its
 * label names in the file) and the Fashion-MNIST test images of public/samples/ to click.
 *
 * URL parameters: `?backend=auto|webgpu|wasm|cpu`, `?weights=<url of a .safetensors>` (`none`: no model at
 * start), `?tab=finetune`,
 * `?tab=fcmae`, `?storage=memory|indexeddb|opfs` (where the fine-tune Worker keeps its checkpoints; default OPFS where
 * the browser has it, else IndexedDB).
 * `window.softbiasDemo` mirrors the page state (used by the end-to-end test).
 */
import * as tf from '@tensorflow/tfjs-core';
import { readBytes, setupBackend, type BackendInfo, type BackendRequest } from '@softbias/tensor-ops';
import { WASM_PATHS } from './wasm-paths.js';
import {
  attentionOf,
  classify,
  displayPixels,
  loadDemoModel,
  preprocessFor,
  queryMaps,
  type DemoModel,
  type LayerMaps,
  SHIPPED_MODEL,
  type Prediction,
  type Rgba,
  type Which,
} from './demo-model.js';
import { cssColour, drawHeatmap, drawInput, patchAt } from './render.js';
import { startFinetuneTab } from './finetune-page.js';
import { showFcmae, startFcmaeTab } from './fcmae-page.js';
import type { StorageChoice } from './worker-protocol.js';

export interface DemoState {
  state: 'starting' | 'ready' | 'loading' | 'running' | 'done' | 'error';
  backend: Pick<BackendInfo, 'backend' | 'reason' | 'threads'> & { adapter?: string; fallbackAdapter?: boolean } | null;
  model: string | null;
  logits: number[] | null;
  top5: Prediction[] | null;
  gates: (number[] | null)[] | null;
  selected: [number, number] | null;
  /** Heatmaps drawn for the selected patch. */
  heatmaps: number;
  /** What they show: per layer, each head's attention of the selected patch over the patches (row-major). */
  attention: { layer: number; kind: string; which: string; heads: number[][] }[];
  forwardMs: number | null;
  /** The sample image shown (its file under public/), or null for the user's own. */
  sample: string | null;
  error: string | null;
}

declare global {
  interface Window {
    softbiasDemo: DemoState;
  }
}

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const el = {
  backend: $<HTMLSelectElement>('backend'),
  backendInfo: $('backend-info'),
  weightsFile: $<HTMLInputElement>('weights-file'),
  weightsUrl: $<HTMLInputElement>('weights-url'),
  weightsLoad: $<HTMLButtonElement>('weights-load'),
  weightsDefault: $<HTMLButtonElement>('weights-default'),
  samples: $('samples'),
  imageFile: $<HTMLInputElement>('image-file'),
  modelInfo: $('model-info'),
  status: $('status'),
  input: $<HTMLCanvasElement>('input'),
  top5: $<HTMLTableElement>('top5'),
  gates: $<HTMLTableElement>('gates'),
  which: $<HTMLSelectElement>('which'),
  attention: $('attention'),
};

const demo: DemoState = {
  state: 'starting',
  backend: null,
  model: null,
  logits: null,
  top5: null,
  gates: null,
  selected: null,
  heatmaps: 0,
  attention: [],
  forwardMs: null,
  sample: null,
  error: null,
};
window.softbiasDemo = demo;

let model: DemoModel | null = null;
let image: Rgba | null = null;
let x: tf.Tensor4D | null = null;
let layers: LayerMaps[] = [];
let pixels: Awaited<ReturnType<typeof displayPixels>> | null = null;
let forwards = 0;

function setState(s: DemoState['state'], message = ''): void {
  demo.state = s;
  if (s !== 'error') demo.error = null;
  document.body.dataset.state = s;
  el.status.textContent = message;
  el.status.className = s === 'error' ? 'error' : '';
}

function fail(e: unknown): void {
  const msg = (e as Error).message ?? String(e);
  demo.error = msg;
  setState('error', msg);
  console.error(e);
}

/** One task at a time (loading a model while an image is analysed waits for it). */
let queue: Promise<void> = Promise.resolve();
function enqueue(task: () => Promise<void>): void {
  queue = queue.then(task).catch(fail);
}

// ----------------------------------------------------------------------------------------------- backend

const params = new URLSearchParams(location.search);
const requested = (params.get('backend') ?? 'auto') as BackendRequest;
/** wasm threads (`?threads=2`): needs this page to be cross-origin isolated (the dev server sets COOP/COEP). */
const threads = Number(params.get('threads') ?? 1);

async function startBackend(): Promise<void> {
  el.backend.value = requested;
  const info = await setupBackend(requested, {
    threads,
    // Vite serves tfjs-backend-wasm's binaries as assets.
    wasmPaths: WASM_PATHS,
  });
  demo.backend = { backend: info.backend, reason: info.reason, ...(info.threads ? { threads: info.threads } : {}) };
  if (info.adapter) {
    demo.backend.adapter = [info.adapter.vendor, info.adapter.architecture, info.adapter.description].filter(Boolean).join(' ');
    demo.backend.fallbackAdapter = info.adapter.isFallbackAdapter;
  }
  el.backendInfo.textContent = `Backend: ${info.backend} — ${info.reason}`;
}

el.backend.addEventListener('change', () => {
  // tfjs keeps one backend per page: switching reloads.
  params.set('backend', el.backend.value);
  location.search = params.toString();
});

// ------------------------------------------------------------------------------------------------- model

async function loadModelBytes(bytes: Uint8Array, what: string): Promise<void> {
  setState('loading', `loading ${what}…`);
  let next: DemoModel;
  try {
    next = await loadDemoModel(bytes);
  } catch (e) {
    throw new Error(`could not load a model from ${what}: ${(e as Error).message}`);
  }
  model?.model.dispose();
  model = next;
  layers = [];
  demo.model = next.description;
  el.modelInfo.textContent = `Model from ${what}: ${next.description}`;
  setState('ready', image ? '' : 'Now choose an image.');
  if (image) await analyse();
}

el.weightsFile.addEventListener('change', () => {
  const f = el.weightsFile.files?.[0];
  if (f) enqueue(async () => loadModelBytes(await readBytes(f), f.name));
});
el.weightsLoad.addEventListener('click', () => {
  const url = el.weightsUrl.value.trim();
  if (url) enqueue(async () => loadModelBytes(await fetchModelBytes(url), url));
});

/** The bytes at a URL; errors name the URL (fetch's own TypeError says only "Failed to fetch"). */
async function fetchModelBytes(url: string): Promise<Uint8Array> {
  let u: URL;
  try {
    u = new URL(url, location.href);
  } catch {
    throw new Error(`'${url}' is not a valid URL`);
  }
  setState('loading', `fetching ${u.href}…`);
  try {
    return await readBytes(u);
  } catch (e) {
    if (e instanceof TypeError) {
      throw new Error(`could not fetch ${u.href}: ${e.message} (network error, or a server that does not allow cross-origin requests)`);
    }
    throw e;
  }
}

// ------------------------------------------------------------------------------------------------- image

async function decode(file: Blob): Promise<Rgba> {
  // No colour management: the pixels are the file's (a PNG decodes to exactly its stored values).
  const bitmap = await createImageBitmap(file, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  const c = document.createElement('canvas');
  c.width = bitmap.width;
  c.height = bitmap.height;
  const ctx = c.getContext('2d', { willReadFrequently: true })!;
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  const { data } = ctx.getImageData(0, 0, c.width, c.height);
  return { data, width: c.width, height: c.height };
}

el.imageFile.addEventListener('change', () => {
  const f = el.imageFile.files?.[0];
  if (!f) return;
  demo.sample = null;
  markSample(null);
  enqueue(async () => {
    try {
      image = await decode(f);
    } catch (e) {
      throw new Error(`${f.name}: not an image this browser can decode (${(e as Error).message})`);
    }
    if (model) await analyse();
    else setState('ready', 'Now load a model.');
  });
});

// ------------------------------------------------------------------------------- shipped model, samples

interface Sample {
  file: string;
  label: string;
}

function markSample(file: string | null): void {
  for (const b of Array.from(el.samples.querySelectorAll<HTMLButtonElement>('button'))) b.classList.toggle('selected', b.dataset.file === file);
}

async function showSample(file: string): Promise<void> {
  const r = await fetch(file);
  if (!r.ok) throw new Error(`${file}: HTTP ${r.status}`);
  image = await decode(await r.blob());
  demo.sample = file;
  markSample(file);
  if (model) await analyse();
  else setState('ready', 'Now load a model.');
}

/** The sample strip (public/samples/samples.json); resolves with the samples. */
async function startSamples(): Promise<Sample[]> {
  const r = await fetch('samples/samples.json');
  if (!r.ok) return [];
  const samples = (await r.json()) as Sample[];
  for (const s of samples) {
    const b = document.createElement('button');
    b.type = 'button';
    b.dataset.file = s.file;
    b.title = `${s.label} (Fashion-MNIST test set)`;
    const img = document.createElement('img');
    img.src = s.file;
    img.alt = s.label;
    b.append(img);
    b.addEventListener('click', () => enqueue(() => showSample(s.file)));
    el.samples.append(b);
  }
  return samples;
}

el.weightsDefault.addEventListener('click', () => enqueue(async () => loadModelBytes(await fetchModelBytes(SHIPPED_MODEL), 'the shipped Fashion-MNIST ConViT')));

// ---------------------------------------------------------------------------------------------- analysis

async function analyse(): Promise<void> {
  if (!model || !image) return;
  setState('running', 'classifying…');
  x?.dispose();
  x = preprocessFor(model, image);
  pixels = await displayPixels(model, x);
  const t0 = performance.now();
  const { logits, top5 } = await classify(model, x);
  demo.forwardMs = performance.now() - t0;
  demo.logits = Array.from(logits);
  demo.top5 = top5;
  renderTop5(top5);
  if (model.kind === 'convit') {
    setState('running', 'reading gates and attention maps…');
    const gates = await model.model.gates();
    demo.gates = gates.map((g) => (g ? Array.from(g) : null));
    renderGates(demo.gates);
    layers = await attentionOf(model.model, x);
    const [rows, cols] = model.model.gridSize;
    demo.selected ??= [Math.floor(rows / 2), Math.floor(cols / 2)];
    if (demo.selected[0] >= rows || demo.selected[1] >= cols) demo.selected = [Math.floor(rows / 2), Math.floor(cols / 2)];
  } else {
    demo.gates = null;
    layers = [];
    renderGates(null);
  }
  renderInputAndAttention();
  forwards++;
  setState(
    'done',
    `${tf.getBackend()}: forward ${demo.forwardMs.toFixed(0)} ms${forwards === 1 ? ' (the first call also compiles or uploads what the backend needs)' : ''}`,
  );
}

function renderTop5(top5: Prediction[]): void {
  const body = el.top5.tBodies[0]!;
  body.replaceChildren(
    ...top5.map((p) => {
      const tr = document.createElement('tr');
      tr.innerHTML = `<td>${escapeHtml(p.label)}</td><td class="bar"><span style="width:${(100 * p.probability).toFixed(1)}%"></span></td><td>${(100 * p.probability).toFixed(1)}%</td><td class="muted">logit ${p.logit.toFixed(3)}</td>`;
      return tr;
    }),
  );
}

function renderGates(gates: (number[] | null)[] | null): void {
  const body = el.gates.tBodies[0]!;
  const rows = (gates ?? []).map((g, i) => [i, g] as const).filter((r): r is readonly [number, number[]] => r[1] !== null);
  if (rows.length === 0) {
    body.innerHTML = `<tr><td class="muted">${model?.kind === 'convit' ? 'no GPSA layers in this model' : 'not a ConViT'}</td></tr>`;
    return;
  }
  const heads = Math.max(...rows.map(([, g]) => g.length));
  const header = `<tr><th></th>${Array.from({ length: heads }, (_, h) => `<th>head ${h}</th>`).join('')}</tr>`;
  body.innerHTML =
    header +
    rows
      .map(
        ([i, g]) =>
          `<tr><th>block ${i}</th>${g
            .map((v) => `<td style="background:${cssColour(v)};color:${v > 0.6 ? '#111' : '#eee'}">${v.toFixed(2)}</td>`)
            .join('')}</tr>`,
      )
      .join('');
}

function renderInputAndAttention(): void {
  if (!model || !pixels) return;
  const grid = model.kind === 'convit' ? model.model.gridSize : null;
  drawInput(el.input, pixels, grid, grid ? demo.selected : null);
  el.attention.replaceChildren();
  demo.heatmaps = 0;
  demo.attention = [];
  if (!grid || !demo.selected || layers.length === 0) {
    el.attention.innerHTML = `<p class="muted">${model.kind === 'convit' ? '' : 'ConvNeXt V2 has no attention maps.'}</p>`;
    return;
  }
  const which = el.which.value as Which;
  const [row, col] = demo.selected;
  for (const l of layers) {
    const maps = queryMaps(l, grid, row, col, which);
    const shown = l.kind === 'gpsa' ? which : 'mixed';
    demo.attention.push({ layer: l.layer, kind: l.kind, which: shown, heads: maps.map((m) => Array.from(m)) });
    const line = document.createElement('div');
    line.className = 'layer';
    const gates = demo.gates?.[l.layer];
    const label = document.createElement('div');
    label.className = 'layer-label';
    label.textContent = `block ${l.layer} · ${l.kind.toUpperCase()}${l.kind !== 'gpsa' && which !== 'mixed' ? ' (as used)' : ''}`;
    line.append(label);
    maps.forEach((m, h) => {
      const fig = document.createElement('figure');
      const c = document.createElement('canvas');
      c.width = 84;
      c.height = Math.round((84 * grid[0]) / grid[1]);
      drawHeatmap(c, m, grid[0], grid[1], [row, col]);
      const cap = document.createElement('figcaption');
      cap.textContent = gates ? `head ${h}\nσ(λ) ${gates[h]!.toFixed(2)}` : `head ${h}`;
      fig.append(c, cap);
      line.append(fig);
      demo.heatmaps++;
    });
    el.attention.append(line);
  }
}

el.input.addEventListener('click', (ev) => {
  if (model?.kind !== 'convit' || layers.length === 0) return;
  demo.selected = patchAt(el.input, ev, model.model.gridSize);
  renderInputAndAttention();
});
el.which.addEventListener('change', () => renderInputAndAttention());

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

// ----------------------------------------------------------------------------------------------- start

const samplesReady = startSamples().catch(() => [] as Sample[]);
enqueue(async () => {
  await startBackend();
  setState('ready', 'Load a model, then choose an image.');
  const url = params.get('weights');
  if (url === 'none') return;
  if (url) {
    el.weightsUrl.value = url;
    await loadModelBytes(await fetchModelBytes(url), url);
    return;
  }
  // Something to try: the shipped model on the first sample.
  await loadModelBytes(await fetchModelBytes(SHIPPED_MODEL), 'the shipped Fashion-MNIST ConViT (softbias demo, float16)');
  const first = (await samplesReady)[0];
  if (first && !image) await showSample(first.file);
});

// ------------------------------------------------------------------------------------------------- tabs

let fcmaeShown = false;
function showTab(tab: string): void {
  document.body.dataset.tab = tab;
  if (tab === 'fcmae' && !fcmaeShown) {
    fcmaeShown = true;
    showFcmae();
  }
}
for (const b of Array.from(document.querySelectorAll<HTMLButtonElement>('.tabs button'))) {
  b.addEventListener('click', () => {
    showTab(b.dataset.tab!);
    params.set('tab', b.dataset.tab!);
    history.replaceState(null, '', `?${params}`);
  });
}
// FCMAE runs on the page's backend, once it is up.
startFcmaeTab(decode, queue, { backend: requested, threads });
showTab(params.get('tab') ?? 'classify');
// The fine-tune Worker starts its own backend (the same request: tfjs keeps one backend per thread).
startFinetuneTab({ backend: requested, threads, storage: storageChoice(params.get('storage')) });

/** `?storage=`: memory, indexeddb or opfs; anything else (or none) the default, OPFS where available. */
function storageChoice(v: string | null): StorageChoice {
  return v === 'memory' || v === 'indexeddb' || v === 'opfs' ? v : 'persistent';
}
