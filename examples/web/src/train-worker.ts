/**
 * The fine-tune tab's dedicated Worker: its own TensorFlow.js backend (WebGPU, else wasm), the run of
 * `finetune.ts` (`@softbias/train`'s `fit`, checkpoints and log in OPFS or IndexedDB), stopped through fit's
 * AbortSignal. A run that starts from a checkpoint stores its weights beside the run (a reload resumes it
 * without the file or the network). The page only sends commands and draws what comes back, so it stays
 * responsive.
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkpointMeta, indexedDbStorage, memoryStorage, opfsAvailable, opfsStorage, type FitStorage } from '@softbias/train';
import { parseSafetensors, setupBackend } from '@softbias/tensor-ops';
import { WASM_PATHS } from './wasm-paths.js';
import trainImagesUrl from '../../../packages/data/assets/fashion-mnist/train-images-idx3-ubyte.gz?url';
import trainLabelsUrl from '../../../packages/data/assets/fashion-mnist/train-labels-idx1-ubyte.gz?url';
import testImagesUrl from '../../../packages/data/assets/fashion-mnist/t10k-images-idx3-ubyte.gz?url';
import testLabelsUrl from '../../../packages/data/assets/fashion-mnist/t10k-labels-idx1-ubyte.gz?url';
import {
  baseWeights,
  classifyImages,
  describeBase,
  fashionMnistData,
  finetunedOnnx,
  runFinetune,
  userData,
  type FinetuneBase,
  type FinetuneConfig,
  type FinetuneData,
} from './finetune.js';
import type { ToPage, ToWorker, RunSpec } from './worker-protocol.js';

const post = (m: ToPage, transfer: Transferable[] = []) => (self as unknown as Worker).postMessage(m, transfer);

const RUN_KEY = 'finetune/run.json';
const IMAGES_KEY = 'finetune/images.bin';
const CKPT_KEY = 'finetune/ckpt.safetensors';
const LOG_KEY = 'finetune/log.jsonl';
const BASE_KEY = 'finetune/base.safetensors';

let storage: FitStorage = memoryStorage();
let controller: AbortController | null = null;
/** The last finished (or paused) run's weights: what 'classify' and 'onnx' use. */
let last: { config: FinetuneConfig; weights: Uint8Array } | null = null;
/** The checkpoint the last 'inspect' looked at (a hub download is made once), for the next 'start'. */
let inspected: { base: FinetuneBase; bytes: Uint8Array } | null = null;
const sameBase = (a: FinetuneBase, b: FinetuneBase) => a.source === b.source && a.name === b.name;

async function fetchBytes(url: string): Promise<Uint8Array> {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

async function dataFor(spec: RunSpec): Promise<FinetuneData> {
  if (spec.data.kind === 'fashion') {
    const [trainImages, trainLabels, testImages, testLabels] = await Promise.all([trainImagesUrl, trainLabelsUrl, testImagesUrl, testLabelsUrl].map(fetchBytes));
    return fashionMnistData(
      { trainImages: trainImages!, trainLabels: trainLabels!, testImages: testImages!, testLabels: testLabels! },
      { perClass: spec.config.perClass ?? 30, testPerClass: spec.data.testPerClass ?? 10, seed: spec.config.seed },
    );
  }
  return userData(spec.data.images, spec.data.labels, spec.data.classNames, spec.data.imageShape);
}

/** The stored run (config and data description) and its checkpoint's step, or null. */
async function storedRun(): Promise<{ spec: RunSpec; step: number } | null> {
  let spec: RunSpec;
  try {
    spec = JSON.parse(new TextDecoder().decode(await storage.read(RUN_KEY))) as RunSpec;
    if (spec.data.kind === 'user') spec.data.images = await storage.read(IMAGES_KEY);
  } catch {
    return null;
  }
  let step = 0;
  try {
    step = checkpointMeta(parseSafetensors(await storage.read(CKPT_KEY))).step;
  } catch {
    /* no checkpoint yet */
  }
  return { spec, step };
}

async function clearRun(): Promise<void> {
  for (const k of [RUN_KEY, IMAGES_KEY, CKPT_KEY, LOG_KEY, BASE_KEY]) await storage.remove?.(k);
}

async function train(spec: RunSpec, resume: boolean): Promise<void> {
  let base: Uint8Array | undefined;
  if (resume) {
    const stored = await storedRun();
    if (!stored) throw new Error('no stored run to resume');
    spec = stored.spec;
    if (spec.config.base) base = await storage.read(BASE_KEY);
  } else {
    const b = spec.config.base;
    if (b) {
      if (!inspected || !sameBase(inspected.base, b)) throw new Error(`fine-tune: inspect ${b.name} before starting from it`);
      base = inspected.bytes;
    }
    await clearRun();
    const { images, ...rest } = spec.data.kind === 'user' ? spec.data : { ...spec.data, images: undefined };
    await storage.write(RUN_KEY, new TextEncoder().encode(JSON.stringify({ ...spec, data: rest })));
    if (images) await storage.write(IMAGES_KEY, images);
    if (base) await storage.write(BASE_KEY, base);
  }
  const data = await dataFor(spec);
  controller = new AbortController();
  const r = await runFinetune(spec.config as FinetuneConfig, data, {
    storage,
    checkpointKey: CKPT_KEY,
    logKey: LOG_KEY,
    resume,
    signal: controller.signal,
    ...(spec.checkpointEverySteps ? { checkpointEverySteps: spec.checkpointEverySteps } : {}),
    onProgress: (p) => post({ type: 'progress', progress: p, memory: tf.memory() }),
    onEpoch: (report) => post({ type: 'epoch', report }),
    onStart: (runInput) =>
      post({ type: 'data', source: data.source, classNames: data.classNames, train: data.train.length, test: data.test.length, config: spec.config, input: runInput }),
  }, base);
  controller = null;
  last = { config: spec.config as FinetuneConfig, weights: r.weights.slice() };
  post(
    {
      type: 'done',
      status: r.status,
      step: r.step,
      ...(r.resumedFrom !== undefined ? { resumedFrom: r.resumedFrom } : {}),
      history: r.history,
      lastLoss: r.lastLoss,
      checksum: r.checksum,
      weights: r.weights,
      memory: tf.memory(),
    },
    [r.weights.buffer as ArrayBuffer],
  );
}

let busy: Promise<void> = Promise.resolve();

self.onmessage = (ev: MessageEvent<ToWorker>) => {
  const m = ev.data;
  if (m.type === 'pause' || m.type === 'abort') {
    // fit sees the signal before its next update, saves a checkpoint of that step and returns 'aborted'.
    controller?.abort();
    if (m.type === 'abort') busy = busy.then(() => clearRun()).then(() => post({ type: 'cleared' }));
    return;
  }
  busy = busy
    .then(async () => {
      if (m.type === 'init') {
        const info = await setupBackend(m.backend, {
          threads: m.threads,
          wasmPaths: WASM_PATHS,
        });
        const db = m.dbName ?? 'softbias-web';
        // OPFS (files, atomic replace) where the browser has it, else IndexedDB; `?storage=` picks one.
        storage =
          m.storage === 'memory'
            ? memoryStorage()
            : m.storage === 'opfs' || (m.storage === 'persistent' && opfsAvailable())
              ? opfsStorage(db)
              : indexedDbStorage(db);
        const stored = await storedRun();
        post({
          type: 'ready',
          backend: info.backend,
          reason: info.reason,
          ...(info.threads ? { threads: info.threads } : {}),
          ...(info.adapter ? { adapter: [info.adapter.vendor, info.adapter.architecture, info.adapter.description].filter(Boolean).join(' ') } : {}),
          storage: storage.name,
          stored: stored ? { step: stored.step, config: stored.spec.config, source: stored.spec.data.kind } : null,
          memory: tf.memory(),
        });
      } else if (m.type === 'inspect') {
        const bytes = await baseWeights(m.base, m.bytes, {
          ...(m.hubEndpoint ? { endpoint: m.hubEndpoint } : {}),
          onProgress: (p) => post({ type: 'notice', message: `downloading ${p.file}: ${(p.loaded / 2 ** 20).toFixed(1)}${p.total ? ` / ${(p.total / 2 ** 20).toFixed(1)}` : ''} MiB` }),
          onWarning: (message) => post({ type: 'notice', message }),
        });
        const d = await describeBase(bytes);
        inspected = { base: m.base, bytes };
        post({ type: 'base', base: m.base, input: d.input, description: d.description, gpsa: d.gpsa });
      } else if (m.type === 'start') await train(m.spec, false);
      else if (m.type === 'resume') await train(m.spec ?? ({} as RunSpec), true);
      else if (m.type === 'classify') {
        if (!last) throw new Error('classify: train (or resume) a model first');
        const predictions = await classifyImages(last.weights, m.images, m.k ?? 3);
        post({ type: 'predictions', predictions, names: m.names ?? [], memory: tf.memory() });
      } else if (m.type === 'onnx') {
        if (!last) throw new Error('ONNX export: train (or resume) a model first');
        const bytes = await finetunedOnnx(last.weights);
        post({ type: 'onnx', bytes }, [bytes.buffer as ArrayBuffer]);
      }
    })
    .catch((e: unknown) => {
      controller = null;
      post({ type: 'error', message: (e as Error).message ?? String(e) });
    });
};
