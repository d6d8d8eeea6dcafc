import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend, currentBackend } from '@softbias/test-utils';
import { registerSoftbiasWasmKernels } from '@softbias/tensor-ops';

describeBackend('registerSoftbiasWasmKernels', () => {
  it.runIf(currentBackend === 'wasm')('is idempotent after setupBackend registered the kernels', () => {
    for (const k of ['DepthwiseConv2dNativeBackpropInput', 'DepthwiseConv2dNativeBackpropFilter', 'Conv2DBackpropFilter', 'SoftbiasGelu', 'SoftbiasLayerNorm', 'SoftbiasLinear']) {
      expect(tf.getKernel(k, 'wasm'), k).toBeDefined();
    }
    expect((tf.getKernel('BatchMatMul', 'wasm')!.kernelFunc as { softbias?: boolean }).softbias).toBe(true);
    expect((tf.getKernel('DepthwiseConv2dNative', 'wasm')!.kernelFunc as { softbias?: boolean }).softbias).toBe(true);
    expect(registerSoftbiasWasmKernels()).toEqual({ backprop: [], batchMatMul: false, depthwise: false, eltwise: [], attention: false, broadcast: [], linear: false, identity: false });
  });
});
