/**
 * softbias' wasm kernels for apps that select the backend themselves (`tf.setBackend('wasm')`) instead of
 * `setupBackend`: call once after importing '@tensorflow/tfjs-backend-wasm'. Idempotent. Every kernel family
 * registers here (and only here), so `setupBackend('wasm')` and apps get the same set.
 */
import { registerWasmKernels } from './wasm-conv-backprop.js';
import { registerWasmDepthwiseConv2d } from './depthwise.js';
import { registerWasmBatchMatMul, registerWasmLinear } from './wasm-batch-matmul.js';
import { registerWasmEltwiseKernels } from './eltwise.js';
import { registerWasmAttention } from './attention.js';
import { registerWasmBroadcastKernels } from './broadcast.js';
import { registerWasmIdentity } from './identity.js';

export function registerSoftbiasWasmKernels(): { backprop: string[]; batchMatMul: boolean; depthwise: boolean; eltwise: string[]; attention: boolean; broadcast: string[]; linear: boolean; identity: boolean } {
  return {
    backprop: registerWasmKernels(),
    batchMatMul: registerWasmBatchMatMul(),
    linear: registerWasmLinear(),
    depthwise: registerWasmDepthwiseConv2d(),
    eltwise: registerWasmEltwiseKernels(),
    attention: registerWasmAttention(),
    broadcast: registerWasmBroadcastKernels(),
    identity: registerWasmIdentity(),
  };
}
