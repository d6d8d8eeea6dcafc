/** Messages between the page and the fine-tune Worker (train-worker.ts). */
import type { BackendRequest } from '@softbias/tensor-ops';
import type { FitProgress } from '@softbias/train';
import type { EpochReport, FinetuneBase, FinetuneConfig, Prediction, RunInput } from './finetune.js';

export interface Memory {
  numTensors: number;
  numBytes: number;
}

/**
 * A run: the config and the data (the embedded Fashion-MNIST subset, or the user's images at the run's input:
 * 28×28 grey for the demo trunk, the checkpoint's size and channels when `config.base` is set).
 */
export interface RunSpec {
  config: FinetuneConfig;
  data:
    | { kind: 'fashion'; testPerClass?: number }
    | { kind: 'user'; images: Uint8Array; labels: number[]; classNames: string[]; imageShape?: [number, number, number] };
  /** Checkpoint every this many updates besides epoch ends (a reload then loses at most that many). */
  checkpointEverySteps?: number;
}

/** Where the Worker keeps checkpoints: 'persistent' = OPFS where the browser has it, else IndexedDB. */
export type StorageChoice = 'persistent' | 'opfs' | 'indexeddb' | 'memory';

export type ToWorker =
  | { type: 'init'; backend: BackendRequest; threads: number; storage: StorageChoice; dbName?: string }
  /**
   * Look at a checkpoint to fine-tune (a file's bytes, the shipped model's, or a hub id the Worker downloads):
   * answered by 'base' (its input, so the page converts the user's images to it). The Worker keeps the bytes
   * for the next 'start' whose `config.base` names it.
   */
  | { type: 'inspect'; base: FinetuneBase; bytes?: Uint8Array; hubEndpoint?: string }
  | { type: 'start'; spec: RunSpec }
  | { type: 'resume'; spec?: RunSpec }
  /** Stop before the next update, keeping the checkpoint (resume later, or after a reload). */
  | { type: 'pause' }
  /** Stop and forget the stored run. */
  | { type: 'abort' }
  /** Classify images at the last run's input (N·H·W·C bytes) with its fine-tuned weights: top-k per image. */
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
  | { type: 'base'; base: FinetuneBase; input: RunInput; description: string; gpsa: boolean }
  | { type: 'notice'; message: string }
  | { type: 'data'; source: string; classNames: string[]; train: number; test: number; config: FinetuneConfig; input: RunInput }
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
