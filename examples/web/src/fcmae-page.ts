/**
 * The FCMAE tab: a ConvNeXt V2 FCMAE (a small random one, or loaded from a .safetensors file) on an image,
 * with a seeded random mask at the slider's ratio: the mask, the visible input, the reconstruction (and the
 * visible patches with the reconstructed ones), the per-patch loss. Runs on the page's backend (one forward).
 * `window.softbiasFcmae` mirrors the state.
 */
import * as tf from '@tensorflow/tfjs-core';
import { readBytes } from '@softbias/tensor-ops';
import type { Fcmae } from '@softbias/models-convnextv2/fcmae';
import type { Rgba } from './demo-model.js';
import { fcmaeInput, fcmaeView, loadFcmaeBytes, randomFcmae } from './fcmae-view.js';
import { drawHeatmap, drawInput } from './render.js';

export interface FcmaeState {
  state: 'idle' | 'running' | 'done' | 'error';
  model: string | null;
  ratio: number;
  removed: number | null;
  loss: number | null;
  perPatch: number[] | null;
  error: string | null;
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

export function startFcmaeTab(decode: (f: Blob) => Promise<Rgba>, ready: Promise<void>): FcmaeState {
  const el = {
    weights: $<HTMLInputElement>('fc-weights'),
    random: $<HTMLButtonElement>('fc-random'),
    image: $<HTMLInputElement>('fc-image'),
    ratio: $<HTMLInputElement>('fc-ratio'),
    ratioValue: $('fc-ratio-value'),
    seed: $<HTMLInputElement>('fc-seed'),
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
  const s: FcmaeState = { state: 'idle', model: null, ratio: Number(el.ratio.value), removed: null, loss: null, perPatch: null, error: null };
  window.softbiasFcmae = s;
  let model: Fcmae | null = null;
  let image: Rgba = samplePicture();
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
    const x = fcmaeInput(m, image);
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
    const f = el.image.files?.[0];
    if (!f) return;
    enqueue(async () => {
      image = await decode(f);
      await run();
    });
  });
  return s;
}

/** Run the tab once it is shown (the model is built on first use). */
export function showFcmae(): void {
  $<HTMLInputElement>('fc-ratio').dispatchEvent(new Event('change'));
}
