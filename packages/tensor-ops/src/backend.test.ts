/**
 * setupBackend on every project: explicit cpu / wasm return what they chose and why; 'tensorflow' names the
 * packages to install; 'auto' never picks a CPU-emulated WebGPU adapter (SwiftShader) and says why it skipped
 * WebGPU; unknown names and bad thread counts throw. Explicit webgpu is checked in the webgpu project.
 * tfjs can switch backends within a process, so every test puts the project's backend back afterwards.
 * (wasm threads need a fresh process: node-entry.pure.test.ts.)
 */
import * as tf from '@tensorflow/tfjs-core';
import { it, expect, afterEach } from 'vitest';
import { describeBackend, currentBackend, backendState } from '@softbias/test-utils';
import { fileURLToPath } from 'node:url';
import { runTsInChild } from '../../../test-utils/child.js';
import { setupBackend, probeWebGpu, BackendUnavailableError, isNode } from '@softbias/tensor-ops';

afterEach(async () => {
  if (tf.getBackend() !== currentBackend) await tf.setBackend(currentBackend);
  expect(tf.getBackend()).toBe(currentBackend);
});

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection');
}

describeBackend('setupBackend', () => {
  it('cpu: returns what it chose and why', async () => {
    const info = await setupBackend('cpu');
    expect(tf.getBackend()).toBe('cpu');
    expect(info).toMatchObject({ backend: 'cpu', requested: 'cpu', runtime: 'node' });
    expect(info.reason).toMatch(/JavaScript/);
    expect(info.attempts).toEqual([{ backend: 'cpu', ok: true, reason: info.reason }]);
    expect(isNode).toBe(true);
    // A real computation on it.
    const y = tf.matMul(tf.tensor([[1, 2]]), tf.tensor([[3], [4]]));
    expect(Array.from(await y.data())).toEqual([11]);
  });

  it('wasm: SIMD, one thread unless asked, and the reason', async () => {
    const info = await setupBackend('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(info).toMatchObject({ backend: 'wasm', requested: 'wasm', simd: true, threads: 1, runtime: 'node' });
    expect(info.reason).toBe('WebAssembly SIMD (softbias kernels + XNNPACK), 1 thread');
    const y = tf.matMul(tf.tensor([[1, 2]]), tf.tensor([[3], [4]]));
    expect(Array.from(await y.data())).toEqual([11]);
  });

  it('wasm threads: fixed by the first start in a process; bad counts are refused', async () => {
    await setupBackend('wasm'); // already started single-threaded in this process (or now)
    const err = await rejection(setupBackend('wasm', { threads: 2 }));
    expect(err).toBeInstanceOf(BackendUnavailableError);
    expect(err.message).toMatch(/already runs with 1 thread\(s\) in this process .* choose \{ threads \} in the first setupBackend\('wasm'\) call/);
    for (const threads of [0, 1.5, 9, -1]) {
      await expect(setupBackend('wasm', { threads })).rejects.toThrow(/threads must be an integer from 1 to 8/);
    }
    expect((await setupBackend('wasm', { threads: 1 })).threads).toBe(1);
  });

  it("tensorflow: a clear message naming @tensorflow/tfjs-node-gpu and @tensorflow/tfjs-node; backend unchanged", async () => {
    const before = tf.getBackend();
    const err = await rejection(setupBackend('tensorflow'));
    expect(err).toBeInstanceOf(BackendUnavailableError);
    expect((err as BackendUnavailableError).backend).toBe('tensorflow');
    expect(err.message).toMatch(/@tensorflow\/tfjs-node-gpu/);
    expect(err.message).toMatch(/@tensorflow\/tfjs-node[^-]/);
    expect(err.message).toMatch(/npm install @tensorflow\/tfjs-node-gpu@~4\.22\.0/);
    expect(tf.getBackend()).toBe(before);
  });

  it('auto: prefers a real GPU, never a CPU-emulated adapter, then wasm; the reason says why webgpu was skipped', async () => {
    const probe = await probeWebGpu();
    const info = await setupBackend('auto');
    expect(info.requested).toBe('auto');
    expect(info.attempts[0]!.backend).toBe('webgpu');
    if (probe.adapter && !probe.adapter.isFallbackAdapter) {
      expect(info.backend).toBe('webgpu'); // a real GPU
      return;
    }
    expect(info.backend).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(info.attempts.map((a) => [a.backend, a.ok])).toEqual([
      ['webgpu', false],
      ['wasm', true],
    ]);
    const why = probe.adapter
      ? /only a CPU-emulated adapter .*far slower than wasm, so auto skips it/
      : /no WebGPU adapter|needs the optional peer dependency 'webgpu'/;
    expect(info.attempts[0]!.reason).toMatch(why);
    expect(info.reason).toMatch(/^WebAssembly SIMD \(softbias kernels \+ XNNPACK\), 1 thread \(auto: webgpu skipped: /);
    expect(info.reason).toMatch(why);
  });

  it('the adapter this machine has (what auto skipped) is reported as CPU-emulated', async () => {
    const probe = await probeWebGpu();
    if (!probe.adapter) {
      expect(probe.reason).toMatch(/no WebGPU adapter|webgpu/i);
      return;
    }
    expect(typeof probe.adapter.isFallbackAdapter).toBe('boolean');
    if (/swiftshader/i.test(`${probe.adapter.vendor} ${probe.adapter.architecture} ${probe.adapter.description}`)) {
      expect(probe.adapter.isFallbackAdapter).toBe(true);
    }
  });

  it.runIf(currentBackend === 'cpu')('auto: a wasm backend that cannot start falls back to cpu loudly, naming wasmPaths (child process)', () => {
    const r = runTsInChild<{ backend: string; warnings: string[] }>(fileURLToPath(new URL('../test/auto-fallback.child.ts', import.meta.url)));
    expect(r.status, r.stderr).toBe(0);
    expect(r.result!.backend).toBe('cpu');
    expect(r.result!.warnings).toHaveLength(1);
    expect(r.result!.warnings[0]).toMatch(/wasm backend could not start.*running on cpu.*wasmPaths/s);
  });

  it('unknown backend names throw', async () => {
    for (const name of ['gpu', 'webgl', '', 'CPU']) {
      await expect(setupBackend(name as any)).rejects.toThrow(new RegExp(`unknown backend '${name}' \\(auto, cpu, wasm, webgpu, tensorflow\\)`));
    }
  });

  it.runIf(currentBackend === 'webgpu')('webgpu explicitly: accepts the SwiftShader adapter, says so, and runs every op on the GPU', async () => {
    const info = await setupBackend('webgpu');
    expect(tf.getBackend()).toBe('webgpu');
    expect(info.backend).toBe('webgpu');
    expect(info.adapter).toBeDefined();
    if (info.adapter!.isFallbackAdapter) expect(info.reason).toMatch(/CPU-emulated adapter .*correctness only, slower than wasm/);
    expect(tf.env().getBool('WEBGPU_CPU_FORWARD')).toBe(false);
    expect(backendState.info?.backend).toBe('webgpu');
    const y = tf.matMul(tf.tensor([[1, 2]]), tf.tensor([[3], [4]]));
    expect(Array.from(await y.data())).toEqual([11]);
    // A tensor computed by a kernel lives on the GPU (not a CPU-forwarded array).
    const z = tf.add(tf.tensor([1, 2, 3]), 1);
    expect((tf.backend() as any).tensorMap.get(z.dataId)?.resource).toBeDefined();
    expect(Array.from(await z.data())).toEqual([2, 3, 4]);
    // cpuForward: true restores tfjs' default.
    await setupBackend('webgpu', { cpuForward: true });
    expect(tf.env().getBool('WEBGPU_CPU_FORWARD')).toBe(true);
    await setupBackend('webgpu');
    expect(tf.env().getBool('WEBGPU_CPU_FORWARD')).toBe(false);
  });
});
