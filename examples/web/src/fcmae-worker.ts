/**
 * The FCMAE tab's pre-training Worker: its own TensorFlow.js backend (the page's request), and a few FCMAE
 * pre-training steps on the user's images through `fcmaePretrain` (`@softbias/train`'s `fit({ loss })` with
 * FCMAE's loss). The page sends the model's weights and the images, draws each step's loss, and loads the
 * trained weights back for the reconstruction; it stays responsive while the Worker trains.
 */
import * as tf from '@tensorflow/tfjs-core';
import { setupBackend, type BackendRequest } from '@softbias/tensor-ops';
import { WASM_PATHS } from './wasm-paths.js';
import { fcmaePretrain, type PretrainSpec } from './fcmae-view.js';
import type { Memory } from './worker-protocol.js';

export type { Memory } from './worker-protocol.js';

export type ToFcmaeWorker = { type: 'init'; backend: BackendRequest; threads: number } | { type: 'train'; spec: PretrainSpec };

export type FromFcmaeWorker =
  | { type: 'ready'; backend: string; reason: string; memory: Memory }
  | { type: 'step'; step: number; loss: number; memory: Memory }
  | { type: 'done'; losses: number[]; weights: Uint8Array; memory: Memory; ms: number }
  | { type: 'error'; message: string };

const post = (m: FromFcmaeWorker, transfer: Transferable[] = []) => (self as unknown as Worker).postMessage(m, transfer);
const memory = (): Memory => {
  const m = tf.memory();
  return { numTensors: m.numTensors, numBytes: m.numBytes };
};

let busy: Promise<void> = Promise.resolve();

self.onmessage = (ev: MessageEvent<ToFcmaeWorker>) => {
  const m = ev.data;
  busy = busy
    .then(async () => {
      if (m.type === 'init') {
        const info = await setupBackend(m.backend, {
          threads: m.threads,
          wasmPaths: WASM_PATHS,
        });
        post({ type: 'ready', backend: info.backend, reason: info.reason, memory: memory() });
      } else {
        const t0 = performance.now();
        const r = await fcmaePretrain(m.spec, (step, loss) => post({ type: 'step', step, loss, memory: memory() }));
        post({ type: 'done', losses: r.losses, weights: r.weights, memory: memory(), ms: performance.now() - t0 }, [r.weights.buffer as ArrayBuffer]);
      }
    })
    .catch((e: unknown) => post({ type: 'error', message: (e as Error).message ?? String(e) }));
};
