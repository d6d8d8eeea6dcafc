/** Module ⇄ safetensors, by PyTorch/timm `state_dict` name. */
import type * as tf from '@tensorflow/tfjs-core';
import type { LoadStateDictOptions, LoadStateDictResult, Module } from './module.js';
import {
  type SafetensorsFile,
  type SerializeOptions,
  type WeightsSource,
  type WriteTensor,
  serializeSafetensors,
  writeFileAtomic,
} from './safetensors.js';
import { readWeights } from './models/weights.js';

/** Every tensor of a file as float32 data with its (PyTorch) shape, keyed by name. */
export function stateDictFromSafetensors(file: SafetensorsFile): Map<string, { data: Float32Array; shape: number[] }> {
  const out = new Map<string, { data: Float32Array; shape: number[] }>();
  for (const name of file.names()) out.set(name, file.getFloat32(name));
  return out;
}

/**
 * Load a safetensors file into a module by name (strict by default; see `Module.loadStateDict`). Reads through
 * `readWeights` (`@softbias/tensor-ops/models`), the one reader; integer tensors are converted as before,
 * non-finite values refused by `loadStateDict` unless `allowNonFinite`.
 */
export async function loadSafetensorsInto(
  module: Module,
  source: WeightsSource | SafetensorsFile,
  opts: LoadStateDictOptions = {},
): Promise<LoadStateDictResult> {
  const w = await readWeights(source);
  return module.loadStateDict(w.stateDict({ allowIntegerCast: true, allowNonFinite: true }), opts);
}

/** Read a map of tensors to float32 host data (async, so WebGPU reads back without blocking). */
export async function tensorsToHost(tensors: Map<string, tf.Tensor>): Promise<[string, WriteTensor][]> {
  const out: [string, WriteTensor][] = [];
  for (const [k, t] of tensors) out.push([k, { data: (await t.data()) as Float32Array, shape: t.shape }]);
  return out;
}

export interface SaveOptions extends SerializeOptions {
  /** Architecture config, stored as JSON in `__metadata__.config` so the file can rebuild its model. */
  config?: unknown;
}

/** A module's state dict (PyTorch names and layouts) as safetensors bytes. */
export async function saveSafetensorsBytes(module: Module, opts: SaveOptions = {}): Promise<Uint8Array> {
  const sd = module.stateDict();
  try {
    const metadata = { ...(opts.metadata ?? {}) };
    if (opts.config !== undefined) metadata['config'] = JSON.stringify(opts.config);
    metadata['format'] ??= 'pt';
    return serializeSafetensors(await tensorsToHost(sd), { ...opts, metadata });
  } finally {
    for (const t of sd.values()) t.dispose();
  }
}

/** Save to a Node path (atomically) and return the bytes. */
export async function saveSafetensorsFile(module: Module, path: string, opts: SaveOptions = {}): Promise<Uint8Array> {
  const bytes = await saveSafetensorsBytes(module, opts);
  await writeFileAtomic(path, bytes);
  return bytes;
}
