import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend, currentBackend } from '@softbias/test-utils';
import { registerSoftbiasWasmKernels } from '@softbias/tensor-ops';
import { fileURLToPath } from 'node:url';
import { runTsInChild } from '../../../../test-utils/child.js';

describeBackend('registerSoftbiasWasmKernels', () => {
  it.runIf(currentBackend === 'wasm')('is idempotent after setupBackend registered the kernels', () => {
    for (const k of ['DepthwiseConv2dNativeBackpropInput', 'DepthwiseConv2dNativeBackpropFilter', 'Conv2DBackpropFilter', 'SoftbiasGelu', 'SoftbiasLayerNorm', 'SoftbiasLinear']) {
      expect(tf.getKernel(k, 'wasm'), k).toBeDefined();
    }
    expect((tf.getKernel('BatchMatMul', 'wasm')!.kernelFunc as { softbias?: boolean }).softbias).toBe(true);
    expect((tf.getKernel('DepthwiseConv2dNative', 'wasm')!.kernelFunc as { softbias?: boolean }).softbias).toBe(true);
    expect(registerSoftbiasWasmKernels()).toEqual({ backprop: [], batchMatMul: false, depthwise: false, eltwise: [], attention: false, broadcast: [], linear: false, identity: false });
  });
  it.runIf(currentBackend === 'wasm')('the 2-thread pool under short calls: 60 ConViT-Ti forwards with 48 tasks per GEMM, none failing, all equal (child process)', () => {
    const r = runTsInChild<{ threads: number; forwards: number; errors: number; bad: number }>(
      fileURLToPath(new URL('../../test/pool-race.child.ts', import.meta.url)),
    );
    expect(r.status, r.how).toBe(0);
    expect(r.result!.threads).toBe(2);
    expect(r.result!.errors, 'forwards that failed on a worker thread').toBe(0);
    expect(r.result!.bad, 'forwards whose logits differ from the first').toBe(0);
  });
});
