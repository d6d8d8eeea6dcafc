/**
 * The fine-tune tab: pick the embedded Fashion-MNIST subset or drop your own images into 2–10 classes, and
 * train the demo's small ConViT (or its DeiT twin) — or fine-tune a checkpoint (the shipped model, a dropped
 * safetensors file, a hub id) with a new head, the images converted to its input — in a dedicated Worker
 * (train-worker.ts, `fit` inside).
 * Each epoch: loss and accuracy curves, the gates σ(λ) and the nonlocality per layer, drawn with the demo
 * report's charts (@softbias/experiments' lineChart). Pause (fit's AbortSignal; the checkpoint is kept in
 * IndexedDB, and a reload offers to resume it), abort, download the weights. `window.softbiasDemo.finetune`
 * mirrors the state (the end-to-end test reads it).
 */
import * as tf from '@tensorflow/tfjs-core';
import { color, lineChart } from '@softbias/experiments';
import type { FitProgress } from '@softbias/train';
import { FINETUNE_DEFAULTS, TRUNK_INPUT, type EpochReport, type FinetuneBase, type FinetuneConfig, type Prediction, type RunInput } from './finetune.js';
import { SHIPPED_MODEL } from './demo-model.js';
import type { Memory, RunSpec, StorageChoice, ToPage, ToWorker } from './worker-protocol.js';

export interface FinetuneState {
  state: 'starting' | 'idle' | 'loading' | 'training' | 'paused' | 'done' | 'error';
  backend: string | null;
  reason: string | null;
  storage: string | null;
  /** A run found in storage at start (a reload): its checkpoint's step. */
  stored: { step: number; source: string } | null;
  step: number;
  totalSteps: number;
  /** Every update's loss, in order (a resumed run starts after its checkpoint). */
  losses: number[];
  epochs: EpochReport[];
  status: 'completed' | 'aborted' | null;
  resumedFrom: number | null;
  lastLoss: number | null;
  checksum: number | null;
  workerMemory: Memory | null;
  /** requestAnimationFrame callbacks run on the page (keeps counting while the Worker trains). */
  frames: number;
  /** `frames` when the run's data arrived in the Worker and when it ended. */
  framesAtStart: number | null;
  framesAtEnd: number | null;
  error: string | null;
  /** The last 'Classify' answer: per dropped image, its file name and top-k (the run's class names). */
  predictions: { file: string; top: Prediction[] }[] | null;
  /** The checkpoint the run starts from (what the Worker said about it), or null for the demo trunk. */
  base: { name: string; description: string; input: RunInput; gpsa: boolean } | null;
  /** The input the current run trains at (the images are converted to it). */
  input: RunInput | null;
  /** Worker notices (downloads, licence and encoder-only warnings). */
  notices: string[];
}

declare global {
  interface Window {
    softbiasFinetune: FinetuneState;
    /** The last run's weights file (safetensors bytes), or null. */
    softbiasFinetuneWeights: () => number[] | null;
    /** The last ONNX export's bytes, or null. */
    softbiasFinetuneOnnx: () => number[] | null;
  }
}

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;

export function startFinetuneTab(opts: { backend: string; threads: number; storage: StorageChoice }): FinetuneState {
  const el = {
    source: $<HTMLSelectElement>('ft-source'),
    perClass: $<HTMLInputElement>('ft-per-class'),
    classes: $<HTMLInputElement>('ft-classes'),
    drops: $('ft-drops'),
    model: $<HTMLSelectElement>('ft-model'),
    baseFile: $<HTMLInputElement>('ft-base-file'),
    baseHub: $<HTMLInputElement>('ft-base-hub'),
    baseInfo: $('ft-base-info'),
    epochs: $<HTMLInputElement>('ft-epochs'),
    batch: $<HTMLInputElement>('ft-batch'),
    seed: $<HTMLInputElement>('ft-seed'),
    start: $<HTMLButtonElement>('ft-start'),
    pause: $<HTMLButtonElement>('ft-pause'),
    resume: $<HTMLButtonElement>('ft-resume'),
    abort: $<HTMLButtonElement>('ft-abort'),
    download: $<HTMLButtonElement>('ft-download'),
    backend: $('ft-backend'),
    status: $('ft-status'),
    charts: $('ft-charts'),
    footer: $('memory'),
  };
  // Classify new images with the fine-tuned model (built here: index.html belongs to the whole app).
  const classifyBox = document.createElement('div');
  classifyBox.id = 'ft-classify';
  const classifyLabel = document.createElement('label');
  const classifyInput = document.createElement('input');
  classifyInput.type = 'file';
  classifyInput.multiple = true;
  classifyInput.accept = 'image/*';
  classifyInput.id = 'ft-classify-files';
  classifyInput.disabled = true;
  classifyLabel.append('Classify new images with the fine-tuned model: ', classifyInput);
  const classifyOut = document.createElement('ol');
  classifyOut.id = 'ft-predictions';
  classifyBox.append(classifyLabel, classifyOut);
  $('ft-download').insertAdjacentElement('afterend', classifyBox);
  const onnxButton = document.createElement('button');
  onnxButton.type = 'button';
  onnxButton.id = 'ft-download-onnx';
  onnxButton.textContent = 'Download ONNX (.onnx)';
  onnxButton.disabled = true;
  $('ft-download').insertAdjacentElement('afterend', onnxButton);
  const s: FinetuneState = {
    state: 'starting',
    backend: null,
    reason: null,
    storage: null,
    stored: null,
    step: 0,
    totalSteps: 0,
    losses: [],
    epochs: [],
    status: null,
    resumedFrom: null,
    lastLoss: null,
    checksum: null,
    workerMemory: null,
    frames: 0,
    framesAtStart: null,
    framesAtEnd: null,
    error: null,
    predictions: null,
    base: null,
    input: null,
    notices: [],
  };
  window.softbiasFinetune = s;
  let weights: Uint8Array | null = null;
  window.softbiasFinetuneWeights = () => (weights ? Array.from(weights) : null);
  let onnx: Uint8Array | null = null;
  window.softbiasFinetuneOnnx = () => (onnx ? Array.from(onnx) : null);
  let classNames: string[] = [];
  let config: FinetuneConfig | null = null;
  let lastProgress: FitProgress | null = null;
  /** File names of the run's downloads: the trunk's name, or the checkpoint's (a file name or hub id, made safe). */
  const runName = () =>
    config?.base
      ? config.base.name.replace(/\.safetensors$/i, '').replace(/^the shipped /, 'shipped ').replace(/[^A-Za-z0-9._-]+/g, '_')
      : (config?.model ?? 'convit');

  const frame = () => {
    s.frames++;
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);

  const worker = new Worker(new URL('./train-worker.ts', import.meta.url), { type: 'module' });
  const send = (m: ToWorker, transfer: Transferable[] = []) => worker.postMessage(m, transfer);

  const setState = (state: FinetuneState['state'], message = '') => {
    s.state = state;
    if (state !== 'error') s.error = null;
    el.status.textContent = message;
    el.status.className = state === 'error' ? 'error' : '';
    el.start.disabled = state === 'training' || state === 'loading' || state === 'starting';
    el.pause.disabled = state !== 'training';
    el.abort.disabled = state !== 'training' && state !== 'paused';
    el.resume.disabled = !(state === 'paused' || (state === 'idle' && s.stored));
    el.download.disabled = weights === null;
    classifyInput.disabled = weights === null || state === 'training' || state === 'loading';
    onnxButton.disabled = classifyInput.disabled;
  };

  const footer = () => {
    const page = tf.getBackend() ? tf.memory() : null;
    const w = s.workerMemory;
    el.footer.textContent =
      `tf.memory() — training Worker: ${w ? `${w.numTensors} tensors, ${(w.numBytes / 2 ** 20).toFixed(1)} MiB` : '–'}` +
      ` · page: ${page ? `${page.numTensors} tensors, ${(page.numBytes / 2 ** 20).toFixed(1)} MiB` : '–'}`;
  };

  const eta = (p: FitProgress): string => {
    const done = p.step - (s.resumedFrom ?? 0);
    if (done <= 0) return '';
    const left = ((p.totalSteps - p.step) * p.elapsedMs) / done / 1000;
    return `, ETA ${left < 90 ? `${left.toFixed(0)} s` : `${(left / 60).toFixed(1)} min`}`;
  };

  const draw = () => {
    const eps = s.epochs;
    const x = eps.map((e) => e.epoch);
    const charts: string[] = [];
    if (s.losses.length) {
      const first = s.step - s.losses.length + 1;
      charts.push(
        lineChart({
          title: 'Training loss per update',
          xLabel: 'update',
          yLabel: 'loss',
          x: s.losses.map((_, i) => first + i),
          series: [{ name: 'loss', values: s.losses, color: color(0) }],
          width: 420,
          height: 240,
        }),
      );
    }
    if (eps.length) {
      charts.push(
        lineChart({
          title: 'Held-out accuracy per epoch',
          xLabel: 'epoch',
          yLabel: 'top-1 (%)',
          x,
          yMin: 0,
          yMax: 100,
          series: [{ name: 'top-1', values: eps.map((e) => (Number.isFinite(e.top1) ? 100 * e.top1 : null)), color: color(1) }],
          width: 420,
          height: 240,
        }),
      );
      const layers = eps[0]!.gates.length;
      const gpsa = [...Array(layers).keys()].filter((l) => eps[0]!.gates[l] !== null);
      if (gpsa.length) {
        charts.push(
          lineChart({
            title: 'Gate σ(λ) per GPSA layer (1 = positional)',
            xLabel: 'epoch (0 = initialisation)',
            yLabel: 'gate',
            x,
            yMin: 0,
            yMax: 1,
            series: gpsa.map((l, i) => ({ name: `layer ${l}`, values: eps.map((e) => e.gates[l] ?? null), color: color(i) })),
            width: 420,
            height: 240,
          }),
        );
      }
      charts.push(
        lineChart({
          title: 'Nonlocality per layer (mean attention distance)',
          xLabel: 'epoch (0 = initialisation)',
          yLabel: 'patches',
          x,
          yMin: 0,
          series: [...Array(eps[0]!.nonlocality.length).keys()].map((l) => ({
            name: `layer ${l}`,
            values: eps.map((e) => e.nonlocality[l] ?? null),
            color: color(l),
            ...(eps[0]!.gates[l] === null ? { dashed: true } : {}),
          })),
          width: 420,
          height: 240,
        }),
      );
    }
    el.charts.innerHTML = charts.map((c) => `<div class="chart">${c}</div>`).join('');
  };

  worker.onmessage = (ev: MessageEvent<ToPage>) => {
    const m = ev.data;
    switch (m.type) {
      case 'ready': {
        s.backend = m.backend;
        s.reason = m.reason;
        s.storage = m.storage;
        s.stored = m.stored ? { step: m.stored.step, source: m.stored.source } : null;
        s.workerMemory = m.memory;
        el.backend.textContent =
          `Training Worker backend: ${m.backend}${m.threads && m.threads > 1 ? ` (${m.threads} threads)` : ''}${m.adapter ? ` on ${m.adapter}` : ''} — ${m.reason}. ` +
          `Checkpoints and the log: ${m.storage}.`;
        setState('idle', m.stored ? `A stored run was found (step ${m.stored.step}, ${m.stored.source === 'fashion' ? 'Fashion-MNIST' : 'your images'}${m.stored.config.base ? `, from ${m.stored.config.base.name}` : ''}): Resume continues it.` : 'Pick the data and press Start.');
        break;
      }
      case 'base': {
        s.base = { name: m.base.name, description: m.description, input: m.input, gpsa: m.gpsa };
        el.baseInfo.textContent = `${m.base.name} — ${m.description}; a new head for your classes, trained at ${m.input.size.join('×')}×${m.input.channels}${m.gpsa ? '' : ' (no GPSA layers: no gate curves)'}`;
        inspecting?.resolve(m);
        inspecting = null;
        if (s.state === 'loading' && !starting) setState('idle', `${m.base.name} is ready: press Start.`);
        break;
      }
      case 'notice':
        s.notices.push(m.message);
        el.status.textContent = m.message;
        break;
      case 'data':
        classNames = m.classNames;
        config = m.config;
        s.input = m.input;
        s.totalSteps = 0;
        s.framesAtStart = s.frames;
        s.framesAtEnd = null;
        setState('training', `${m.source} (${m.train} training, ${m.test} held out)`);
        break;
      case 'progress':
        lastProgress = m.progress;
        s.step = m.progress.step;
        s.totalSteps = m.progress.totalSteps;
        s.losses.push(m.progress.loss);
        s.workerMemory = m.memory;
        if (s.state === 'training') {
          el.status.textContent = `epoch ${m.progress.epoch + 1}/${m.progress.epochs}, update ${m.progress.step}/${m.progress.totalSteps}: loss ${m.progress.loss.toFixed(4)}${eta(m.progress)}`;
        }
        if (s.losses.length % 5 === 1) draw();
        footer();
        break;
      case 'epoch':
        s.epochs.push(m.report);
        s.workerMemory = { numTensors: m.report.numTensors, numBytes: m.report.numBytes };
        draw();
        footer();
        break;
      case 'done':
        s.framesAtEnd = s.frames;
        s.status = m.status;
        s.step = m.step;
        s.resumedFrom = m.resumedFrom ?? null;
        s.lastLoss = m.lastLoss;
        s.checksum = m.checksum;
        s.epochs = m.history;
        s.workerMemory = m.memory;
        weights = m.weights;
        s.stored = m.status === 'aborted' ? { step: m.step, source: '' } : null;
        draw();
        footer();
        setState(
          m.status === 'completed' ? 'done' : 'paused',
          m.status === 'completed'
            ? `done: ${m.step} updates, last loss ${m.lastLoss.toFixed(4)}${lastProgress ? ` in ${(lastProgress.elapsedMs / 1000).toFixed(1)} s` : ''}. Download the weights below.`
            : `paused at update ${m.step} (checkpoint stored; Resume continues, also after a reload)`,
        );
        break;
      case 'predictions': {
        s.workerMemory = m.memory;
        s.predictions = m.predictions.map((top, i) => ({ file: m.names[i] ?? `image ${i + 1}`, top }));
        classifyOut.replaceChildren(
          ...s.predictions.map((p) => {
            const li = document.createElement('li');
            li.textContent = `${p.file}: ${p.top.map((t) => `${t.name} ${(100 * t.prob).toFixed(1)}%`).join(', ')}`;
            return li;
          }),
        );
        setState(s.state, `classified ${m.predictions.length} image(s) in the Worker`);
        footer();
        break;
      }
      case 'onnx': {
        onnx = m.bytes;
        save(onnx, `${runName()}-finetuned-${classNames.length}classes.onnx`);
        const i = s.input ?? TRUNK_INPUT;
        setState(s.state, `ONNX export: ${(onnx.length / 2 ** 20).toFixed(2)} MiB (input NHWC [batch, ${i.size.join(', ')}, ${i.channels}] normalised as in training, output logits)`);
        break;
      }
      case 'cleared':
        s.stored = null;
        setState('idle', 'stopped; the stored run was removed');
        break;
      case 'error':
        s.error = m.message;
        inspecting?.reject(new Error(m.message));
        inspecting = null;
        setState('error', m.message);
        break;
    }
  };
  worker.onerror = (e) => {
    s.error = e.message;
    setState('error', `the training Worker failed: ${e.message}`);
  };

  // ---------------------------------------------------------------------------------------- user images

  const dropped: File[][] = [];
  const renderDrops = () => {
    const names = el.classes.value.split(',').map((n) => n.trim()).filter(Boolean);
    el.drops.replaceChildren(
      ...names.map((name, i) => {
        const label = document.createElement('label');
        label.className = 'drop';
        const input = document.createElement('input');
        input.type = 'file';
        input.multiple = true;
        input.accept = 'image/*';
        input.dataset.cls = String(i);
        input.addEventListener('change', () => {
          dropped[i] = input.files ? Array.from({ length: input.files.length }, (_, k) => input.files!.item(k)!) : [];
          count.textContent = `${dropped[i]!.length} images`;
        });
        const count = document.createElement('span');
        count.className = 'muted';
        count.textContent = `${dropped[i]?.length ?? 0} images`;
        label.append(`${name}: `, input, count);
        return label;
      }),
    );
  };
  el.classes.addEventListener('change', () => {
    dropped.length = 0;
    renderDrops();
  });
  el.source.addEventListener('change', () => {
    document.body.dataset.ftSource = el.source.value;
  });
  document.body.dataset.ftSource = el.source.value;
  renderDrops();

  /**
   * An image file → uint8 HWC bytes at a run's input (28×28 grey for the demo trunk, a checkpoint's size and
   * channels otherwise): centre-cropped to the input's aspect ratio, resized; grey is BT.601 luma.
   */
  async function toPixels(file: Blob, input: RunInput): Promise<Uint8Array> {
    const [h, w] = input.size;
    const bitmap = await createImageBitmap(file);
    const scale = Math.min(bitmap.width / w, bitmap.height / h);
    const [sw, sh] = [w * scale, h * scale];
    const c = new OffscreenCanvas(w, h);
    const ctx = c.getContext('2d', { willReadFrequently: true })!;
    ctx.drawImage(bitmap, (bitmap.width - sw) / 2, (bitmap.height - sh) / 2, sw, sh, 0, 0, w, h);
    bitmap.close();
    const { data } = ctx.getImageData(0, 0, w, h);
    const ch = input.channels;
    const out = new Uint8Array(w * h * ch);
    for (let i = 0; i < w * h; i++) {
      if (ch === 1) out[i] = Math.round(0.299 * data[4 * i]! + 0.587 * data[4 * i + 1]! + 0.114 * data[4 * i + 2]!);
      else out.set(data.subarray(4 * i, 4 * i + 3), 3 * i);
    }
    return out;
  }

  // ------------------------------------------------------------------------------ a checkpoint to start from

  document.body.dataset.ftModel = el.model.value;
  let inspecting: { resolve: (m: Extract<ToPage, { type: 'base' }>) => void; reject: (e: Error) => void } | null = null;
  /** True while Start waits for the Worker's look at the checkpoint (its 'base' answer does not end the wait). */
  let starting = false;

  /** The checkpoint the model menu names, or null for the demo trunk. */
  function chosenBase(): FinetuneBase | null {
    const v = el.model.value;
    if (v === 'shipped') return { source: 'shipped', name: 'the shipped Fashion-MNIST ConViT' };
    if (v === 'file') {
      const f = el.baseFile.files?.item(0);
      if (!f) throw new Error('choose a .safetensors file to fine-tune (or another model)');
      return { source: 'file', name: f.name };
    }
    if (v === 'hub') {
      const id = el.baseHub.value.trim();
      if (!id) throw new Error('type a hub id (e.g. timm/convit_tiny.fb_in1k)');
      return { source: 'hub', name: id };
    }
    return null;
  }

  /** The Worker looks at the checkpoint (and keeps it for Start): its input and description. */
  async function inspect(base: FinetuneBase): Promise<NonNullable<FinetuneState['base']>> {
    if (s.base?.name === base.name && inspectedSource === base.source) return s.base;
    let bytes: Uint8Array | undefined;
    if (base.source === 'shipped') {
      const r = await fetch(SHIPPED_MODEL);
      if (!r.ok) throw new Error(`${SHIPPED_MODEL}: HTTP ${r.status}`);
      bytes = new Uint8Array(await r.arrayBuffer());
    } else if (base.source === 'file') bytes = new Uint8Array(await el.baseFile.files!.item(0)!.arrayBuffer());
    const hubEndpoint = new URLSearchParams(location.search).get('hub') ?? undefined;
    const answer = new Promise<Extract<ToPage, { type: 'base' }>>((resolve, reject) => {
      inspecting = { resolve, reject };
    });
    s.base = null;
    el.baseInfo.textContent = base.source === 'hub' ? `downloading ${base.name}…` : `reading ${base.name}…`;
    send({ type: 'inspect', base, ...(bytes ? { bytes } : {}), ...(hubEndpoint ? { hubEndpoint } : {}) }, bytes ? [bytes.buffer as ArrayBuffer] : []);
    await answer;
    inspectedSource = base.source;
    return s.base!;
  }
  let inspectedSource: FinetuneBase['source'] | null = null;

  const inspectChosen = () => {
    document.body.dataset.ftModel = el.model.value;
    s.base = null;
    el.baseInfo.textContent = '';
    let base: FinetuneBase | null;
    try {
      base = el.model.value === 'hub' ? null : chosenBase(); // a hub id is fetched on Start (typing is not a request)
    } catch {
      return; // no file yet
    }
    if (!base) return;
    setState('loading', `reading ${base.name}…`);
    inspect(base).catch((e: unknown) => {
      s.error = (e as Error).message;
      setState('error', s.error);
    });
  };
  el.model.addEventListener('change', inspectChosen);
  el.baseFile.addEventListener('change', inspectChosen);

  async function spec(): Promise<RunSpec> {
    const num = (i: HTMLInputElement, d: number) => (Number.isFinite(i.valueAsNumber) ? i.valueAsNumber : d);
    const base = chosenBase();
    const input = base ? (await inspect(base)).input : TRUNK_INPUT;
    const cfg: FinetuneConfig = {
      ...FINETUNE_DEFAULTS,
      ...(base ? { base } : { model: el.model.value as FinetuneConfig['model'] }),
      epochs: num(el.epochs, FINETUNE_DEFAULTS.epochs),
      batchSize: num(el.batch, FINETUNE_DEFAULTS.batchSize),
      seed: num(el.seed, FINETUNE_DEFAULTS.seed),
      perClass: num(el.perClass, FINETUNE_DEFAULTS.perClass!),
    };
    const every = Number(new URLSearchParams(location.search).get('ckptEvery') ?? 0);
    const extra = every > 0 ? { checkpointEverySteps: every } : {};
    if (el.source.value === 'fashion') return { config: cfg, data: { kind: 'fashion' }, ...extra };
    const names = el.classes.value.split(',').map((n) => n.trim()).filter(Boolean);
    if (names.length < 2 || names.length > 10) throw new Error(`name 2 to 10 classes (comma-separated), got ${names.length}`);
    const images: Uint8Array[] = [];
    const labels: number[] = [];
    for (let c = 0; c < names.length; c++) {
      const files = dropped[c] ?? [];
      if (files.length === 0) throw new Error(`class '${names[c]}' has no images: drop some onto its field`);
      for (const f of files) {
        try {
          images.push(await toPixels(f, input));
        } catch (e) {
          throw new Error(`${f.name}: not an image this browser can decode (${(e as Error).message})`);
        }
        labels.push(c);
      }
    }
    const per = input.size[0] * input.size[1] * input.channels;
    const all = new Uint8Array(images.length * per);
    for (const [i, im] of images.entries()) all.set(im, i * per);
    const imageShape: [number, number, number] = [input.size[0], input.size[1], input.channels];
    return { config: cfg, data: { kind: 'user', images: all, labels, classNames: names, imageShape }, ...extra };
  }

  const reset = () => {
    s.step = 0;
    s.totalSteps = 0;
    s.losses = [];
    s.epochs = [];
    s.status = null;
    s.checksum = null;
    s.lastLoss = null;
    s.resumedFrom = null;
    weights = null;
  };

  el.start.addEventListener('click', () => {
    starting = true;
    setState('loading', 'preparing the run…');
    spec()
      .finally(() => {
        starting = false;
      })
      .then((sp) => {
        reset();
        setState('loading', 'loading the data…');
        send({ type: 'start', spec: sp }, sp.data.kind === 'user' ? [sp.data.images.buffer as ArrayBuffer] : []);
      })
      .catch((e: unknown) => {
        s.error = (e as Error).message;
        setState('error', s.error);
      });
  });
  el.pause.addEventListener('click', () => {
    el.status.textContent = 'pausing after this update…';
    send({ type: 'pause' });
  });
  el.resume.addEventListener('click', () => {
    s.losses = [];
    weights = null;
    setState('loading', 'resuming from the stored checkpoint…');
    send({ type: 'resume' });
  });
  el.abort.addEventListener('click', () => {
    el.status.textContent = 'stopping…';
    send({ type: 'abort' });
  });
  function save(bytes: Uint8Array, name: string) {
    const a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([bytes as BlobPart], { type: 'application/octet-stream' }));
    a.download = name;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  }
  el.download.addEventListener('click', () => {
    if (weights) save(weights, `${runName()}-finetuned-${classNames.length}classes.safetensors`);
  });
  onnxButton.addEventListener('click', () => {
    el.status.textContent = 'exporting ONNX in the Worker…';
    onnx = null;
    send({ type: 'onnx' });
  });

  classifyInput.addEventListener('change', () => {
    const files = classifyInput.files ? Array.from({ length: classifyInput.files.length }, (_, k) => classifyInput.files!.item(k)!) : [];
    if (!files.length) return;
    Promise.all(
      files.map((f) =>
        toPixels(f, s.input ?? TRUNK_INPUT).catch((e: unknown) => {
          throw new Error(`${f.name}: not an image this browser can decode (${(e as Error).message})`);
        }),
      ),
    )
      .then((ims) => {
        const per = ims[0]!.length;
        const all = new Uint8Array(ims.length * per);
        for (const [i, im] of ims.entries()) all.set(im, i * per);
        el.status.textContent = `classifying ${files.length} image(s)…`;
        send({ type: 'classify', images: all, k: Math.min(3, classNames.length || 3), names: files.map((f) => f.name) }, [all.buffer as ArrayBuffer]);
      })
      .catch((e: unknown) => {
        s.error = (e as Error).message;
        el.status.textContent = s.error;
        el.status.className = 'error';
      });
  });

  setInterval(footer, 1000);
  setState('starting', 'starting the training Worker…');
  send({ type: 'init', backend: opts.backend as never, threads: opts.threads, storage: opts.storage });
  return s;
}
