/**
 * The FCMAE tab: a ConvNeXt V2 FCMAE (a small random one, or loaded from a .safetensors file) on an image,
 * with a seeded random mask at the slider's ratio: the mask, the visible input, the reconstruction (and the
 * visible patches with the reconstructed ones), the per-patch loss. Runs on the page's backend (one forward).
 * "Train on these images" runs a few FCMAE pre-training steps on the chosen images in a Worker
 * (fcmae-worker.ts: `fit({ loss })` with FCMAE's loss), draws the loss of each step, then shows the trained
 * model's reconstruction. `window.softbiasFcmae` mirrors the state.
 */
import * as tf from '@tensorflow/tfjs-core';
import { readBytes, type BackendRequest } from '@softbias/tensor-ops';
import { color, lineChart } from '@softbias/experiments';
import type { Fcmae } from '@softbias/models-convnextv2/fcmae';
import type { Rgba } from './demo-model.js';
import { fcmaeInput, fcmaeView, loadFcmaeBytes, randomFcmae, trainingImage, type PretrainSpec } from './fcmae-view.js';
import type { FromFcmaeWorker, Memory, ToFcmaeWorker } from './fcmae-worker.js';
import { drawHeatmap, drawInput } from './render.js';

export interface FcmaeState {
  state: 'idle' | 'running' | 'done' | 'error';
  model: string | null;
  ratio: number;
  removed: number | null;
  loss: number | null;
  perPatch: number[] | null;
  /** The reconstruction as drawn, [H, W, 3] in [0, 1]. */
  reconstruction: number[] | null;
  error: string | null;
  /** The pre-training steps run in the Worker. */
  pretrain: {
    state: 'idle' | 'starting' | 'training' | 'done' | 'error';
    backend: string | null;
    /** What the last run trained with (steps, lr, mask ratio, seed, images). */
    spec: Omit<PretrainSpec, 'weights' | 'images'> | null;
    /** The loss of each step so far. */
    losses: number[];
    /** tf.memory().numTensors in the Worker after each step (flat: nothing leaks per step). */
    stepTensors: number[];
    /** Runs completed (the view is redrawn with the trained weights after each). */
    runs: number;
    memory: Memory | null;
    ms: number | null;
    error: string | null;
  };
}

declare global {
  interface Window {
    softbiasFcmae: FcmaeState;
  }
}

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;

/** A built-in picture (sky, sun, striped ground) until the user picks one. */
export function samplePicture(w = 160, h = 160): Rgba {
  const data = new Uint8ClampedArray(w * h * 4);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let c: [number, number, number];
      if (y > h * 0.62) c = (Math.floor(x / 12) + Math.floor(y / 8)) % 2 ? [60, 140, 50] : [90, 170, 70];
      else if ((x - 110) ** 2 + (y - 35) ** 2 < 400) c = [250, 210, 60];
      else c = [80 + y, 130 + y / 2, 230 - x / 2];
      data.set([...c, 255], (y * w + x) * 4);
    }
  }
  return { data, width: w, height: h };
}

/** The Worker's backend: the page's request (tfjs keeps one backend per thread). */
export interface FcmaeWorkerOptions {
  backend: BackendRequest;
  threads: number;
}

export function startFcmaeTab(decode: (f: Blob) => Promise<Rgba>, ready: Promise<void>, workerOptions: FcmaeWorkerOptions = { backend: 'auto', threads: 1 }): FcmaeState {
  const el = {
    weights: $<HTMLInputElement>('fc-weights'),
    random: $<HTMLButtonElement>('fc-random'),
    image: $<HTMLInputElement>('fc-image'),
    ratio: $<HTMLInputElement>('fc-ratio'),
    ratioValue: $('fc-ratio-value'),
    seed: $<HTMLInputElement>('fc-seed'),
    steps: $<HTMLInputElement>('fc-steps'),
    lr: $<HTMLInputElement>('fc-lr'),
    train: $<HTMLButtonElement>('fc-train'),
    trainStatus: $('fc-train-status'),
    trainChart: $('fc-train-chart'),
    info: $('fc-info'),
    status: $('fc-status'),
    canvases: {
      input: $<HTMLCanvasElement>('fc-input'),
      mask: $<HTMLCanvasElement>('fc-mask'),
      visible: $<HTMLCanvasElement>('fc-visible'),
      reconstruction: $<HTMLCanvasElement>('fc-reconstruction'),
      composite: $<HTMLCanvasElement>('fc-composite'),
      loss: $<HTMLCanvasElement>('fc-loss'),
    },
  };
  const s: FcmaeState = {
    state: 'idle',
    model: null,
    ratio: Number(el.ratio.value),
    removed: null,
    loss: null,
    perPatch: null,
    reconstruction: null,
    error: null,
    pretrain: { state: 'idle', backend: null, spec: null, losses: [], stepTensors: [], runs: 0, memory: null, ms: null, error: null },
  };
  window.softbiasFcmae = s;
  let model: Fcmae | null = null;
  /** The model's origin (random, a file) and the steps trained on it here since. */
  let baseName = '';
  let trainedSteps = 0;
  /** The images chosen (the first is shown); pre-training uses all of them. */
  let images: Rgba[] = [samplePicture()];
  let queue: Promise<void> = ready;

  const fail = (e: unknown) => {
    s.state = 'error';
    s.error = (e as Error).message ?? String(e);
    el.status.textContent = s.error;
    el.status.className = 'error';
  };
  const enqueue = (task: () => Promise<void>) => {
    queue = queue.then(task).catch(fail);
  };

  const setModel = (m: Fcmae, what: string) => {
    model?.dispose();
    model = m;
    baseName = what;
    trainedSteps = 0;
    const c = m.config;
    s.model = `${what}: encoder depths ${c.depths.join('-')}, dims ${c.dims.join('-')}, decoder ${c.decoderDepth}×${c.decoderEmbedDim}, ${c.imgSize[0]}×${c.imgSize[1]} input, ${c.patchSize} px patches${c.normPixLoss ? ', norm-pix loss (the reconstruction is un-normalised per patch)' : ''}`;
    el.info.textContent = s.model;
  };

  const run = async () => {
    if (!model) setModel(randomFcmae(0), 'random FCMAE (ConvNeXt V2 atto)');
    const m = model!;
    s.state = 'running';
    s.ratio = Number(el.ratio.value);
    el.ratioValue.textContent = `${Math.round(100 * s.ratio)}%`;
    const x = fcmaeInput(m, images[0]!);
    try {
      const t0 = performance.now();
      const v = await fcmaeView(m, x, s.ratio, Number(el.seed.value) || 0);
      const ms = performance.now() - t0;
      const px = { height: v.height, width: v.width };
      drawInput(el.canvases.input, { rgb: v.input, ...px }, v.grid, null);
      drawHeatmap(el.canvases.mask, v.mask, v.grid[0], v.grid[1]);
      drawInput(el.canvases.visible, { rgb: v.visible, ...px }, v.grid, null);
      drawInput(el.canvases.reconstruction, { rgb: v.reconstruction, ...px }, v.grid, null);
      drawInput(el.canvases.composite, { rgb: v.composite, ...px }, v.grid, null);
      drawHeatmap(el.canvases.loss, v.perPatch, v.grid[0], v.grid[1]);
      s.removed = v.removed;
      s.loss = v.loss;
      s.perPatch = Array.from(v.perPatch);
      s.reconstruction = Array.from(v.reconstruction);
      s.state = 'done';
      s.error = null;
      el.status.className = '';
      el.status.textContent = `${v.removed} of ${v.mask.length} patches removed; loss over them ${v.loss.toFixed(4)} (${tf.getBackend()}, ${ms.toFixed(0)} ms)`;
    } finally {
      x.dispose();
    }
  };

  el.ratio.addEventListener('input', () => {
    el.ratioValue.textContent = `${Math.round(100 * Number(el.ratio.value))}%`;
  });
  el.ratio.addEventListener('change', () => enqueue(run));
  el.seed.addEventListener('change', () => enqueue(run));
  el.random.addEventListener('click', () =>
    enqueue(async () => {
      setModel(randomFcmae(Number(el.seed.value) || 0), 'random FCMAE (ConvNeXt V2 atto)');
      await run();
    }),
  );
  el.weights.addEventListener('change', () => {
    const f = el.weights.files?.[0];
    if (!f) return;
    enqueue(async () => {
      try {
        setModel(await loadFcmaeBytes(await readBytes(f)), f.name);
      } catch (e) {
        throw new Error(`${f.name}: not an FCMAE weights file (${(e as Error).message})`);
      }
      await run();
    });
  });
  el.image.addEventListener('change', () => {
    const files = Array.from(el.image.files ?? []);
    if (files.length === 0) return;
    enqueue(async () => {
      const decoded: Rgba[] = [];
      for (const f of files) {
        try {
          decoded.push(await decode(f));
        } catch (e) {
          throw new Error(`${f.name}: not an image this browser can decode (${(e as Error).message})`);
        }
      }
      images = decoded;
      await run();
    });
  });

  // ------------------------------------------------------------------------------- pre-training steps

  let worker: Worker | null = null;
  /** Settles when the Worker's backend is up. */
  let workerReady: Promise<void> | null = null;
  /** The run in flight: resolved with the trained weights. */
  let pending: { resolve: (w: Uint8Array) => void; reject: (e: Error) => void } | null = null;
  const p = s.pretrain;

  const drawTraining = (message: string) => {
    el.trainStatus.textContent = message;
    el.trainStatus.className = p.state === 'error' ? 'error' : 'muted';
    el.trainChart.innerHTML = p.losses.length
      ? `<div class="chart">${lineChart({
          title: 'FCMAE loss per step (removed patches)',
          xLabel: 'step',
          yLabel: 'loss',
          x: p.losses.map((_, i) => i + 1),
          series: [{ name: 'loss', values: p.losses, color: color(0) }],
          width: 420,
          height: 220,
        })}</div>`
      : '';
  };
  const trainFail = (message: string) => {
    p.state = 'error';
    p.error = message;
    drawTraining(`pre-training failed: ${message}`);
    pending?.reject(new Error(message));
    pending = null;
  };

  const startWorker = (): Promise<void> => {
    if (workerReady) return workerReady;
    workerReady = new Promise<void>((resolve, reject) => {
      const w = new Worker(new URL('./fcmae-worker.ts', import.meta.url), { type: 'module' });
      worker = w;
      const send = (m: ToFcmaeWorker) => w.postMessage(m);
      w.onerror = (e) => {
        const msg = `the pre-training Worker failed: ${e.message}`;
        trainFail(msg);
        reject(new Error(msg));
      };
      w.onmessage = (ev: MessageEvent<FromFcmaeWorker>) => {
        const m = ev.data;
        if (m.type === 'ready') {
          p.backend = m.backend;
          p.memory = m.memory;
          drawTraining(`Pre-training Worker backend: ${m.backend} — ${m.reason}`);
          resolve();
        } else if (m.type === 'step') {
          p.losses.push(m.loss);
          p.stepTensors.push(m.memory.numTensors);
          p.memory = m.memory;
          drawTraining(`step ${m.step}/${p.spec?.steps ?? '?'}: loss ${m.loss.toFixed(4)} (Worker: ${p.backend}, ${m.memory.numTensors} tensors)`);
        } else if (m.type === 'done') {
          p.memory = m.memory;
          p.ms = m.ms;
          pending?.resolve(m.weights);
          pending = null;
        } else {
          trainFail(m.message);
          reject(new Error(m.message));
        }
      };
      send({ type: 'init', backend: workerOptions.backend, threads: workerOptions.threads });
    });
    return workerReady;
  };

  el.train.addEventListener('click', () =>
    enqueue(async () => {
      if (!model) setModel(randomFcmae(Number(el.seed.value) || 0), 'random FCMAE (ConvNeXt V2 atto)');
      const m = model!;
      const steps = Math.max(1, Math.min(200, Math.round(Number(el.steps.value)) || 1));
      const lr = Number(el.lr.value) || 1e-3;
      const ratio = Number(el.ratio.value);
      const seed = Number(el.seed.value) || 0;
      const [H, W] = m.config.imgSize;
      if (H !== W) throw new Error(`pre-training here needs a square input, the model takes ${H}×${W}`);
      const bytes = new Uint8Array(images.length * H * W * 3);
      for (const [i, im] of images.entries()) bytes.set(trainingImage(im, H), i * H * W * 3);
      p.state = 'starting';
      p.error = null;
      p.losses = [];
      p.stepTensors = [];
      p.spec = { count: images.length, steps, lr, ratio, seed };
      drawTraining('starting the pre-training Worker…');
      el.train.disabled = true;
      try {
        await startWorker();
        p.state = 'training';
        const spec: PretrainSpec = { weights: await m.saveWeights(), images: bytes, ...p.spec };
        const trained = new Promise<Uint8Array>((resolve, reject) => {
          pending = { resolve, reject };
        });
        worker!.postMessage({ type: 'train', spec } satisfies ToFcmaeWorker, [spec.weights.buffer as ArrayBuffer, bytes.buffer as ArrayBuffer]);
        const weights = await trained;
        const base = baseName;
        const total = trainedSteps + steps;
        setModel(await loadFcmaeBytes(weights), `${base} + ${total} pre-training steps in the page`);
        baseName = base;
        trainedSteps = total;
        await run();
        p.runs++;
        p.state = 'done';
        const first = p.losses[0]!;
        const last = p.losses[p.losses.length - 1]!;
        drawTraining(
          `${steps} steps on ${images.length} image${images.length > 1 ? 's' : ''} in the Worker (${p.backend}, ${(p.ms! / 1000).toFixed(1)} s): ` +
            `loss ${first.toFixed(4)} → ${last.toFixed(4)}; the views above show the trained model`,
        );
      } catch (e) {
        if ((p.state as string) !== 'error') trainFail((e as Error).message ?? String(e));
        throw e;
      } finally {
        el.train.disabled = false;
      }
    }),
  );
  return s;
}

/** Run the tab once it is shown (the model is built on first use). */
export function showFcmae(): void {
  $<HTMLInputElement>('fc-ratio').dispatchEvent(new Event('change'));
}
