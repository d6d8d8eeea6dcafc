/**
 * setupBackend('auto', { quietProbe: true }) in Node: the WebGPU adapter probe runs in a child process, so what
 * Dawn writes natively to stderr while it looks for an adapter (Vulkan loader errors, rejected devices) does not
 * reach this process's stderr; it is kept in the webgpu attempt's `output`. The choice and the reasons are those
 * of the in-process probe. Both runs are fresh processes (tfjs and Dawn start once per process).
 */
import { it, expect } from 'vitest';
import { fileURLToPath } from 'node:url';
import { runTsInChild } from '../../../test-utils/child.js';
import type { BackendAttempt } from '@softbias/tensor-ops';

const entry = fileURLToPath(new URL('../test/quiet-probe.child.ts', import.meta.url));
type R = { backend: string; attempts: BackendAttempt[] };

it('auto with quietProbe: same choice and reasons as the in-process probe, Dawn output captured instead of printed', () => {
  const loud = runTsInChild<R>(entry, { args: ['loud'] });
  const quiet = runTsInChild<R>(entry, { args: ['quiet'] });
  expect(loud.status, loud.how).toBe(0);
  expect(quiet.status, quiet.how).toBe(0);
  expect(quiet.result!.backend).toBe(loud.result!.backend);
  expect(quiet.result!.attempts.map(({ backend, ok, reason }) => ({ backend, ok, reason }))).toEqual(loud.result!.attempts);
  expect(loud.result!.attempts.every((a) => a.output === undefined)).toBe(true);
  if (loud.result!.backend === 'webgpu') return; // a usable adapter: WebGPU starts in the process, as without the option
  const dawnLines = loud.stderr.split('\n').map((l) => l.trim()).filter(Boolean);
  const webgpu = quiet.result!.attempts[0]!;
  expect(webgpu.backend).toBe('webgpu');
  // Whatever the in-process probe printed is in the attempt's output and nowhere on the quiet run's stderr.
  for (const l of dawnLines) {
    expect(quiet.stderr).not.toContain(l);
    expect(webgpu.output ?? '').toContain(l);
  }
  expect(quiet.stderr.trim()).toBe('');
  // On a machine where Dawn said nothing there is nothing to capture (the comparison above is then empty).
  if (dawnLines.length === 0) expect(webgpu.output).toBeUndefined();
});

it("setupBackend('cpu') in Node: no tfjs-node banner on stderr at the first tensor (the backend info says what is faster)", () => {
  const run = runTsInChild<{ backend: string; sum: number }>(fileURLToPath(new URL('../test/cpu-banner.child.ts', import.meta.url)));
  expect(run.status, run.how).toBe(0);
  expect(run.result).toEqual({ backend: 'cpu', sum: 6 });
  expect(run.stderr).not.toMatch(/looks like you are running TensorFlow\.js in Node/);
  expect(run.stderr.trim()).toBe('');
});
