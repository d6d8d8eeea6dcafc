/**
 * softbias' wasm kernels for apps that select the backend themselves (`tf.setBackend('wasm')`) instead of
 * `setupBackend`: call once after importing '@tensorflow/tfjs-backend-wasm'. Idempotent.
 */
import { registerWasmKernels } from './wasm-depthwise-backprop.js';
import { registerWasmBatchMatMul } from './wasm-batch-matmul.js';

export function registerSoftbiasWasmKernels(): { backprop: string[]; batchMatMul: boolean } {
  return { backprop: registerWasmKernels(), batchMatMul: registerWasmBatchMatMul() };
}
