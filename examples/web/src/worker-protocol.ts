/** Messages between the page and the fine-tune Worker (train-worker.ts). */
import type { BackendRequest } from '@softbias/tensor-ops';
import type { FitProgress } from '@softbias/train';
import type { EpochReport, FinetuneConfig, Prediction } from './finetune.js';

export interface Memory {
  numTensors: number;
  numBytes: number;
}

/** A run: the config and the data (the embedded Fashion-MNIST subset, or the user's 28×28 grey images). */
export interface RunSpec {
  config: FinetuneConfig;
  data:
    | { kind: 'fashion'; testPerClass?: number }
    | { kind: 'user'; images: Uint8Array; labels: number[]; classNames: string[] };
  /** Checkpoint every this many updates besides epoch ends (a reload then loses at most that many). */
  checkpointEverySteps?: number;
}

/** Where the Worker keeps checkpoints: 'persistent' = OPFS where the browser has it, else IndexedDB. */
export type StorageChoice = 'persistent' | 'opfs' | 'indexeddb' | 'memory';

export type ToWorker =
  | { type: 'init'; backend: BackendRequest; threads: number; storage: StorageChoice; dbName?: string }
  | { type: 'start'; spec: RunSpec }
  | { type: 'resume'; spec?: RunSpec }
  /** Stop before the next update, keeping the checkpoint (resume later, or after a reload). */
  | { type: 'pause' }
  /** Stop and forget the stored run. */
  | { type: 'abort' }
  /** Classify 28×28 grey images (N·784 bytes) with the last run's fine-tuned weights: top-k per image. */
  | { type: 'classify'; images: Uint8Array; k?: number; names?: string[] }
  /** The last run's fine-tuned model as ONNX. */
  | { type: 'onnx' };

export type ToPage =
  | {
      type: 'ready';
      backend: string;
      reason: string;
      threads?: number;
      adapter?: string;
      storage: string;
      stored: { step: number; config: FinetuneConfig; source: string } | null;
      memory: Memory;
    }
  | { type: 'data'; source: string; classNames: string[]; train: number; test: number; config: FinetuneConfig }
  | { type: 'progress'; progress: FitProgress; memory: Memory }
  | { type: 'epoch'; report: EpochReport }
  | {
      type: 'done';
      status: 'completed' | 'aborted';
      step: number;
      resumedFrom?: number;
      history: EpochReport[];
      lastLoss: number;
      checksum: number;
      weights: Uint8Array;
      memory: Memory;
    }
  | { type: 'cleared' }
  | { type: 'predictions'; predictions: Prediction[][]; names: string[]; memory: Memory }
  | { type: 'onnx'; bytes: Uint8Array }
  | { type: 'error'; message: string };
