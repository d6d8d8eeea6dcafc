/**
 * Per-project setup: selects the backend named by SOFTBIAS_BACKEND before the spec file is collected.
 * For webgpu, a missing adapter fails when one is required (CI=true or SOFTBIAS_REQUIRE_WEBGPU=1); otherwise
 * the project's specs skip through `describeBackend`, with a message saying how to get an adapter.
 */
import * as tf from '@tensorflow/tfjs-core';
import { setupBackend, probeWebGpu } from '@softbias/tensor-ops';
import { backendState, currentBackend } from './state.js';

const requireAdapter = process.env.CI === 'true' || process.env.SOFTBIAS_REQUIRE_WEBGPU === '1';

if (!backendState.ready) {
  if (currentBackend === 'webgpu') {
    const probe = await probeWebGpu();
    if (!probe.adapter) {
      if (requireAdapter) throw new Error(`webgpu tests require an adapter (CI=true): ${probe.reason}`);
      backendState.unavailable = `webgpu skipped: ${probe.reason}`;
      console.warn(backendState.unavailable);
    }
  }
  if (!backendState.unavailable) {
    backendState.info = await setupBackend(currentBackend, currentBackend === 'webgpu' ? { cpuForward: false } : {});
    if (tf.getBackend() !== currentBackend) throw new Error(`expected backend ${currentBackend}, got ${tf.getBackend()}`);
  }
  backendState.ready = true;
}
